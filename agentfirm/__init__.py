"""agentfirm: a consulting firm of LLM agents, run from the terminal."""

__version__ = "0.1.0"
