"""Processes under test: start them (optionally pinned with taskset), wait for them, and read
the CPU time and resident memory of a whole process tree from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """`taskset -c <cpus> argv` when pinning is asked for and possible."""
    if cpus is None or not Path("/usr/bin/taskset").exists():
        return list(argv)
    return ["taskset", "-c", cpus, *argv]


def descendants(root: int) -> list[int]:
    """`root` and every process below it (redis, workers, uvicorn children)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_s(pids: Sequence[int]) -> float:
    """User + system CPU seconds the processes have used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS_PER_S


def thread_cpu_s(pid: int) -> tuple[float, float]:
    """A process's CPU seconds so far: its main thread's (the event loop's) and the rest's
    (the OpenTelemetry SDK's exporter, asyncio.to_thread's pool, aiosqlite)."""
    main = others = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            used = int(fields[11]) + int(fields[12])
            if task.name == str(pid):
                main += used
            else:
                others += used
    return main / TICKS_PER_S, others / TICKS_PER_S


def rss_bytes(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    return total


@dataclass
class TreeUsage:
    cpu_s: float
    peak_rss_bytes: int
    peak_root_rss_bytes: int  # the root process alone (a front door)
    # The gateway's own processes, its Redis left out: Redis holds the queue and every reply
    # for reply_ttl_s, so its size follows the traffic of the last minutes, by design.
    peak_processes_rss_bytes: int
    peak_redis_rss_bytes: int


def is_redis(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip() == "redis-server"
    return False


class TreeMonitor:
    """Samples a process tree's memory while a scenario runs; CPU from the start/stop delta."""

    def __init__(self, root: int, interval_s: float = 0.2) -> None:
        self.root = root
        self.interval_s = interval_s
        self.pids = descendants(root)
        self._cpu0 = 0.0
        self._peak = 0
        self._peak_root = 0
        self._peak_processes = 0
        self._peak_redis = 0
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        redis = [pid for pid in self.pids if is_redis(pid)]
        others = [pid for pid in self.pids if pid not in redis]
        processes, in_redis = rss_bytes(others), rss_bytes(redis)
        self._peak = max(self._peak, processes + in_redis)
        self._peak_root = max(self._peak_root, rss_bytes([self.root]))
        self._peak_processes = max(self._peak_processes, processes)
        self._peak_redis = max(self._peak_redis, in_redis)

    async def _loop(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self.pids = descendants(self.root)
        self._cpu0 = cpu_s(self.pids)
        self._peak = self._peak_root = self._peak_processes = self._peak_redis = 0
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> TreeUsage:
        used = cpu_s(self.pids) - self._cpu0
        self._sample()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return TreeUsage(used, self._peak, self._peak_root, self._peak_processes, self._peak_redis)


class Service:
    """A server process started for a benchmark and stopped (with its tree) afterwards."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout_s: float = 20.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        tree = descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        for pid in tree[1:]:  # children the root did not stop (uvicorn workers, redis)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


async def wait_http_ready(port: int, path: str, timeout_s: float, service: Service) -> None:
    """Poll `GET path` until it answers 200, or fail with the service's log."""
    deadline = time.monotonic() + timeout_s
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if service.process is not None and service.process.poll() is not None:
            break
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await reader.read(64)
            writer.close()
            if head.startswith(b"HTTP/1.1 200"):
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{service.name} did not become ready:\n{service.log_tail()}")
