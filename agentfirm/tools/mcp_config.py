"""The user's MCP servers: an ``mcp.json`` in the shape Claude Desktop and Cursor already use.

``{"mcpServers": {"NAME": {"command": ..., "args": [...], "env": {...}}}}`` starts a server over
stdio; ``{"url": ..., "headers": {...}}`` reaches one over streamable HTTP. The file is
``AGENTFIRM_MCP_CONFIG`` (the ``mcp_config`` setting) or ``mcp.json`` in the config dir; a missing
file means no servers. Values under ``env`` and ``headers`` are often keys: they are never logged
or shown (``describe`` leaves them out).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentfirm.errors import ConfigError

FILE_NAME = "mcp.json"
SERVER_NAME = r"^[A-Za-z0-9_-]{1,40}$"


class StdioServer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    command: Annotated[str, Field(min_length=1)]
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None

    def describe(self) -> str:
        return " ".join([self.command, *self.args])


class HttpServer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    url: Annotated[str, Field(pattern=r"^https?://")]
    headers: dict[str, str] = Field(default_factory=dict)

    def describe(self) -> str:
        return self.url.split("?", 1)[0]


ServerConfig = StdioServer | HttpServer
ServerName = Annotated[str, Field(pattern=SERVER_NAME)]


class _File(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # The file's own key (Claude Desktop's spelling).
    mcpServers: dict[ServerName, StdioServer | HttpServer] = Field(default_factory=dict)


def config_path(setting: Path | None, config_dir: Path) -> Path:
    """Where the servers are listed: the setting when given, else ``config_dir/mcp.json``."""
    return setting.expanduser() if setting is not None else config_dir / FILE_NAME


def load_servers(path: Path) -> dict[str, ServerConfig]:
    """The servers ``path`` lists, by name; none when the file does not exist. Raises
    ``ConfigError`` naming the file and the entry when it is not valid JSON or not in shape."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read it ({exc.strerror})"]) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [f"{path}:{exc.lineno}: not valid JSON ({exc.msg}) — fix the file or remove it"]
        ) from exc
    try:
        return dict(_File.model_validate(data).mcpServers)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"][:3])
            problems.append(
                f"{path}: {where}: {error['msg']} — each server needs a command (stdio) "
                "or a url (streamable HTTP)"
            )
        raise ConfigError(problems) from exc
