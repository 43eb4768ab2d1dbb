"""``fetch_url``: readable Markdown from a page served on loopback, with its size cap, paging,
and the refusal of private and loopback addresses (redirects included) unless allowed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentfirm.tools.base import ToolError
from agentfirm.tools.fetch_url import FetchUrl, to_markdown
from tests.fakes.http_fake import Recorded, Reply, ScriptedHTTPServer, running

PAGE = (
    "<html><head><title>T</title><style>p{color:red}</style><script>alert(1)</script></head>"
    "<body><nav>Home | About</nav><h1>Price list</h1><p>The KW-9 costs <b>EUR 1,180</b>.</p>"
    "<ul><li>one</li><li>two</li></ul></body></html>"
)


def _page(request: Recorded) -> Reply:
    if request.path == "/big":
        return Reply(200, b"<p>" + b"x" * 100_000 + b"</p>", {"content-type": "text/html"})
    if request.path == "/pdf":
        return Reply(200, b"%PDF-1.7", {"content-type": "application/pdf"})
    status = 404 if request.path == "/missing" else 200
    return Reply(status, PAGE.encode(), {"content-type": "text/html; charset=utf-8"})


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with running(ScriptedHTTPServer(_page)) as server:
        yield server.url


def test_html_becomes_markdown_without_scripts_styles_or_navigation() -> None:
    text = to_markdown(PAGE)
    assert "# Price list" in text
    assert "**EUR 1,180**" in text
    assert "alert" not in text
    assert "color:red" not in text
    assert "Home | About" not in text


async def test_a_loopback_page_is_fetched_when_private_addresses_are_allowed(base: str) -> None:
    text = await FetchUrl(allow_private=True).call({"url": f"{base}/prices"})
    assert text.startswith(f"Contents of {base}/prices")
    assert "The KW-9 costs **EUR 1,180**." in text


async def test_loopback_is_refused_by_default(base: str) -> None:
    with pytest.raises(ToolError, match="private, loopback or reserved"):
        await FetchUrl().call({"url": f"{base}/prices"})


@pytest.mark.parametrize(
    "url", ["http://10.0.0.8/", "http://169.254.169.254/latest/meta-data", "http://[::1]:80/"]
)
async def test_private_and_link_local_addresses_are_refused(url: str) -> None:
    with pytest.raises(ToolError, match="refused"):
        await FetchUrl().call({"url": url})


async def test_a_long_page_is_cut_and_paged(base: str) -> None:
    fetch = FetchUrl(allow_private=True, max_chars=1000, max_bytes=50_000)
    first, note = (await fetch.call({"url": f"{base}/big"})).split("\n\n[cut:")
    assert first.count("x") == 1000
    assert "more characters" in note
    rest = await fetch.call({"url": f"{base}/big", "start_index": 1000})
    assert rest.split("\n\n[cut:")[0].count("x") == 1000
    # The body was read only up to its cap: 50,000 bytes, not the 100,000 served.
    everything = await FetchUrl(allow_private=True, max_chars=10**6, max_bytes=50_000).call(
        {"url": f"{base}/big"}
    )
    assert everything.count("x") <= 50_000


async def test_errors_and_non_text_pages_are_tool_errors(base: str) -> None:
    fetch = FetchUrl(allow_private=True)
    with pytest.raises(ToolError, match="404"):
        await fetch.call({"url": f"{base}/missing"})
    with pytest.raises(ToolError, match="application/pdf"):
        await fetch.call({"url": f"{base}/pdf"})
    with pytest.raises(ToolError, match="not an absolute http"):
        await fetch.call({"url": "file:///etc/passwd"})
