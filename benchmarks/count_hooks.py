"""Counters inside a gateway process, for benchmarks/request_counts.py: asyncio tasks created,
redis-py round trips, and bytes written to and read from Redis.

benchmarks.request_counts copies this file as `sitecustomize.py` into a folder it puts first
on the gateway's PYTHONPATH, so Python runs it as every process of `switchboard up` starts
(the front door, the workers), before any of the service's code. It does nothing unless
COUNT_DIR_ENV names a folder; then it

- gives every event loop that an `asyncio.Runner` makes (`broker` runs its processes on one,
  with uvloop's loop factory when installed) a task factory that counts each task,
- wraps redis-py's asyncio connection (loaded whenever the service imports it): one round
  trip per `send_packed_command` (a command sent alone, or a whole pipeline or transaction:
  redis-py sends each as one write and then reads the replies), the bytes of each such
  write, and the bytes its connection's reader returns,
- writes the counters to `<COUNT_DIR>/<pid>.json` on SIGUSR2 and at exit, so a benchmark can
  read them before and after a window and subtract.

Self-contained (the standard library and redis-py only): it also runs inside older
checkouts, whose `benchmarks` package is not this one.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.abc
import importlib.machinery
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

COUNT_DIR_ENV = "SWITCHBOARD_COUNT_DIR"
DUMP_SIGNAL = signal.SIGUSR2
REDIS_CONNECTION_MODULE = "redis.asyncio.connection"

COUNTS: dict[str, int] = {
    "dumps": 0,  # how many times this file was written: a reader waits for it to move
    "tasks": 0,
    "redis_round_trips": 0,
    "redis_bytes_written": 0,
    "redis_bytes_read": 0,
}


# A round trip's shape: the names of the commands it sends, in order ("XREADGROUP",
# "EVALSHA 1a2b3c4+PUBLISH+XACK"): which calls a request's round trips are.
SHAPES: dict[str, int] = {}
_COMMAND = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n(?:\$\d+\r\n([0-9a-f]{7}))?")


def shape_of(packed: bytes) -> str:
    names = []
    for name, sha in _COMMAND.findall(packed):
        text = name.decode().upper()
        names.append(f"{text} {sha.decode()}" if text == "EVALSHA" and sha else text)
    return "+".join(names)


def counts_path(directory: Path, pid: int) -> Path:
    return directory / f"{pid}.json"


def dump(directory: Path) -> None:
    """Written whole to a temporary name and renamed: a reader never sees half a file."""
    COUNTS["dumps"] += 1
    record = {"pid": os.getpid(), "argv": sys.argv, **COUNTS, "shapes": SHAPES}
    path = counts_path(directory, os.getpid())
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record))
    partial.replace(path)


# --- asyncio tasks ----------------------------------------------------------------------


def count_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
) -> asyncio.Task[Any]:
    """The default factory's work (a C `asyncio.Task`), counted."""
    COUNTS["tasks"] += 1
    return asyncio.Task(coro, loop=loop, **kwargs)


def count_tasks_of_every_runner() -> None:
    """`Runner._lazy_init` makes the loop (from `loop_factory`, or asyncio's own): the one
    place that sees every loop a Runner runs, whichever factory the checkout passes."""
    original = asyncio.Runner._lazy_init  # type: ignore[attr-defined]

    def lazy_init(self: asyncio.Runner) -> None:
        original(self)
        loop: asyncio.AbstractEventLoop = self._loop  # type: ignore[attr-defined]
        if loop.get_task_factory() is None:
            loop.set_task_factory(count_task)  # type: ignore[arg-type]

    asyncio.Runner._lazy_init = lazy_init  # type: ignore[attr-defined]


# --- redis-py ---------------------------------------------------------------------------


class CountingStreamReader(asyncio.StreamReader):
    """A Redis connection's reader, counting the bytes its parser takes (redis-py's hiredis
    parser calls `read`, its pure-Python ones `readline` and `readexactly`)."""

    async def read(self, n: int = -1) -> bytes:
        data = await super().read(n)
        COUNTS["redis_bytes_read"] += len(data)
        return data

    async def readline(self) -> bytes:
        data = await super().readline()
        COUNTS["redis_bytes_read"] += len(data)
        return data

    async def readexactly(self, n: int) -> bytes:
        data = await super().readexactly(n)
        COUNTS["redis_bytes_read"] += len(data)
        return data


def patch_redis_connection(module: ModuleType) -> None:
    abstract = module.AbstractConnection
    send_packed_command = abstract.send_packed_command

    async def counted_send(
        self: Any, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        command = list(command)
        COUNTS["redis_round_trips"] += 1
        COUNTS["redis_bytes_written"] += sum(len(part) for part in command)
        shape = shape_of(b"".join(command))
        SHAPES[shape] = SHAPES.get(shape, 0) + 1
        await send_packed_command(self, command, check_health)

    abstract.send_packed_command = counted_send
    # Each transport's `_connect` opens the stream; its reader then counts what it returns.
    for connection in (module.Connection, module.UnixDomainSocketConnection):
        connection._connect = _counting_reader_after(connection._connect)


def _counting_reader_after(
    connect: Callable[[Any], Coroutine[Any, Any, None]],
) -> Callable[[Any], Coroutine[Any, Any, None]]:
    async def counted_connect(self: Any) -> None:
        await connect(self)
        if type(self._reader) is asyncio.StreamReader:
            self._reader.__class__ = CountingStreamReader

    return counted_connect


class _PatchAfterLoad(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        patch_redis_connection(module)


class _RedisConnectionFinder(importlib.abc.MetaPathFinder):
    """Patches redis-py's connection module as it loads, rather than importing redis-py here:
    the service decides when (and how: workers/redis_without_otel.py) redis-py loads."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != REDIS_CONNECTION_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchAfterLoad(spec.loader)
        return spec


def install(directory: Path) -> None:
    count_tasks_of_every_runner()
    if REDIS_CONNECTION_MODULE in sys.modules:
        patch_redis_connection(sys.modules[REDIS_CONNECTION_MODULE])
    else:
        sys.meta_path.insert(0, _RedisConnectionFinder())
    # A plain handler: it runs on the main thread between two bytecodes, when no task is
    # halfway through a counter update.
    signal.signal(DUMP_SIGNAL, lambda signum, frame: dump(directory))
    atexit.register(dump, directory)


if os.environ.get(COUNT_DIR_ENV):
    install(Path(os.environ[COUNT_DIR_ENV]))
