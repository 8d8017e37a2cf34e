"""Serve the fake upstreams as a process: `python -m workers.testing --port 9000`.

Prints `listening on http://HOST:PORT` once ready and runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence

from workers.testing.server import PROVIDERS, FakeUpstream

# A benchmark sends millions of requests: keep only the latest few for inspection.
DEFAULT_RECORD_LIMIT = 100


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--latency", type=float, default=0.0, help="non-stream delay, s")
    parser.add_argument("--ttft", type=float, default=0.0, help="delay before a stream, s")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="between chunks, s")
    parser.add_argument(
        "--batch-delay", type=float, default=0.0, help="before a batch's lines run, s"
    )
    parser.add_argument("--api-key", default=None, help="accept only this key")
    parser.add_argument(
        "--providers", default=",".join(PROVIDERS), help="comma-separated subset to serve"
    )
    parser.add_argument("--record-limit", type=int, default=DEFAULT_RECORD_LIMIT)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    fake = FakeUpstream(
        host=args.host,
        port=args.port,
        providers=[name for name in args.providers.split(",") if name],
        api_key=args.api_key,
        latency_s=args.latency,
        ttft_s=args.ttft,
        chunk_delay_s=args.chunk_delay,
        batch_delay_s=args.batch_delay,
        record_limit=args.record_limit,
    )
    async with fake:
        print(f"listening on {fake.base_url}", flush=True)
        await stop.wait()


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when installed: the fake doubles as the benchmark upstream."""
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
