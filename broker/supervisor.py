"""`switchboard up`: one front door in this process, worker processes (and extra front
doors sharing the port) as children, an embedded Redis when none is configured, and for
`--demo` a local fake upstream. A child that dies is started again; on SIGTERM everything
drains and stops, Redis last. If a background task of this process's own front door dies,
it drains and stops the same way, and `up` exits 1 (broker/frontdoor.py).

`up` names each worker it starts (`--worker-id`, its consumer name in the group), so when
one exits it tells the others at once and they take its requests over without waiting
for its heartbeat to go stale (issue #15). Front doors sharing the port share one
/metrics (broker/shared_metrics.py)."""

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from redis.exceptions import RedisError

from broker import shared_metrics
from broker.admin_cli import DATA_DIR_ENV, data_dir
from broker.config import DEMO_MASTER_KEY_ENV, DEMO_UPSTREAM_ENV, Config
from broker.demo_key import demo_master_key
from broker.demo_seed import DEMO_KEY_BUDGET_USD, SeedFailed, loopback_base, seed_demo
from broker.embedded_redis import EmbeddedRedis
from broker.launch import check_port_free, load, redis_url_of, run_async
from workers import redis_streams
from workers.connect import connect
from workers.db.plain import sqlite_url
from workers.deployment import Secret
from workers.log_redaction import Redactor, mask_secrets, secrets_in
from workers.redis_streams import Keys
from workers.supervision import Supervisor

log = logging.getLogger("switchboard.up")

RESTART_DELAY_S = 1.0
FAKE_START_TIMEOUT_S = 15.0


class Child:
    """One child process, restarted when it dies unexpectedly; `on_exit` runs as soon as it
    has exited (before the restart's delay)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        on_exit: Callable[[Child], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.on_exit = on_exit
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0

    def command(self) -> list[str]:
        return self.argv

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(*self.command(), env=self.env)
        log.info("started %s (pid %d)", self.name, self.process.pid)

    async def keep_alive(self, stopping: asyncio.Event) -> None:
        """Start the child again whenever it exits, until `stopping`; then wait for the owner,
        which stops the child, to cancel this (an end of its own would be a death)."""
        while not stopping.is_set():
            assert self.process is not None
            code = await self.process.wait()
            if stopping.is_set():
                break
            if self.on_exit is not None:
                await self.on_exit(self)
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


class WorkerChild(Child):
    """A worker, named anew at each start: the name is its consumer in the group, and a
    restarted worker must not look like the one that died holding entries."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker_id = ""

    def command(self) -> list[str]:
        # Imported here: the runtime imports prometheus-client, which must come after the
        # shared metrics directory is set (run_up).
        from workers.runtime.worker import new_worker_id

        self.worker_id = new_worker_id()
        return [*self.argv, "--worker-id", self.worker_id]


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
    logging_args = ["--log-level", args.log_level, "--log-format", args.log_format]
    return [sys.executable, "-m", "broker.cli", *logging_args, *command, *source]


async def supervise(
    config: Config,
    redis_url: str,
    args: argparse.Namespace,
    env: Mapping[str, str],
    stopping: asyncio.Event,
) -> None:
    from broker.app import serve_front_door

    metrics = _metrics_ports(args)
    redis = connect(redis_url, max_connections=2)
    keys = Keys(config.switchboard_settings.namespace)

    async def worker_exited(child: Child) -> None:
        # Its requests are taken over now, not after its heartbeat goes stale.
        assert isinstance(child, WorkerChild)
        try:
            await redis_streams.announce_gone(redis, keys, child.worker_id)
        except RedisError as exc:
            log.warning("could not announce that %s exited: %s", child.name, exc)

    async def front_door_exited(child: Child) -> None:
        if shared_metrics.is_shared() and child.process is not None:
            shared_metrics.forget(child.process.pid)

    # Issue #20: batches in processes of their own, at a lower CPU priority
    # (broker/batch_process.py); the others then leave them alone.
    batch_workers = getattr(args, "batch_workers", 0)
    no_batches = ["--no-batches"] if batch_workers else []
    # Issue #19: the callbacks delivered by a process of their own (broker/callbacks_process.py);
    # the serving processes stand by.
    callback_workers = callback_processes(config, args)
    standby = ["--callbacks-standby"] if callback_workers else []
    children: list[Child] = [
        WorkerChild(
            f"worker {i + 1}",
            _child_argv(
                args,
                [
                    "worker",
                    *no_batches,
                    *standby,
                    *metrics(args.front_doors + i, "--metrics-host"),
                ],
            ),
            shared_metrics.without_directory(env),
            on_exit=worker_exited,
        )
        for i in range(args.workers)
    ]
    children += [
        WorkerChild(
            f"batch worker {i + 1}",
            _child_argv(
                args,
                [
                    "worker",
                    "--batches",
                    *standby,
                    *metrics(args.front_doors + args.workers + i, "--metrics-host"),
                ],
            ),
            shared_metrics.without_directory(env),
            on_exit=worker_exited,
        )
        for i in range(batch_workers)
    ]
    callbacks_index = args.front_doors + args.workers + batch_workers  # for its metrics port
    children += [
        # Named anew at each start, as a worker: a consumer of the callbacks' group that
        # died holding events is one whose events the next reader claims.
        WorkerChild(
            f"callbacks process {i + 1}",
            _child_argv(
                args, ["worker", "--callbacks", *metrics(callbacks_index + i, "--metrics-host")]
            ),
            shared_metrics.without_directory(env),
        )
        for i in range(callback_workers)
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
                    *no_batches,
                    *metrics(i + 1, None),
                ],
            ),
            env,
            on_exit=front_door_exited,
        )
        for i in range(args.front_doors - 1)
    ]
    watchers = Supervisor("switchboard up", log)
    for child in children:
        await child.start()
    keep_alive(watchers, children, stopping)
    ready = asyncio.Event()
    banner = asyncio.create_task(_announce(ready, args, redis_url))
    seeding = asyncio.create_task(_seed_demo(ready, config, args, env)) if args.demo else None
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
            batch_role="none" if batch_workers else "beside",
        )
    finally:
        stopping.set()
        banner.cancel()
        if seeding is not None:
            seeding.cancel()
        # Watchers first: a child stopped now is not one to start again.
        await watchers.aclose()
        drain_s = config.switchboard_settings.drain_timeout_s + 5
        await asyncio.gather(*(child.stop(drain_s) for child in children))
        await asyncio.gather(banner, *([seeding] if seeding else []), return_exceptions=True)
        await redis.aclose()


def callback_processes(config: Config, args: argparse.Namespace) -> int:
    """How many callbacks processes to start: `--callback-workers` when the config names a
    callback, none otherwise (nothing would reach them)."""
    from broker.hooks import service_hooks

    wanted: int = getattr(args, "callback_workers", 0)
    if not wanted or service_hooks(config, delivers=False) is None:
        return 0
    return wanted


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
    # How to add a worker to this service from another shell (issue #16).
    config_arg = "--demo" if args.demo else f"--config {args.config}"
    print(
        f"Add a worker: REDIS_URL={mask_secrets(redis_url)} switchboard worker {config_arg}",
        flush=True,
    )
    print(f"Console: http://{args.host}:{args.port}/ui", flush=True)
    key_file = getattr(args, "demo_key_file", None)
    if key_file is not None:
        # The file, never the key: what `up` prints may end up in a log.
        print(f"Demo master key (API, SDKs, console): in {key_file}", flush=True)


async def _seed_demo(
    ready: asyncio.Event, config: Config, args: argparse.Namespace, env: Mapping[str, str]
) -> None:
    """Once the front door is up: the demo key and a little traffic (broker/demo_seed.py),
    so the console opens with data. A failure is logged; the demo runs on without it."""
    await ready.wait()
    master = config.general_settings.master_key
    if master is None or not config.general_settings.database_url:
        return
    base = loopback_base(args.host, args.port)
    try:
        path, answered = await seed_demo(base, str(master), Path(env[DATA_DIR_ENV]))
    except (SeedFailed, aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        log.warning("could not make the demo key or its traffic: %s", exc)
        return
    # The file, never the key: what `up` prints may end up in a log.
    print(
        f"Demo key (a database key with a ${DEMO_KEY_BUDGET_USD:.2f} budget; "
        f"{answered} requests sent for the console to show): in {path}",
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
    # Issue #20: uploaded files and batch outputs live there too (broker/config/loader.py).
    env[DATA_DIR_ENV] = str(data_dir(args.data_dir, env))
    with contextlib.ExitStack() as stack:
        if args.front_doors > 1:
            # First: prometheus-client picks its value store when it is imported.
            stack.enter_context(shared_metrics.shared_directory(env))
        if args.demo:
            _start_demo_upstream(stack, env)
            if not env.get(DEMO_MASTER_KEY_ENV):
                key, path = demo_master_key(data_dir(args.data_dir, env))
                env[DEMO_MASTER_KEY_ENV] = key
                args.demo_key_file = path
        config = load(args, env)
        redactor.add_secrets(secrets_in(config, Secret))
        check_port_free(args.host, args.port)
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
