"""The console's HTTP client of the gateway's own public API (issue #21: no private back door).

Every console action is an HTTP request to the same listener the browser reached, with the
signed-in key as `Authorization: Bearer`, so it passes the same authentication, roles,
validation, limits and metrics as a script's request, and can do nothing the API forbids.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from workers.errors import ServiceUnavailable

# A console call that the API has not answered by then is given up (a streamed chat's
# whole answer may take longer: the read timeout covers the gap between chunks).
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 120.0


def own_base_url(request: web.Request) -> str:
    """The address of the listener this request came in on, as seen from this host."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not sockname:
        raise ServiceUnavailable("the console lost its connection", code="console_unavailable")
    host, port = sockname[0], sockname[1]
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class Loopback:
    """One HTTP session per front door for the console's API calls."""

    def __init__(self) -> None:
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=None, connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S
            ),
            # The API's answers are forwarded as they are; never decompress or follow.
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        await self.http.close()

    @asynccontextmanager
    async def call(
        self,
        request: web.Request,
        key: str,
        method: str,
        path_qs: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        headers = {"Authorization": f"Bearer {key}", "Accept-Encoding": "identity"}
        if content_type:
            headers["Content-Type"] = content_type
        url = own_base_url(request) + path_qs
        try:
            async with self.http.request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as response:
                yield response
        except aiohttp.ClientConnectionError as exc:
            raise ServiceUnavailable(
                "the console could not reach the gateway's API", code="console_unavailable"
            ) from exc

    async def json(self, request: web.Request, key: str, path_qs: str) -> tuple[int, object]:
        """A GET answered as (status, decoded JSON or None)."""
        async with self.call(request, key, "GET", path_qs) as response:
            try:
                payload: object = await response.json(content_type=None)
            except ValueError:
                payload = None
            return response.status, payload
