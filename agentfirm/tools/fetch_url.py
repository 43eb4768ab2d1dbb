"""``fetch_url``: a web page as readable Markdown, for a module that was allowed to read the web.

httpx fetches it under a time cap and a size cap (the body is read in chunks and cut off, never
held whole); HTML becomes Markdown with markdownify (scripts, styles and navigation dropped
with BeautifulSoup, which markdownify is built on), any other text is returned as it is. Every
hop (the first request and each redirect) is checked against private, loopback, link-local and
reserved addresses after DNS resolution, so a page cannot steer the tool at the machine's own
services; ``allow_private`` lifts that (tests serve pages on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from agentfirm.domain.tools import ToolSpec
from agentfirm.tools.base import ToolError

NAME = "fetch_url"
MAX_BYTES = 2 * 1024 * 1024
"""The most of a body read; the rest is cut off."""
MAX_CHARS = 20_000
"""The most Markdown handed to the model in one result; ``start_index`` pages through more."""
TIMEOUT_S = 20.0
MAX_REDIRECTS = 5
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")
_DROPPED_TAGS = ["script", "style", "nav", "footer", "noscript", "svg", "iframe", "form"]

SPEC = ToolSpec(
    name=NAME,
    description=(
        "Fetch a web page (http or https) and return its main text as Markdown. Long pages are "
        f"cut at {MAX_CHARS} characters: call again with start_index to read on."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "url": {
                "type": "string",
                "format": "uri",
                "description": "The page's absolute http(s) URL.",
            },
            "start_index": {
                "type": "integer",
                "minimum": 0,
                "description": "Where to start reading, in characters (default 0).",
            },
        },
        "required": ["url"],
        "additionalProperties": False,
    },
    origin="builtin",
)


def to_markdown(html: str) -> str:
    """The readable text of an HTML page as Markdown (headings, lists, links, tables kept)."""
    from bs4 import BeautifulSoup
    from markdownify import MarkdownConverter

    soup = BeautifulSoup(html, "html.parser")
    # Dropped with their content: markdownify alone would keep a script's text as prose.
    for tag in soup(["head", *_DROPPED_TAGS]):
        tag.decompose()
    text: str = MarkdownConverter(heading_style="ATX").convert_soup(soup)
    lines = [line.rstrip() for line in text.splitlines()]
    # Collapse the runs of blank lines that dropped markup leaves behind.
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


async def _refuse_private(host: str, port: int) -> None:
    """Raise ``ToolError`` when ``host`` is or resolves to an address that is not public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ToolError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global:
            raise ToolError(
                f"{host} is a private, loopback or reserved address ({address}): refused",
                hint="only public web pages can be fetched (setting fetch_allow_private lifts it)",
            )


@dataclass
class FetchUrl:
    """The ``fetch_url`` tool. ``allow_private``: fetch loopback and private addresses too."""

    allow_private: bool = False
    timeout_s: float = TIMEOUT_S
    max_bytes: int = MAX_BYTES
    max_chars: int = MAX_CHARS
    spec: ToolSpec = field(default=SPEC)

    async def call(self, arguments: dict[str, Any]) -> str:
        url = arguments.get("url")
        start = arguments.get("start_index", 0)
        if not isinstance(url, str) or not isinstance(start, int) or start < 0:
            raise ToolError("fetch_url needs a url (string) and an optional start_index >= 0")
        try:
            async with asyncio.timeout(self.timeout_s):
                final_url, content_type, body = await self._get(url)
        except TimeoutError as exc:
            raise ToolError(f"{url} did not answer within {self.timeout_s:g}s") from exc
        if "html" in content_type:
            text = to_markdown(body)
        elif content_type.startswith(_TEXT_TYPES) or not content_type:
            text = body
        else:
            raise ToolError(f"{final_url} is {content_type}, not a text page")
        page = text[start : start + self.max_chars]
        more = len(text) - start - len(page)
        header = f"Contents of {final_url}:\n\n"
        tail = f"\n\n[cut: {more} more characters; call again with start_index]" if more else ""
        return header + page + tail

    async def _get(self, url: str) -> tuple[str, str, str]:
        import httpx

        async with httpx.AsyncClient(follow_redirects=False, timeout=self.timeout_s) as client:
            for _ in range(MAX_REDIRECTS + 1):
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise ToolError(f"{url!r} is not an absolute http(s) URL")
                if not self.allow_private:
                    await _refuse_private(
                        parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
                    )
                try:
                    async with client.stream("GET", url) as response:
                        if response.is_redirect and "location" in response.headers:
                            url = urljoin(url, response.headers["location"])
                            continue
                        if response.status_code >= 400:
                            raise ToolError(f"{url} answered HTTP {response.status_code}")
                        body = await self._read(response)
                        kind = response.headers.get("content-type", "").split(";")[0].strip()
                        return (
                            url,
                            kind.lower(),
                            body.decode(response.encoding or "utf-8", "replace"),
                        )
                except httpx.HTTPError as exc:
                    raise ToolError(f"{url} could not be fetched: {exc}") from exc
        raise ToolError(f"{url}: more than {MAX_REDIRECTS} redirects")

    async def _read(self, response: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= self.max_bytes:
                break
        return b"".join(chunks)[: self.max_bytes]
