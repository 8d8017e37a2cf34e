"""`switchboard worker --batches`: a process given to batches alone (issue #20), at a lower
CPU priority than the rest of the service.

A batch line costs CPU wherever it runs: the runner that queues it and writes its result,
the worker that calls the provider, Redis. Run beside interactive requests in the same
processes, that CPU is taken from them through the event loop: an interactive step waits
behind batch steps, however the lines are paced (benchmarks/BATCHES.md). So this process
holds all of a batch's own work, the runners (as a front door without a socket: the same
admission, limits, budgets and spend per line) and a worker that reads the batch lane only,
and lowers its priority (`batches.nice`, and Linux's SCHED_IDLE: `batches.sched_idle`)
before it starts: the kernel gives the CPU to the interactive processes whenever they want
it, and batch lines run on what they leave.

The rest of the service is then told to leave batches alone: `serve --no-batches` (no
runner), `worker --no-batches` (the interactive lanes only). `switchboard up` does this
itself (`--batch-workers`, default 1).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import msgspec
from aiohttp import web

from broker.callbacks_process import standing_by
from broker.config.loader import Config
from workers.runtime.options import RuntimeOptions
from workers.settings.switchboard import SwitchboardSettings

log = logging.getLogger("switchboard.batches")


def batch_lane_options(options: RuntimeOptions, settings: SwitchboardSettings) -> RuntimeOptions:
    """A worker of the batch lane alone: every slot is the batch's (no interactive request
    arrives here to leave room for), read as an ordinary lane."""
    return msgspec.structs.replace(options, lanes=(settings.batches.lane,), batch_lane=None)


def interactive_options(options: RuntimeOptions, settings: SwitchboardSettings) -> RuntimeOptions:
    """A worker of the interactive lanes alone: batch processes read the batch lane, and
    deliver the callbacks unless they fall behind (`standing_by`), or stand by too for a
    callbacks process (broker/callbacks_process.py)."""
    return standing_by(
        msgspec.structs.replace(options, lanes=tuple(settings.lanes), batch_lane=None)
    )


def lower_priority(steps: int, *, is_idle: bool) -> str:
    """Lower this process's CPU priority by `steps` (as `nice -n`) and, with `is_idle`, to
    SCHED_IDLE (Linux); before any thread starts, so that its threads inherit it. What it
    is now, for the log."""
    niceness = os.nice(0)
    policy = "normal"
    try:
        if steps:
            niceness = os.nice(steps)
        if is_idle and hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            policy = "idle"
    except OSError as exc:  # a sandbox may refuse even this; the batch still runs
        log.warning("could not lower the batch process's priority: %s", exc)
    return f"nice {niceness}, scheduling policy {policy}"


async def serve_batches(
    config: Config, redis_url: str, args: argparse.Namespace, stopping: asyncio.Event
) -> None:
    """The batch runners and the batch lane's worker, in this process, until `stopping`;
    with `--callbacks-standby`, its callbacks' consumer leaves the delivery to a callbacks
    process unless that falls behind."""
    # Imported here, as for `worker`: `up` sets the shared metrics directory first.
    from prometheus_client import CollectorRegistry

    from broker.app import create_app
    from broker.hooks import service_hooks
    from workers.routing.plan import build_plan
    from workers.runtime.process import serve_worker

    settings = config.switchboard_settings
    priority = lower_priority(settings.batches.nice, is_idle=settings.batches.sched_idle)
    # The runners' front-door metrics (batches, lines, spend) have no port of their own: the
    # worker's --metrics-port serves them beside its own.
    runner_metrics = CollectorRegistry()
    app = create_app(config, redis_url, registry=runner_metrics, batch_role="alone")
    runners = web.AppRunner(app, handle_signals=False, access_log=None)
    await runners.setup()  # opens the front door's parts and starts the runners; no socket
    log.info("batch process ready: runners and lane %s at %s", settings.batches.lane, priority)
    options = batch_lane_options(
        RuntimeOptions.from_settings(settings, concurrency=args.concurrency), settings
    )
    if args.callbacks_standby:
        options = standing_by(options)
    try:
        await serve_worker(
            build_plan(config.deployments, config.model_list, config.router_settings),
            redis_url,
            options,
            stopping=stopping,
            worker_id=args.worker_id,
            metrics_host=args.metrics_host,
            metrics_port=args.metrics_port,
            hooks=service_hooks(config),
            also_served=runner_metrics,
        )
    finally:
        await runners.cleanup()
