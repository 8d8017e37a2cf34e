"""`python -m benchmarks.otlp_sink --port N --counts FILE [--dump FILE]`: the everything-on
benchmarks' OTLP/HTTP receiver, in a process of its own, as a collector would be.

It takes every export and decodes nothing (the collector's cost is not the gateway's), and
after each one writes how many exports and bytes it took to FILE. With `--dump` it also
appends each export's body, with the time it arrived, to a file that `read_dump` decodes
later (benchmarks/tail_segments.py reads the spans from it). It runs at a lower CPU
priority than the load generator whose core it shares: read inside the client's event loop,
as it first was, each export (hundreds of KB every half second) held the client's loop and
showed up as the gateway's latency.
"""

from __future__ import annotations

import argparse
import gzip
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web

# How far below the load generator it runs (as `nice -n`).
NICENESS = 10
# A dumped export: when it arrived (time.time_ns) and its body's length, then the body.
_DUMP_HEAD = struct.Struct("<qI")


def counts_writer(path: Path, dump: Path | None = None) -> web.Application:
    taken = {"exports": 0, "bytes": 0}

    async def traces(request: web.Request) -> web.Response:
        arrived_ns = time.time_ns()
        body = await request.read()
        taken["bytes"] += len(body)
        taken["exports"] += 1
        if dump is not None:
            if request.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            with dump.open("ab") as out:
                out.write(_DUMP_HEAD.pack(arrived_ns, len(body)) + body)
        staged = path.with_suffix(".tmp")
        staged.write_text(f"{taken['exports']} {taken['bytes']}")
        staged.replace(path)  # the reader never sees half a line
        # An empty ExportTraceServiceResponse: every span accepted.
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def ready(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/ready", ready)
    return app


def read_dump(path: Path) -> Iterator[tuple[int, bytes]]:
    """Each dumped export: (when it arrived, its ExportTraceServiceRequest bytes)."""
    data = path.read_bytes()
    at = 0
    while at < len(data):
        arrived_ns, size = _DUMP_HEAD.unpack_from(data, at)
        at += _DUMP_HEAD.size
        yield arrived_ns, data[at : at + size]
        at += size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--counts", type=Path, required=True)
    parser.add_argument("--dump", type=Path, help="also append every export's body here")
    args = parser.parse_args()
    os.nice(NICENESS)
    args.counts.write_text("0 0")
    web.run_app(
        counts_writer(args.counts, args.dump),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
