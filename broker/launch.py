"""Process setup shared by `switchboard up`, `serve` and `worker`: logging that masks
secrets, the config a command names, the Redis it runs on, and the event loop it runs in.

`cli.py` parses the command line and calls these; `supervisor.py` (`up`) calls them too, so
neither imports the other's internals.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import signal
import socket
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import msgspec

from broker.config import DEMO_UPSTREAM_ENV, Config, load_config, load_demo_config
from workers.log_format import use_json
from workers.log_redaction import Redactor, install

# The data directory `up` names for its children (broker/admin_cli.py's `data_dir`).
DATA_DIR_ENV = "SWITCHBOARD_DATA_DIR"


class SetupError(Exception):
    """The process cannot start as asked (no Redis named, `--demo` without its upstream);
    the CLI prints it and exits 2."""


def configure_logging(level: str, log_format: str = "text") -> Redactor:
    """Every process's log lines, through one filter that masks secrets (issue #13, item 3),
    as text or as JSON lines with the request id (issue #19). The SDK never calls this:
    its users' logging stays theirs."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s",
    )
    if log_format == "json":
        use_json()
    if logging.getLogger().level > logging.DEBUG:
        # Alembic announces each of its plugins and its SQLite dialect at INFO on every start;
        # switchboard.db still says once that the schema is at its newest.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    redactor = Redactor()
    install(redactor)
    return redactor


def load(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """The config the command line names: `--config PATH`, or the bundled demo."""
    if args.demo:
        if DEMO_UPSTREAM_ENV not in environ:
            raise SetupError(f"--demo needs {DEMO_UPSTREAM_ENV} (`switchboard up --demo` sets it)")
        return with_storage_dir(load_demo_config(environ), environ)
    config: Config = load_config(args.config, environ)
    return with_storage_dir(config, environ)


def with_storage_dir(config: Config, environ: Mapping[str, str]) -> Config:
    """Files live in `files/` of the data directory `up` uses (`--data-dir`, which it
    passes on as $SWITCHBOARD_DATA_DIR) unless the config names a directory (issue #20)."""
    settings = config.switchboard_settings
    data_dir = environ.get(DATA_DIR_ENV)
    if settings.files.storage_dir is not None or not data_dir:
        return config
    files = msgspec.structs.replace(settings.files, storage_dir=str(Path(data_dir) / "files"))
    settings = msgspec.structs.replace(settings, files=files)
    return msgspec.structs.replace(config, switchboard_settings=settings)


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


def check_port_free(host: str, port: int) -> None:
    """Refuse at once, in one line, to start on a port another process holds (rather than a
    traceback from deep inside the server start, issue #16)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SetupError(f"port {port} is in use; pick another with --port") from None
            raise SetupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


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
