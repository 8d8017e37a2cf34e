"""The callbacks of a config, as each process sets them up (issue #19): the worker's, fed by
its reply writer, and the front door's, for the requests it answers itself (cache hits,
guardrail blocks before queueing), which no worker sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from broker.config.errors import ConfigError
from broker.config.loader import Config
from broker.frontdoor import FrontDoor
from workers.hooks.service import ServiceHooks

if TYPE_CHECKING:
    from workers.hooks.tracing import Tracing


def service_hooks(config: Config, tracing: Tracing | None = None) -> ServiceHooks | None:
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
            tracing=tracing,
        )
    except ValueError as exc:  # a name neither built in nor importable, a missing section
        raise ConfigError("litellm_settings.callbacks", str(exc)) from exc


FRONT_HOOKS = web.AppKey("front_hooks", ServiceHooks)


def front_hooks_ctx(
    config: Config, front_door: web.AppKey[FrontDoor], tracing: Tracing | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The front door's callbacks, delivered by a task its supervisor owns; what is queued
    is delivered (within a grace) before the front door closes."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        hooks = service_hooks(config, tracing)
        if hooks is None:
            yield
            return
        front = app[front_door]
        front.tasks.start("callbacks", hooks.dispatcher.run, restart_after_s=1.0)
        app[FRONT_HOOKS] = hooks
        yield
        await hooks.dispatcher.aclose()

    return ctx
