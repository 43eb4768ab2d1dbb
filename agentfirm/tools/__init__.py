"""Tools a specialist may call: built-in ones (web search, fetch, attachments) and MCP servers.

Tools know no agents: the Build Master's loop asks for them by name and awaits their results.
"""
