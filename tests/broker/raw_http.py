"""Raw HTTP/1.1 over a socket, for requests no HTTP client would send (bytes that are not
UTF-8 in a header, a header line with a NUL, a half-sent request) and for watching when the
server closes the connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from tests.broker.harness import RunningFrontDoor

# Generous: the limits tests set are fractions of a second; a busy machine may lag.
BOUND_S = 15.0


@contextlib.asynccontextmanager
async def connect(door: RunningFrontDoor) -> AsyncIterator[tuple[asyncio.StreamReader, Any]]:
    url = urlsplit(door.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body."""
    async with asyncio.timeout(BOUND_S):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection within the bound (reads until EOF)."""
    try:
        async with asyncio.timeout(BOUND_S):
            while await reader.read(65536):
                pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def raw(door: RunningFrontDoor, request: bytes) -> tuple[int, dict[str, str], bytes]:
    async with connect(door) as (reader, writer):
        writer.write(request)
        await writer.drain()
        return await read_response(reader)
