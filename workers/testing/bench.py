"""Measure how many requests per second the fake upstream answers on one core.

    python -m workers.testing.bench --mode plain --seconds 10
    python -m workers.testing.bench --mode stream --chunks 20

Starts `python -m workers.testing` pinned to one CPU and drives it from this process (pinned
to another) over keep-alive connections with a minimal HTTP/1.1 client, so the client costs
far less than the server it measures. Prints requests/s; never used by tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from typing import cast

from workers.testing.__main__ import loop_factory

_HEADER_END = b"\r\n\r\n"
_CHUNKED_END = b"0\r\n\r\n"


class _Connection(asyncio.Protocol):
    """Sends the same request again as soon as the previous response is complete."""

    def __init__(self, request: bytes, counter: list[int], done: asyncio.Future[None]) -> None:
        self.request = request
        self.counter = counter
        self.done = done
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they behave like one.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._complete_response():
            self.counter[0] += 1
            if self.transport is not None and not self.done.done():
                self.transport.write(self.request)

    def _complete_response(self) -> bool:
        head_end = self.buffer.find(_HEADER_END)
        if head_end < 0:
            return False
        head = bytes(self.buffer[:head_end]).lower()
        if not head.startswith(b"http/1.1 200"):
            raise RuntimeError(f"unexpected response: {head[:200]!r}")
        body_start = head_end + len(_HEADER_END)
        if b"transfer-encoding: chunked" in head:
            end = self.buffer.find(_CHUNKED_END, body_start)
            if end < 0:
                return False
            del self.buffer[: end + len(_CHUNKED_END)]
            return True
        length = int(head.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        if len(self.buffer) < body_start + length:
            return False
        del self.buffer[: body_start + length]
        return True


def build_request(mode: str, chunks: int, port: int) -> bytes:
    model = "gpt-4o-mini" if mode == "plain" else f"gpt-4o-mini~chunks={chunks}"
    stream = "false" if mode == "plain" else "true"
    body = (
        f'{{"model":"{model}","messages":[{{"role":"user","content":"Say hello."}}],'
        f'"stream":{stream},"stream_options":{{"include_usage":{stream}}}}}'
    ).replace('"stream_options":{"include_usage":false},', "")
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer sk-bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


async def drive(port: int, request: bytes, connections: int, seconds: float) -> float:
    loop = asyncio.get_running_loop()
    counter = [0]
    done: asyncio.Future[None] = loop.create_future()
    transports = []
    for _ in range(connections):
        transport, _protocol = await loop.create_connection(
            lambda: _Connection(request, counter, done), "127.0.0.1", port
        )
        transports.append(transport)
    await asyncio.sleep(1.0)  # warm-up: connections open, caches filled
    start_count, start = counter[0], time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (counter[0] - start_count) / (time.perf_counter() - start)
    done.set_result(None)
    for transport in transports:
        transport.close()
    return rate


def start_server(port: int, cpu: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        ["taskset", "-c", str(cpu), sys.executable, "-m", "workers.testing", "--port", str(port)],
        stdout=subprocess.PIPE,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith(b"listening on"):
        server.kill()
        raise RuntimeError(f"fake did not start: {line!r}")
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("plain", "stream"), default="plain")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=18931)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args()
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {args.client_cpu})
    server = start_server(args.port, args.server_cpu)
    try:
        request = build_request(args.mode, args.chunks, args.port)
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            rate = runner.run(drive(args.port, request, args.connections, args.seconds))
    finally:
        server.terminate()
        server.wait(10)
    label = f"stream of {args.chunks} chunks" if args.mode == "stream" else "non-stream"
    print(f"{label}: {rate:,.0f} requests/s on one server core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
