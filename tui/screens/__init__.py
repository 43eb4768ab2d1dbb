"""Screens of the TUI: the task list, a new task, one task, and a module's output."""
