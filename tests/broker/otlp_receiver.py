"""An OTLP/HTTP trace receiver for tests: what arrives is decoded with the official
`opentelemetry-proto` messages, so the spans are checked as any collector would read them."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class ReceivedSpan:
    def __init__(self, span: Any, service: str) -> None:
        self.name: str = span.name
        self.trace_id: str = span.trace_id.hex()
        self.span_id: str = span.span_id.hex()
        self.parent_id: str = span.parent_span_id.hex()
        self.kind: int = span.kind
        self.start_ns: int = span.start_time_unix_nano
        self.end_ns: int = span.end_time_unix_nano
        self.service = service
        self.attributes: dict[str, Any] = {a.key: _value(a.value) for a in span.attributes}


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class OtlpReceiver:
    """`port` 0 picks a free one. `restartable`: a test may `stop()` the receiver (its
    listener closed: connections refused, as a collector that is down) and `start()` it
    again where the exporters expect it, on the same port.

    A restartable receiver keeps its port bound all along, by a socket that never listens:
    a port merely released for the outage can be taken meanwhile by anything on the machine
    (any process's outgoing connection may get it as its local port, or the exporter's own
    retry may connect to itself on it), and then the collector cannot come back
    (EADDRINUSE): the outage test failed that way under load."""

    def __init__(self, port: int = 0, *, restartable: bool = False) -> None:
        self.port = port
        self._hold: socket.socket | None = None
        if restartable:
            self._hold = socket.socket()
            self._hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._hold.bind(("127.0.0.1", port))
            self.port = self._hold.getsockname()[1]
        # Each accepted export: its headers and its spans.
        self.batches: list[tuple[dict[str, str], list[ReceivedSpan]]] = []
        self.spans: list[ReceivedSpan] = []
        self.headers: list[dict[str, str]] = []
        self.is_down = False
        # Export attempts refused while down (503, which OTLP exporters retry).
        self.refused = 0
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.url = ""

    async def _traces(self, request: web.Request) -> web.Response:
        if self.is_down:
            self.refused += 1
            return web.Response(status=503)
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        self.headers.append(dict(request.headers))
        batch: list[ReceivedSpan] = []
        self.batches.append((dict(request.headers), batch))
        for resource_spans in message.resource_spans:
            service = next(
                (
                    _value(a.value)
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                batch.extend(ReceivedSpan(s, service) for s in scope_spans.spans)
        self.spans.extend(batch)
        self.arrived.set()
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def __aenter__(self) -> OtlpReceiver:
        await self.start()
        return self

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        # Langfuse's OTLP endpoint.
        app.router.add_post("/api/public/otel/v1/traces", self._traces)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.url = self.base_url + "/v1/traces"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        """Stopped for good: the held port goes too."""
        await self.stop()
        if self._hold is not None:
            self._hold.close()
            self._hold = None

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _serve(port: int) -> None:
    async with OtlpReceiver(port) as receiver:
        print(receiver.url, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    # A collector in a process of its own (benchmarks/hooks.py): what it spends decoding
    # is not the gateway's cost. `python -m tests.broker.otlp_receiver PORT`
    import sys

    asyncio.run(_serve(int(sys.argv[1])))
