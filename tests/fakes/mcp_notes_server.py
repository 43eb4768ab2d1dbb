"""A side-effecting MCP server over stdio for the tool tests: ``write_note`` appends to the file
named by its first argument. With ``KILL_PARENT=1`` it SIGKILLs the process that started it
right after the effect, before its result can be journaled (a crash at the worst point); with
``NOTE_SLEEP_S=N`` it blocks that many seconds after the effect before it answers (a slow call).

``python tests/fakes/mcp_notes_server.py NOTEBOOK``"""

import os
import signal
import sys
import time

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

server = MCPServer("notes")


@server.tool(annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False))
def write_note(text: str) -> str:
    """Append a note to the shared notebook."""
    with open(sys.argv[1], "a") as notebook:
        notebook.write(text + "\n")
    if os.environ.get("KILL_PARENT") == "1":
        os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(float(os.environ.get("NOTE_SLEEP_S", "0")))
    return "written"


if __name__ == "__main__":
    server.run()
