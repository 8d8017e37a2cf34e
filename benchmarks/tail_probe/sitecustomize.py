"""`python -m benchmarks.tail_segments --probe`: when each process of the gateway does its
background work, for the slow requests to be placed against.

Python imports a `sitecustomize` module at start from its path; the driver puts this folder
on the gateway's PYTHONPATH with TAIL_PROBE_DIR set, so every Switchboard process (front
door, worker, batch process) wraps, before anything runs:

    ledger-write     the spend ledger's batch into SQLite (LedgerWriter._write)
    fd-spans         the front door's span records onto the stream (FrontDoorTracing.flush)
    cb-export-ROLE   a callbacks consumer's span export, in a thread (worker or batch)
    cb-try-ROLE      the same with the spans' building on the loop before it
    gcN-ROLE         a cycle collection of generation N
    job, upstream    a worker's job, and its call to an OpenAI upstream within it (ns, where
                     the spans' worker times are ms)

and writes each as `name start_ns end_ns` to TAIL_PROBE_DIR/<pid>-<role>.txt. A measuring
aid only: nothing in the gateway imports it.
"""

from __future__ import annotations

import atexit
import functools
import gc
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

_FOLDER = os.environ.get("TAIL_PROBE_DIR")
_ARGV = Path("/proc/self/cmdline").read_bytes().split(b"\0")
_events: list[tuple[str, int, int]] = []


def _role() -> str:
    if b"up" in _ARGV:
        return "frontdoor"
    return "batch" if b"--batches" in _ARGV else "worker"


def _flush() -> None:
    """Append what was noted since the last flush (a write per 100 events, off the path)."""
    assert _FOLDER is not None
    with Path(_FOLDER, f"{os.getpid()}-{_role()}.txt").open("a") as out:
        out.write("".join(f"{name} {start} {end}\n" for name, start, end in _events))
    _events.clear()


def _note(name: str, start_ns: int) -> None:
    _events.append((name, start_ns, time.time_ns()))
    if len(_events) >= 100:
        _flush()


def _wrap_async(owner: type, attribute: str, name: str) -> None:
    wrapped: Callable[..., Coroutine[Any, Any, Any]] = getattr(owner, attribute)

    @functools.wraps(wrapped)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        start_ns = time.time_ns()
        try:
            return await wrapped(*args, **kwargs)
        finally:
            _note(name, start_ns)

    setattr(owner, attribute, timed)


def _wrap(owner: type, attribute: str, name: str) -> None:
    wrapped: Callable[..., Any] = getattr(owner, attribute)

    @functools.wraps(wrapped)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start_ns = time.time_ns()
        try:
            return wrapped(*args, **kwargs)
        finally:
            _note(name, start_ns)

    setattr(owner, attribute, timed)


def _install() -> None:
    from workers.hooks import consumer, front_spans, tracing
    from workers.providers.openai import OpenAIAdapter
    from workers.runtime.execute import Executor
    from workers.tenancy import ledger

    role = _role()
    _wrap_async(ledger.LedgerWriter, "_write", "ledger-write")
    _wrap_async(front_spans.FrontDoorTracing, "flush", "fd-spans")
    _wrap(tracing.SpanExport, "export", f"cb-export-{role}")
    _wrap_async(consumer.CallbackConsumer, "_try", f"cb-try-{role}")
    _wrap_async(Executor, "run", "job")
    _wrap_async(OpenAIAdapter, "chat", "upstream")
    started = [0]

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.time_ns()
        else:
            _note(f"gc{info['generation']}-{role}", started[0])

    gc.callbacks.append(collected)
    atexit.register(_flush)


if _FOLDER is not None and b"broker.cli" in _ARGV:
    _install()
