"""What a front door answers itself (a cache hit, a guardrail's block before queueing) onto
the finished-request stream (issue #19), so the callbacks' consumer group delivers it like
any worker-served request: durably, batched, with retries.

The front door's cache and guardrails `offer` a `FrontDoorAnswer` to its dispatcher, as
before; this dispatcher's delivery is one XADD per event, from its own task, off the path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from redis.asyncio import Redis

from workers import envelopes
from workers.hooks.dispatch import CallbackDispatcher, Item
from workers.hooks.registry import Callbacks
from workers.hooks.service import FrontDoorAnswer, without_text
from workers.redis_streams import Keys, finished_events
from workers.tenancy import events
from workers.tenancy.events import FinishedCall

log = logging.getLogger("switchboard.callbacks")
RETRY_PAUSE_S = 1.0


class FrontDoorEvents(CallbackDispatcher):
    """The front door's dispatcher: bounded in memory only until the XADD (a Redis that
    cannot be reached is retried; past `max_queue` the oldest answer is dropped, counted)."""

    def __init__(self, callbacks: Callbacks, redis: Redis, keys: Keys, *, max_queue: int) -> None:
        super().__init__(callbacks, max_queue=max_queue)
        self.redis = redis
        self.keys = keys

    @property
    def is_active(self) -> bool:
        return True  # the stream's consumer decides who gets it (a team's lists, say)

    async def _deliver(self, item: Item) -> None:
        if not isinstance(item, FrontDoorAnswer):
            return  # the front door offers nothing else
        call = events.encode(finished_call(item, self.callbacks.turn_off_message_logging))
        while True:
            try:
                await finished_events.append_call_now(self.redis, self.keys, item.request_id, call)
            except Exception:  # Redis away for a moment: the stream is the only way on
                log.warning("could not add a front door answer to the stream; retrying")
                await asyncio.sleep(RETRY_PAUSE_S)
            else:
                self.delivered["stream"] += 1
                return


def finished_call(answer: FrontDoorAnswer, redact: bool) -> FinishedCall:
    response = answer.response
    error = answer.error
    usage = _usage(response) if response is not None else {}
    meta = envelopes.Meta(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        # A cached answer costs nothing this time (what it saved is a metric).
        cost_usd=0.0 if response is not None else None,
    )
    started_ms = int(answer.started_s * 1000)
    body = answer.body
    if response is None:
        end, status = envelopes.ERROR, error.http_status if error else 500
        written = error.to_json() if error else b""
    else:
        end, status, written = envelopes.RESPONSE, 200, b"" if redact else response
    return FinishedCall(
        kind=answer.kind,
        ingress=envelopes.INGRESS_CHAT,
        model_group=answer.model_group,
        stream=answer.stream,
        lane="",
        enqueued_ms=started_ms,
        started_ms=started_ms,
        ended_ms=int(answer.ended_s * 1000),
        end=end,
        status=status,
        body=without_text(body) if redact else body,
        response=written,
        meta=meta,
        key_alias=answer.api_key_alias,
        cache_hit=response is not None,
        team_id=answer.team_id,
    )


def _usage(response: bytes) -> dict[str, Any]:
    try:
        usage = orjson.loads(response).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return usage if isinstance(usage, dict) else {}
