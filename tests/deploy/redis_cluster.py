"""A throwaway local Redis Cluster for tests: three masters, no replicas, in a temp dir on
free ports, started with the machine's redis-server and redis-cli, stopped afterwards."""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.waiting import eventually_sync

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
START_TIMEOUT_S = 20.0
MASTERS = 3


def free_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (port + 10000) is free too; Redis refuses ports
    above 55535 for that reason."""
    for _ in range(200):
        port = random.randint(20_000, 45_000)
        if {port, port + 10_000} & taken:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        taken.update({port, port + 10_000})
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _cli(port: int, *args: str) -> str:
    assert REDIS_CLI is not None
    done = subprocess.run(
        [REDIS_CLI, "-p", str(port), *args], capture_output=True, text=True, timeout=10
    )
    return done.stdout + done.stderr


def _says(port: int, text: str, *command: str) -> Callable[[], bool]:
    """Whether `redis-cli -p port command...` prints `text`, asked afresh at each call."""
    return lambda: text in _cli(port, *command)


def _wait(condition: str, check: Callable[[], bool]) -> None:
    eventually_sync(
        check, timeout_s=START_TIMEOUT_S, poll_s=0.1, what=f"redis cluster: {condition}"
    )


@contextlib.contextmanager
def redis_cluster(workdir: Path) -> Iterator[list[int]]:
    """Start the cluster; yields its nodes' ports once every slot is served."""
    assert REDIS_SERVER is not None
    taken: set[int] = set()
    ports = [free_port(taken) for _ in range(MASTERS)]
    processes = []
    try:
        for port in ports:
            node = workdir / str(port)
            node.mkdir()
            argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1"]
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            argv += ["--dir", str(node), "--save", "", "--appendonly", "no"]
            log = (node / "redis.log").open("wb")
            processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        for port in ports:
            _wait(f"node {port} answers", _says(port, "PONG", "ping"))
        nodes = [f"127.0.0.1:{port}" for port in ports]
        _cli(ports[0], "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes")
        for port in ports:
            _wait(
                f"node {port} sees the cluster ok",
                _says(port, "cluster_state:ok", "cluster", "info"),
            )
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
