"""`switchboard worker --callbacks`: a process that delivers the callbacks alone (issue #19),
at the ordinary CPU priority, and serves no request.

What a callback costs is mostly CPU: the OpenTelemetry SDK's protobuf encoding of a
request's spans (four of them, about a tenth of what serving the request costs), a
webhook's JSON, a custom logger's Python. Run in a worker that serves requests, that CPU is
taken through the event loop: the encoding runs in a thread that holds the GIL, and each
request the worker serves meanwhile waits for it at every wake-up. Run in the batch process
(issue #20), it waits too long: that process is SCHED_IDLE, so under a load that saturates
the CPU it gets none, falls behind, and an interactive worker takes the delivery over. So
this process holds the callbacks' consumer (workers/hooks/consumer.py) and nothing else: the
kernel shares the CPU between it and the serving processes, none of which encodes a span
while it keeps up.

The others stand by (`worker --callbacks-standby`, which `switchboard up` passes when it
starts this process): their consumers of the same group read only when this one's reading
falls `CALLBACKS_STAND_BY_S` behind, so a callbacks process that died, or was stopped,
loses nothing and leaves a backlog of seconds. Its own unacknowledged events are claimed by
whichever consumer reads next (`claim_idle`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

import msgspec

from broker.config.loader import Config
from broker.launch import SetupError
from workers.runtime.options import RuntimeOptions

log = logging.getLogger("switchboard.callbacks")
# How far the delivering process's reading may lag (the age of the oldest event it has not
# read) before the processes standing by read too: above its usual cycle (a 1 s
# blocking read, the 0.5 s linger, an export), and soon enough that a delivering process
# starved of CPU (a batch process at SCHED_IDLE on a busy core) or gone leaves a backlog of
# seconds, not the cap.
CALLBACKS_STAND_BY_S = 3.0
# Its Redis connections: the blocking read, the acks and the cap's trim, /metrics' reads.
REDIS_POOL_SIZE = 4


def standing_by(options: RuntimeOptions) -> RuntimeOptions:
    """A serving worker's options when another process delivers the callbacks."""
    return msgspec.structs.replace(options, callbacks_stand_by_s=CALLBACKS_STAND_BY_S)


def consumer_name(worker_id: str | None) -> str:
    """Its consumer in the group: `callbacks-` and the id `up` gives each start (a new one
    each time, so that a restarted process is not taken for the one that died)."""
    # Imported here: the runtime imports prometheus-client, after `up` set its directory.
    from workers.runtime.worker import new_worker_id

    return f"callbacks-{worker_id or new_worker_id()}"


async def serve_callbacks(
    config: Config, redis_url: str, args: argparse.Namespace, stopping: asyncio.Event
) -> None:
    """Deliver the config's callbacks until `stopping`, then what is left on the stream
    (within the consumer's grace); with `--metrics-port`, its /metrics (the callbacks'
    delivered, failed, dropped and backlog series, and the process's own)."""
    # Imported here, as for `worker`: `up` sets the shared metrics directory first.
    from prometheus_client import CollectorRegistry, ProcessCollector

    from broker.hooks import service_hooks
    from workers.connect import connect
    from workers.hooks import hook_metrics
    from workers.hooks.consumer import CLOSE_GRACE_S, CallbackConsumer
    from workers.redis_streams import Keys
    from workers.runtime.worker_metrics import metrics_endpoint
    from workers.supervision import Supervisor

    hooks = service_hooks(config)
    if hooks is None:
        raise SetupError("worker --callbacks: the config names no callback to deliver")
    redis = connect(redis_url, max_connections=REDIS_POOL_SIZE)
    consumer = CallbackConsumer(
        redis,
        Keys(config.switchboard_settings.namespace),
        hooks,
        consumer_name(args.worker_id),
    )
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    hook_metrics.register(registry, consumer)
    tasks = Supervisor("callbacks process", log)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if args.metrics_port is not None:
                port = await stack.enter_async_context(
                    metrics_endpoint(registry, args.metrics_host, args.metrics_port)
                )
                log.info("callbacks metrics on http://%s:%d/metrics", args.metrics_host, port)
            async with tasks:
                # A delivery loop that dies (a bug) is started again, as in a worker.
                tasks.start("callbacks", consumer.run, restart_after_s=1.0)
                log.info("callbacks process ready: consumer %s", consumer.consumer)
                stop = asyncio.create_task(stopping.wait())
                died = asyncio.create_task(tasks.wait())
                try:
                    await asyncio.wait((stop, died), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop.cancel()
                    died.cancel()
                # Deliver what is on the stream while the loop still runs (no wait when it
                # died: nothing would deliver), then close the built-ins.
                await consumer.aclose(grace_s=0.0 if tasks.death else CLOSE_GRACE_S)
            await consumer.leave()  # the loop has stopped: it reads (and rejoins) no more
        tasks.check()
    finally:
        await redis.aclose()
