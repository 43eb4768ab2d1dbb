"""Widgets of the TUI: the wave DAG, the cost panel and the event log."""
