"""The agentfirm Textual app (installed as ``agentfirm.tui``)."""
