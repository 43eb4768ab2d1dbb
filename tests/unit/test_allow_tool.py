"""``--allow-tool`` values must name a tool: one of a server in ``mcp.json``, by either of its
names, or all of a listed server's as ``mcp:SERVER/*``. Anything else is refused up front
(exit 2), never silently ignored."""

from __future__ import annotations

import pytest

from agentfirm.errors import BadInput
from agentfirm.tools.catalog import allowed_problem, check_allowed
from agentfirm.tools.mcp_config import StdioServer

SERVERS = {"git": StdioServer(command="mcp-server-git")}


@pytest.mark.parametrize("name", ["mcp:git/commit", "git__commit", "mcp:git/*", "fetch_url"])
def test_a_tool_of_a_listed_server_or_a_builtin_is_accepted(name: str) -> None:
    assert allowed_problem(name, SERVERS) is None


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("rm_rf", "--allow-tool 'rm_rf': no such tool — name one tool as mcp:SERVER/TOOL"),
        ("mcp:gti/commit", "--allow-tool 'mcp:gti/commit': mcp.json lists no server 'gti'"),
        ("gti__commit", "--allow-tool 'gti__commit': no such tool"),
        ("mcp:git", "--allow-tool 'mcp:git' names a whole server, not a tool"),
        ("mcp:gti/*", "--allow-tool 'mcp:gti/*': mcp.json lists no server 'gti'"),
    ],
)
def test_a_name_that_is_no_tool_is_refused_in_one_line(name: str, says: str) -> None:
    with pytest.raises(BadInput) as raised:
        check_allowed(["mcp:git/commit", name], SERVERS)
    message = str(raised.value)
    assert message.startswith(says)
    assert "\n" not in message
    assert "(servers: git;" in message
