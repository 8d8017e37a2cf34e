"""`switchboard up`: one front door in this process, worker processes (and extra front
doors sharing the port) as children, an embedded Redis when none is configured, and for
`--demo` a local fake upstream. A child that dies is started again; on SIGTERM everything
drains and stops, Redis last. If a background task of this process's own front door dies,
it drains and stops the same way, and `up` exits 1 (broker/frontdoor.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence

from broker.admin_cli import data_dir
from broker.config import DEMO_UPSTREAM_ENV, Config
from broker.embedded_redis import EmbeddedRedis
from broker.launch import load, redis_url_of, run_async
from workers.db.engine import sqlite_url
from workers.deployment import Secret
from workers.log_redaction import Redactor, secrets_in
from workers.supervision import Supervisor

log = logging.getLogger("switchboard.up")

RESTART_DELAY_S = 1.0
FAKE_START_TIMEOUT_S = 15.0


class Child:
    """One child process, restarted when it dies unexpectedly."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(*self.argv, env=self.env)
        log.info("started %s (pid %d)", self.name, self.process.pid)

    async def keep_alive(self, stopping: asyncio.Event) -> None:
        """Start the child again whenever it exits, until `stopping`; then wait for the owner,
        which stops the child, to cancel this (an end of its own would be a death)."""
        while not stopping.is_set():
            assert self.process is not None
            code = await self.process.wait()
            if stopping.is_set():
                break
            self.restarts += 1
            log.warning("%s exited with %s; starting it again", self.name, code)
            await asyncio.sleep(RESTART_DELAY_S)
            if not stopping.is_set():
                await self.start()
        await asyncio.get_running_loop().create_future()

    async def stop(self, timeout_s: float) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout_s)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def keep_alive(tasks: Supervisor, children: Sequence[Child], stopping: asyncio.Event) -> None:
    """Watch each child under `tasks`: a watcher that fails (a start the OS refused) is
    started again after RESTART_DELAY_S, as the child it watches would be."""
    for child in children:
        tasks.start(
            f"keep {child.name} alive",
            functools.partial(child.keep_alive, stopping),
            restart_after_s=RESTART_DELAY_S,
        )


def _child_argv(args: argparse.Namespace, command: list[str]) -> list[str]:
    source = ["--demo"] if args.demo else ["--config", str(args.config)]
    return [sys.executable, "-m", "broker.cli", "--log-level", args.log_level, *command, *source]


async def supervise(
    config: Config,
    redis_url: str,
    args: argparse.Namespace,
    env: Mapping[str, str],
    stopping: asyncio.Event,
) -> None:
    from broker.app import serve_front_door

    metrics = _metrics_ports(args)
    children = [
        Child(
            f"worker {i + 1}",
            _child_argv(args, ["worker", *metrics(args.front_doors + i, "--metrics-host")]),
            env,
        )
        for i in range(args.workers)
    ]
    shares_port = args.front_doors > 1
    children += [
        Child(
            f"front door {i + 2}",
            _child_argv(
                args,
                [
                    "serve",
                    *("--host", args.host, "--port", str(args.port), "--reuse-port"),
                    *metrics(i + 1, None),
                ],
            ),
            env,
        )
        for i in range(args.front_doors - 1)
    ]
    watchers = Supervisor("switchboard up", log)
    for child in children:
        await child.start()
    keep_alive(watchers, children, stopping)
    ready = asyncio.Event()
    banner = asyncio.create_task(_announce(ready, args, redis_url))
    try:
        await serve_front_door(
            config,
            redis_url,
            host=args.host,
            port=args.port,
            stopping=stopping,
            ready=ready,
            reuse_port=shares_port,
            metrics_port=args.metrics_port,
        )
    finally:
        stopping.set()
        banner.cancel()
        # Watchers first: a child stopped now is not one to start again.
        await watchers.aclose()
        drain_s = config.switchboard_settings.drain_timeout_s + 5
        await asyncio.gather(*(child.stop(drain_s) for child in children))
        await asyncio.gather(banner, return_exceptions=True)


def _metrics_ports(args: argparse.Namespace) -> Callable[[int, str | None], list[str]]:
    """The arguments giving process number `n` its own metrics port (PORT + n), if any."""

    def arguments(n: int, host_flag: str | None) -> list[str]:
        if args.metrics_port is None:
            return []
        host = [host_flag, args.host] if host_flag else []
        return [*host, "--metrics-port", str(args.metrics_port + n)]

    return arguments


async def _announce(ready: asyncio.Event, args: argparse.Namespace, redis_url: str) -> None:
    await ready.wait()
    where = "embedded" if redis_url.startswith("unix://") else redis_url.split("@")[-1]
    print(
        f"Switchboard is up: http://{args.host}:{args.port}/v1 "
        f"({args.front_doors} front door(s), {args.workers} worker(s), Redis: {where})",
        flush=True,
    )


def _start_demo_upstream(stack: contextlib.ExitStack, env: dict[str, str]) -> None:
    """The demo's model lives in a local fake OpenAI server (workers.testing)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.testing", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
        if process.stdout is not None:
            process.stdout.close()

    stack.callback(stop)
    assert process.stdout is not None
    line = process.stdout.readline()  # "listening on http://127.0.0.1:PORT"
    if "listening on " not in line:
        raise RuntimeError(f"the demo upstream did not start: {line!r}")
    env[DEMO_UPSTREAM_ENV] = line.split("listening on ", 1)[1].strip() + "/v1"


def run_up(args: argparse.Namespace, redactor: Redactor) -> int:
    env = dict(os.environ)
    # Issue #17: the system of record is SQLite in the data directory unless one is named.
    env.setdefault("DATABASE_URL", sqlite_url(data_dir(args.data_dir, env)))
    with contextlib.ExitStack() as stack:
        if args.demo:
            _start_demo_upstream(stack, env)
        config = load(args, env)
        redactor.add_secrets(secrets_in(config, Secret))
        redis_url = redis_url_of(config, env)
        if redis_url is None:
            embedded = EmbeddedRedis(config.switchboard_settings.embedded_redis_maxmemory)
            stack.callback(embedded.stop)
            redis_url = embedded.start()
            log.info(
                "started an embedded Redis at %s (maxmemory %d MiB, noeviction)",
                redis_url,
                embedded.maxmemory_bytes // (1024 * 1024),
            )
        env["REDIS_URL"] = redis_url
        url = redis_url
        return run_async(lambda stopping: supervise(config, url, args, env, stopping))
    return 0
