"""Handoff: the task repo an approved task is written to (ARCHITECTURE.md §6)."""
