"""Sending a provider's stream events with chunked transfer, paced and optionally cut short.

A provider module renders every event of a stream up front (framed as its wire wants: SSE
`data:` lines, `event:` + `data:` pairs, or binary frames); this module owns the timing, the
open-stream count, client-disconnect recording and the abrupt close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import NoReturn

from aiohttp import web

from workers.testing.state import ClientWatch

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


def sse_data(payload: bytes) -> bytes:
    """One SSE event with a single `data:` line, as OpenAI frames stream chunks."""
    return b"data: " + payload + b"\n\n"


async def wait_forever() -> NoReturn:
    """Never answer; ends only when the client leaves or the server shuts down."""
    await asyncio.get_running_loop().create_future()
    raise AssertionError("unreachable: nothing completes this future")


async def send_events(
    request: web.Request,
    watch: ClientWatch,
    events: Sequence[bytes],
    *,
    headers: Mapping[str, str],
    ttft_s: float = 0.0,
    chunk_delay_s: float = 0.0,
    cut_connection: bool = False,
) -> web.StreamResponse:
    """Send `events` as one 200 chunked response.

    Nothing (not even the status line) goes out before `ttft_s`. Events without a delay
    between them go out in one write, which is what a fast upstream looks like on the wire
    anyway. With `cut_connection` the connection is closed after the last event without
    ending the chunked body, so the client sees a truncated response.
    """
    if ttft_s > 0:
        await asyncio.sleep(ttft_s)
    response = web.StreamResponse(headers=headers)
    watch.state.open_streams += 1
    try:
        await response.prepare(request)
        watch.is_streaming = True
        await _write_paced(response, watch, events, chunk_delay_s)
        if cut_connection:
            _close_transport(request)
        else:
            await response.write_eof()
    except ConnectionResetError:
        # Returning (not raising) keeps aiohttp from logging a client that left as a 500.
        watch.record_disconnect()
    finally:
        watch.state.open_streams -= 1
    return response


async def _write_paced(
    response: web.StreamResponse,
    watch: ClientWatch,
    events: Sequence[bytes],
    chunk_delay_s: float,
) -> None:
    if chunk_delay_s <= 0:
        await response.write(b"".join(events))
        watch.events_sent = len(events)
        return
    for index, event in enumerate(events):
        if index:
            await asyncio.sleep(chunk_delay_s)
        await response.write(event)
        watch.events_sent += 1


def _close_transport(request: web.Request) -> None:
    # close(), not abort(): what was written still reaches the client, then FIN. aiohttp's
    # own write_eof afterwards fails with ConnectionResetError, which it ignores.
    transport = request.transport
    if transport is not None:
        transport.close()
