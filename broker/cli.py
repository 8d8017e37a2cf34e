"""`switchboard up | serve | worker`: the command line.

- `up` runs a whole service on one machine: an embedded Redis when no REDIS_URL is set,
  one or more front doors and N worker processes, all stopped together.
- `serve` runs one front door; `worker` one worker. Both need REDIS_URL (or the config's
  `switchboard_settings.redis_url`). Any number of them on one Redis form one service.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from broker.config.errors import ConfigError
from broker.config.loader import Config, load_config, load_demo_config
from workers.deployment import Secret
from workers.log_redaction import Redactor, install, secrets_in
from workers.runtime.options import RuntimeOptions

log = logging.getLogger("switchboard")

DEMO_UPSTREAM_ENV = "SWITCHBOARD_DEMO_UPSTREAM"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__.split("\n")[0])
    parser.add_argument("--log-level", default=os.environ.get("SWITCHBOARD_LOG_LEVEL", "INFO"))
    commands = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("--config", type=Path, help="a LiteLLM proxy config.yaml")
        source.add_argument(
            "--demo", action="store_true", help="serve a built-in fake model (no keys, no network)"
        )

    up = commands.add_parser("up", help="front door + workers + embedded Redis, one command")
    with_config(up)
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=4000)
    up.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    up.add_argument("--front-doors", type=int, default=1, help="front door processes")
    up.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="first of the ports where each process serves its own /metrics: front doors "
        "at PORT, PORT+1, ..., then the workers",
    )

    serve = commands.add_parser("serve", help="one front door (needs REDIS_URL)")
    with_config(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4000)
    serve.add_argument(
        "--reuse-port", action="store_true", help="share the port with other front doors"
    )
    serve.add_argument(
        "--metrics-port", type=int, default=None, help="also serve on this port, unshared"
    )

    worker = commands.add_parser("worker", help="one worker process (needs REDIS_URL)")
    with_config(worker)
    worker.add_argument("--concurrency", type=int, default=None)
    worker.add_argument(
        "--worker-id", default=None, help="its consumer name (`up` names its workers to know them)"
    )
    worker.add_argument("--metrics-host", default="127.0.0.1")
    worker.add_argument(
        "--metrics-port", type=int, default=None, help="serve GET /metrics on this port"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    redactor = configure_logging(args.log_level)
    try:
        if args.command == "up":
            from broker.supervisor import run_up

            return run_up(args, redactor)
        config = load(args, os.environ)
        redactor.add_secrets(secrets_in(config, Secret))
        redis_url = required_redis_url(config, os.environ)
        if args.command == "serve":
            return run_async(lambda stopping: serve(config, redis_url, args, stopping))
        return run_async(lambda stopping: work(config, redis_url, args, stopping))
    except ConfigError as exc:
        print(f"switchboard: invalid config: {exc}", file=sys.stderr)
        return 2
    except SetupError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2


class SetupError(Exception):
    pass


def configure_logging(level: str) -> Redactor:
    """Every process's log lines, through one filter that masks secrets (issue #13, item 3).
    The SDK never calls this: its users' logging stays theirs."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s",
    )
    redactor = Redactor()
    install(redactor)
    return redactor


def load(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    if args.demo:
        if DEMO_UPSTREAM_ENV not in environ:
            raise SetupError(f"--demo needs {DEMO_UPSTREAM_ENV} (`switchboard up --demo` sets it)")
        return load_demo_config(environ)
    config: Config = load_config(args.config, environ)
    return config


def redis_url_of(config: Config, environ: Mapping[str, str]) -> str | None:
    url = environ.get("REDIS_URL") or config.switchboard_settings.redis_url
    return str(url) if url else None


def required_redis_url(config: Config, environ: Mapping[str, str]) -> str:
    url = redis_url_of(config, environ)
    if url is None:
        raise SetupError(
            "no Redis: set REDIS_URL or switchboard_settings.redis_url "
            "(or use `switchboard up`, which starts an embedded Redis)"
        )
    return url


def runtime_options(config: Config, concurrency: int | None = None) -> RuntimeOptions:
    return RuntimeOptions.from_settings(config.switchboard_settings, concurrency=concurrency)


async def serve(
    config: Config, redis_url: str, args: argparse.Namespace, stopping: asyncio.Event
) -> None:
    from broker.app import serve_front_door

    await serve_front_door(
        config,
        redis_url,
        host=args.host,
        port=args.port,
        stopping=stopping,
        reuse_port=args.reuse_port,
        metrics_port=args.metrics_port,
    )


async def work(
    config: Config, redis_url: str, args: argparse.Namespace, stopping: asyncio.Event
) -> None:
    from workers.routing.plan import build_plan
    from workers.runtime.process import serve_worker

    await serve_worker(
        build_plan(config.deployments, config.model_list, config.router_settings),
        redis_url,
        runtime_options(config, args.concurrency),
        stopping=stopping,
        worker_id=args.worker_id,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
    )


def run_async(body: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> int:
    """Run `body` on uvloop when available; SIGTERM/SIGINT only set the stop flag."""

    async def runner() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        tune_gc()
        await body(stopping)

    with asyncio.Runner(loop_factory=_loop_factory()) as async_runner:
        async_runner.run(runner())
    return 0


# The hot path allocates many short-lived, acyclic objects (requests, chunks, futures), so
# the default young-generation threshold (700) ran the cycle collector thousands of times a
# second for nothing: 6-11% of a request's CPU (benchmarks/profile.py, docs/performance.md).
GC_YOUNG_THRESHOLD = 20_000


def tune_gc() -> None:
    """Collect cycles less often, and never rescan what startup built (config, modules)."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


if __name__ == "__main__":
    sys.exit(main())
