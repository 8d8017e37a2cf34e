"""Servers for the media-fetch tests: a canary that must never be reached, and an image
server on another loopback address that tests open with the allow list.

The canary stands for anything inside the network (a metadata service, the front door's own
/metrics, an admin port): it listens on 127.0.0.1, and on ::1 at the same port where the host
has IPv6, and counts every connection and byte. It answers nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
# A second loopback address: on Linux all of 127.0.0.0/8 reaches this host, so a server here
# is "internal" like the canary, but a test can allow its /32 without allowing the canary.
ALLOWED_HOST = "127.0.0.2"
ALLOWED_NETWORK = f"{ALLOWED_HOST}/32"


class Canary:
    def __init__(self) -> None:
        self.connections = 0
        self.bytes = 0
        self._servers: list[asyncio.Server] = []
        self.port = 0

    async def start(self) -> None:
        self._servers.append(await asyncio.start_server(self._count, "127.0.0.1", 0))
        self.port = self._servers[0].sockets[0].getsockname()[1]
        if socket.has_ipv6:
            with contextlib.suppress(OSError):  # no IPv6 loopback here
                self._servers.append(await asyncio.start_server(self._count, "::1", self.port))

    async def _count(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            data = await asyncio.wait_for(reader.read(65536), timeout=1)
            self.bytes += len(data)
        writer.close()

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    @property
    def untouched(self) -> bool:
        return self.connections == 0 and self.bytes == 0


@contextlib.asynccontextmanager
async def canary() -> AsyncIterator[Canary]:
    server = Canary()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class MediaServer:
    """Images and misbehaviour on `host`; counts requests by path."""

    def __init__(self, host: str = ALLOWED_HOST, *, max_bytes: int = 1000) -> None:
        self.host = host
        self.max_bytes = max_bytes
        self.hits: Counter[str] = Counter()
        self.released = asyncio.Event()  # set at shutdown: frees the handlers that hang
        self.sni: list[str | None] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        add = app.router.add_get
        add("/cat.png", self._png)
        add("/cat", self._untyped)
        add("/page.html", self._page)
        add("/big.png", self._big)
        add("/chunked.png", self._chunked)
        add("/gzip.png", self._gzip)
        add("/slow.png", self._slow)
        add("/redirect", self._redirect)
        add("/hops/{n}", self._hops)
        add("/sized/{n}", self._sized)
        return app

    @web.middleware
    async def _count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.hits[request.path] += 1
        return await handler(request)

    async def _png(self, request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def _untyped(self, request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="application/octet-stream")

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>internal</html>", content_type="text/html")

    async def _sized(self, request: web.Request) -> web.Response:
        size = int(request.match_info["n"])
        return web.Response(body=PNG.ljust(size, b"\x00"), content_type="image/png")

    async def _big(self, request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (self.max_bytes + 1), content_type="image/png")

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()  # no Content-Length: the cap applies while reading
        await response.prepare(request)
        for _ in range(4):
            await response.write(b"x" * (self.max_bytes // 2))
        await response.write_eof()
        return response

    async def _gzip(self, request: web.Request) -> web.Response:
        headers = {"Content-Type": "image/png", "Content-Encoding": "gzip"}
        return web.Response(body=gzip.compress(PNG), headers=headers)

    async def _slow(self, request: web.Request) -> web.Response:
        await self.released.wait()
        return web.Response(body=PNG, content_type="image/png")

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def _hops(self, request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        if left == 0:
            return web.Response(body=PNG, content_type="image/png")
        raise web.HTTPFound(f"/hops/{left - 1}")

    async def start(self, tls: ssl.SSLContext | None = None, port: int = 0) -> None:
        if tls is not None:
            tls.sni_callback = self._record_sni
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port, ssl_context=tls)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"{'https' if tls else 'http'}://{self.host}:{port}"

    def _record_sni(self, sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        self.sni.append(name)

    async def stop(self) -> None:
        self.released.set()
        if self._runner is not None:
            await self._runner.cleanup()


@contextlib.asynccontextmanager
async def media_server(
    host: str = ALLOWED_HOST,
    *,
    max_bytes: int = 1000,
    tls: ssl.SSLContext | None = None,
    port: int = 0,
) -> AsyncIterator[MediaServer]:
    server = MediaServer(host, max_bytes=max_bytes)
    await server.start(tls, port)
    try:
        yield server
    finally:
        await server.stop()
