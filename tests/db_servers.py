"""Databases for tests: the machine's PostgreSQL (a database of the run's own, dropped
afterwards), a private PostgreSQL server of a test's own (`initdb` + `pg_ctl` in a temporary
directory, on a free port) for tests that stop, kill or restart it, and SQLite files.

The machine's server is shared with other suites and must never be stopped; a test that needs
an outage starts its own `PrivatePostgres` and stops that one.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import asyncpg

# The machine's PostgreSQL (trust auth); SWITCHBOARD_TEST_DATABASE_URL names another.
SHARED_URL = os.environ.get(
    "SWITCHBOARD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
START_TIMEOUT_S = 60


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def postgres_reachable(url: str = SHARED_URL) -> bool:
    try:
        asyncio.run(_admin(url, "SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def create_database(server_url: str, prefix: str = "sb_test") -> str:
    """A new, empty database on `server_url`'s server; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    # The name is ours (a fixed prefix and hex digits), never input: CREATE DATABASE takes no
    # parameters.
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    return _with_database(server_url, name)


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    server = _with_database(url, "postgres")
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_binaries() -> Path | None:
    """The directory of `initdb` and `pg_ctl` (Debian keeps them off PATH), if installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


class PrivatePostgres:
    """A PostgreSQL server of its own: start, stop, kill -9 and start again at will."""

    def __init__(self) -> None:
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL's initdb/pg_ctl are not installed")
        self.bin = binaries
        self.root = Path(tempfile.mkdtemp(prefix="sb-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # initdb and postgres refuse to run as root: run them as the postgres account then.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*prefix, *argv], check=check, capture_output=True, text=True, timeout=START_TIMEOUT_S
        )

    def init(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            "start",
            "-l",
            str(self.root / "log"),
        )

    def stop(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False
        )

    def kill(self) -> None:
        """kill -9 of the postmaster, as a crash would."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split("\n", 1)[0])
            os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
