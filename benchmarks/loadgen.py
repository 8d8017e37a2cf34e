"""A closed-loop HTTP/1.1 load generator for OpenAI chat completions, on uvloop.

Each connection sends a request, reads the whole response (Content-Length or chunked), records
its latency (and for SSE its time to the first `data:` event), then sends the next. Parsing is
a few `bytes.find` calls per read, so one client core drives far more requests per second than
the gateways it measures; the runner shows this by measuring the fake upstream directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import orjson

_HEADER_END = b"\r\n\r\n"
_DATA = b"data: "


@dataclass
class Sample:
    """The requests that finished inside the measuring window."""

    latencies_s: list[float] = field(default_factory=list)
    ttfts_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    bad_streams: int = 0  # a stream without every chunk, in order, ending in [DONE]

    def add_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def build_request(
    port: int, model: str, *, stream: bool, api_key: str, headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    payload: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    body = orjson.dumps(payload)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers)
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class StreamCheck:
    """What a complete stream must hold: `chunks` content events in order, then [DONE]."""

    def __init__(self, expected_text: str | None, min_events: int) -> None:
        self.expected_text = expected_text
        self.min_events = min_events
        self.last_body = b""

    def is_good(self, body: bytes) -> bool:
        self.last_body = body
        events = _events(body)
        if len(events) < self.min_events or events[-1] != b"[DONE]":
            return False
        return self.expected_text is None or self.text_of(body) == self.expected_text

    @staticmethod
    def text_of(body: bytes) -> str:
        """The content deltas of a stream, joined in the order they arrived."""
        text = []
        for event in _events(body)[:-1]:
            chunk = orjson.loads(event)
            for choice in chunk.get("choices") or ():
                text.append((choice.get("delta") or {}).get("content") or "")
        return "".join(text)


def _events(body: bytes) -> list[bytes]:
    return [line[len(_DATA) :] for line in body.split(b"\n") if line.startswith(_DATA)]


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending requests back to back."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.body = bytearray()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reset()

    def _reset(self) -> None:
        self.started = 0.0
        self.first_event = 0.0
        self.status = 0
        self.length: int | None = None  # None: chunked
        self.chunk_left = -1  # chunked: bytes left in the current chunk (-1: at a size line)
        self.in_body = False
        self.body.clear()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they behave like one.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.started:
            self.client.finish(self, ok=False, error="connection lost")
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self) -> None:
        self._reset()
        self.started = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.client.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            while self.started and self._parse():
                pass
        except ValueError as exc:
            self.client.finish(self, ok=False, error=f"bad response: {exc}")
            if self.transport is not None:
                self.transport.close()

    def _parse(self) -> bool:
        """Consume what the buffer holds; True when a response completed."""
        if not self.in_body:
            end = self.buffer.find(_HEADER_END)
            if end < 0:
                return False
            head = bytes(self.buffer[:end]).lower()
            del self.buffer[: end + 4]
            self.status = int(head[9:12])
            if b"transfer-encoding: chunked" in head:
                self.length = None
            else:
                self.length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            self.in_body = True
        if self.length is not None:
            if len(self.buffer) < self.length:
                return False
            self.body += self.buffer[: self.length]
            del self.buffer[: self.length]
            self._complete()
            return True
        return self._parse_chunks()

    def _parse_chunks(self) -> bool:
        while True:
            if self.chunk_left == -2:
                if len(self.buffer) < 2:
                    return False
                del self.buffer[:2]
                self.chunk_left = -1
            if self.chunk_left < 0:
                line_end = self.buffer.find(b"\r\n")
                if line_end < 0:
                    return False
                size = int(bytes(self.buffer[:line_end]).split(b";", 1)[0], 16)
                if size == 0:
                    if len(self.buffer) < line_end + 4:
                        return False
                    del self.buffer[: line_end + 4]
                    self._complete()
                    return True
                del self.buffer[: line_end + 2]
                self.chunk_left = size
            take = min(self.chunk_left, len(self.buffer))
            if take == 0:
                return False
            if not self.first_event and _DATA in self.buffer[:take]:
                self.first_event = time.perf_counter()
            self.body += self.buffer[:take]
            del self.buffer[:take]
            self.chunk_left -= take
            if self.chunk_left:
                return False
            if len(self.buffer) < 2:
                self.chunk_left = -2  # the chunk's CRLF has not arrived yet
                return False
            del self.buffer[:2]
            self.chunk_left = -1

    def _complete(self) -> None:
        ok = self.status == 200
        if ok and self.client.stream_check is not None:
            ok = self.client.stream_check.is_good(bytes(self.body))
            if not ok:
                self.client.sample.bad_streams += 1
        self.client.finish(self, ok=ok, error=None if ok else f"status {self.status}")


class Client:
    """Drives `connections` keep-alive connections for a bounded time (or request budget)."""

    def __init__(
        self,
        port: int,
        request: bytes,
        *,
        stream_check: StreamCheck | None = None,
        total_requests: int | None = None,
    ) -> None:
        self.port = port
        self.request = request
        self.stream_check = stream_check
        self.sample = Sample()
        self.total_requests = total_requests
        self.sent = 0
        self.completed = 0
        self.in_flight = 0
        self.is_measuring = False
        self.is_sending = True
        self.idle = asyncio.Event()
        self.on_complete: Callable[[], None] | None = None

    def _send(self, conn: _Connection) -> None:
        if not self.is_sending or (
            self.total_requests is not None and self.sent >= self.total_requests
        ):
            conn.started = 0.0
            if self.in_flight == 0:
                self.idle.set()
            return
        self.sent += 1
        self.in_flight += 1
        conn.send()

    def finish(self, conn: _Connection, *, ok: bool, error: str | None) -> None:
        now = time.perf_counter()
        self.in_flight -= 1
        self.completed += 1
        if self.is_measuring:
            sample = self.sample
            sample.statuses[conn.status] = sample.statuses.get(conn.status, 0) + 1
            if ok:
                sample.latencies_s.append(now - conn.started)
                if conn.first_event:
                    sample.ttfts_s.append(conn.first_event - conn.started)
            else:
                sample.add_error(error or "error")
        conn.started = 0.0
        if conn.transport is not None and not conn.transport.is_closing():
            self._send(conn)
        elif self.in_flight == 0:
            self.idle.set()

    async def open(self, connections: int) -> list[_Connection]:
        loop = asyncio.get_running_loop()
        opened: list[_Connection] = []
        # In waves smaller than the usual listen backlog (128): a handshake the server's
        # kernel drops is retried seconds later and would look like a slow gateway.
        for start in range(0, connections, 100):
            batch = min(100, connections - start)
            results = await asyncio.gather(
                *(
                    loop.create_connection(lambda: _Connection(self), "127.0.0.1", self.port)
                    for _ in range(batch)
                )
            )
            opened += [protocol for _transport, protocol in results]
        return opened

    def start(self, conns: list[_Connection]) -> None:
        self.idle.clear()
        for conn in conns:
            self._send(conn)

    async def stop(self, conns: list[_Connection], drain_s: float) -> int:
        """Stop sending, wait up to `drain_s` for answers; returns the requests left over."""
        self.is_sending = False
        if self.in_flight:
            self.idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_s):
                    await self.idle.wait()
        left = self.in_flight
        for conn in conns:
            conn.started = 0.0
            if conn.transport is not None:
                conn.transport.close()
        return left


async def wait_until_done(client: Client, timeout_s: float) -> bool:
    """For a request budget: True when every request was answered within `timeout_s`."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await client.idle.wait()
            return True
    return False
