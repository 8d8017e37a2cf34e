"""The shared media fetch (Gemini and Bedrock inline what callers name by URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from workers.http import HttpClient
from workers.providers.media import Fetched, FetchError, fetch_media

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
LIMIT = 64


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def typed(request: web.Request) -> web.Response:
        return web.Response(body=PNG, headers={"Content-Type": "image/PNG; q=1"})

    async def untyped(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="application/octet-stream")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (LIMIT + 1), content_type="image/png")

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()  # no Content-Length: the cap applies while reading
        await response.prepare(request)
        for _ in range(4):
            await response.write(b"x" * (LIMIT // 2))
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/cat.png", typed)
    app.router.add_get("/cat.jpg", untyped)
    app.router.add_get("/cat", untyped)
    app.router.add_get("/big.png", big)
    app.router.add_get("/chunked.png", big_chunked)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.close()


async def fetch(http: HttpClient, url: str) -> Fetched:
    return await fetch_media(http, url, max_bytes=LIMIT, timeout_s=5)


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/cat.png", "image/png"), ("/cat.jpg", "image/jpeg"), ("/cat", "")],
)
async def test_media_type_comes_from_the_server_then_the_url(server, http, path, media_type):
    assert await fetch(http, server + path) == Fetched(media_type, PNG)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing.png", "HTTP 404"),
        ("/big.png", f"larger than {LIMIT} bytes"),
        ("/chunked.png", f"larger than {LIMIT} bytes"),
    ],
)
async def test_unusable_answers_are_fetch_errors(server, http, path, message):
    with pytest.raises(FetchError, match=message):
        await fetch(http, server + path)


async def test_only_http_urls_are_fetched(http):
    with pytest.raises(FetchError, match="http\\(s\\) or data: URL"):
        await fetch(http, "file:///etc/passwd")


async def test_an_unreachable_host_is_a_fetch_error(http):
    with pytest.raises(FetchError, match="could not fetch"):
        await fetch(http, "http://127.0.0.1:1/cat.png")
