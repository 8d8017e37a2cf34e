"""The callbacks of a config, as each process sets them up (issue #19): the worker's, whose
final records feed the finished-request stream and whose consumer delivers it
(workers/hooks/consumer.py), and the front door's, which puts the requests it answers itself
(cache hits, guardrail blocks before queueing) on the same stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from broker.config.errors import ConfigError
from broker.config.loader import Config
from broker.frontdoor import FrontDoor
from workers.hooks.front_events import FrontDoorEvents
from workers.hooks.service import ServiceHooks


def service_hooks(config: Config) -> ServiceHooks | None:
    """The callbacks litellm_settings names, set up by callback_settings; None without any.
    A name neither built in nor importable stops the start (exit 2)."""
    settings = config.litellm_settings
    try:
        return ServiceHooks.from_config(
            success_callback=settings.success_callback,
            failure_callback=settings.failure_callback,
            callbacks=settings.callbacks,
            turn_off_message_logging=settings.turn_off_message_logging,
            settings=config.callback_settings,
            guardrails=list(config.guardrails),
            team_settings=list(settings.default_team_settings),
        )
    except ValueError as exc:  # a name neither built in nor importable, a missing section
        raise ConfigError("litellm_settings.callbacks", str(exc)) from exc


FRONT_HOOKS = web.AppKey("front_hooks", ServiceHooks)


def front_hooks_ctx(
    config: Config, front_door: web.AppKey[FrontDoor]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The front door's answers onto the stream, by a task its supervisor owns; what is
    offered is added (within a grace) before the front door closes."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        hooks = service_hooks(config)
        if hooks is None:
            yield
            return
        front = app[front_door]
        hooks.dispatcher = FrontDoorEvents(
            hooks.callbacks, front.redis, front.keys, max_queue=config.callback_settings.max_queue
        )
        front.tasks.start("callbacks", hooks.dispatcher.run, restart_after_s=1.0)
        app[FRONT_HOOKS] = hooks
        yield
        await hooks.dispatcher.aclose()

    return ctx
