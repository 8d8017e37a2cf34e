"""Incremental Server-Sent Events reader for upstream streams.

Bytes arrive in arbitrary pieces (an event can be split across reads, or many events can
arrive in one read). The reader yields, per network read, the list of complete events it
completed, so a consumer can forward a burst of chunks as one batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import NamedTuple


class SSEEvent(NamedTuple):
    data: bytes
    event: bytes | None = None


class SSEDecoder:
    """Feed bytes, get complete events. Handles LF, CRLF and CR line endings (Gemini sends
    CRLF), multi-line `data:` fields, `event:` names and comment lines."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[SSEEvent]:
        buffer = self._buffer + data if self._buffer else data
        if b"\r" in buffer:
            # Keep a trailing CR: its LF may be the first byte of the next read.
            held = b"\r" if buffer.endswith(b"\r") else b""
            if held:
                buffer = buffer[:-1]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + held
        *blocks, rest = buffer.split(b"\n\n")
        self._buffer = rest
        events: list[SSEEvent] = []
        for block in blocks:
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SSEEvent]:
        """Events left when the stream ends without a final blank line."""
        rest, self._buffer = self._buffer.strip(b"\r\n"), b""
        event = _parse_block(rest) if rest else None
        return [event] if event is not None else []


def _parse_block(block: bytes) -> SSEEvent | None:
    # Fast path: one `data: {...}` line, the shape of every OpenAI chunk.
    if block.startswith(b"data: ") and b"\n" not in block:
        return SSEEvent(block[6:])
    data_lines: list[bytes] = []
    event: bytes | None = None
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data_lines.append(value)
        elif field == b"event":
            event = value
    if not data_lines and event is None:
        return None
    return SSEEvent(b"\n".join(data_lines), event)


async def iter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[SSEEvent]]:
    """Batches of complete events, one batch per read that completed at least one event."""
    decoder = SSEDecoder()
    async for data in chunks:
        events = decoder.feed(data)
        if events:
            yield events
    tail = decoder.flush()
    if tail:
        yield tail
