"""One /metrics for front doors that share a port (`switchboard up --front-doors N`, issue
#15 item 3).

The kernel gives a shared port's connection to any of the front doors behind it, so each
answering from its own registry would pass one process's counters off as the service's,
and a scraper would see them go down (3, 3, 1, 3, ...). `up` runs its front doors on one
host, which is what prometheus-client's multiprocess mode needs: it gives them one fresh
directory (PROMETHEUS_MULTIPROC_DIR), each process keeps its values in memory-mapped files
there, and whichever front door answers the shared port sums every file
(MultiProcessCollector). Each process's own `--metrics-port` still serves its registry.

Chosen over the alternatives: a front door collecting its siblings' registries over a
private channel would need a channel to each, and a sum that drops (and so goes down)
when a sibling restarts; a port per process with the shared port pointing at them breaks
the scrape config of anyone who scraped the API port. The mode's caveats, and how they are
met: a gauge must say how processes combine (`live*` modes on every front-door gauge, so a
dead process's gauges go with it: `up` calls `forget` when a child exits); a dead
process's counters stay in the directory and keep counting in the sum, so a scraped
counter never goes down while `up` runs (the directory is made empty at start and removed
at exit); the process collector (`process_*`) has no multiprocess form, so the shared
port omits it (each `--metrics-port` has it); counters carry no `_created` samples there.
Workers never share the directory: each serves its own port, on whatever host it runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, MutableMapping

ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def shared_directory(children_env: MutableMapping[str, str]) -> Iterator[str]:
    """A fresh directory for the front doors' values, named in this process's environment
    and in `children_env`; removed at the end. prometheus-client picks its value store when
    it is first imported, so that must not have happened yet in this process."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the metrics directory was set")
    path = tempfile.mkdtemp(prefix="switchboard-metrics-")
    os.environ[ENV] = children_env[ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def is_shared() -> bool:
    """Whether this front door shares its port's metrics with others (see the module doc)."""
    return bool(os.environ.get(ENV))


def without_directory(env: Mapping[str, str]) -> dict[str, str]:
    """`env` for a process that keeps its own registry (a worker)."""
    return {name: value for name, value in env.items() if name != ENV}


def aggregate() -> bytes:
    """Every front door's metrics summed, in the text format."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
    return generate_latest(registry)


def forget(pid: int) -> None:
    """A front door exited: its live gauges leave the sum (its counters stay in it)."""
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid)  # type: ignore[no-untyped-call]  # unannotated upstream
