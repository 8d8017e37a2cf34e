"""The front door's guardrails (issue #19; the rules are workers/hooks/guardrails.py):
`pre_call` before anything is queued, `during_call` beside the worker's provider call
(a block cancels it), `post_call` on a whole answer before the client gets it.

Per-guardrail metrics: checks by result (passed, masked, blocked) and their latency.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from broker.auth import Caller
from broker.config.errors import ConfigError
from broker.config.loader import Config
from broker.frontdoor import FrontDoor
from broker.hooks import FRONT_HOOKS, answered_here, team_of
from broker.relay import Relay
from broker.reply_hub import Queued
from workers import envelopes
from workers.envelopes import KIND_CHAT, KIND_EMBEDDING, KIND_TEXT_COMPLETION, Envelope, Record
from workers.hooks.api_shapes import frame_event, parse_event, stream_slots
from workers.hooks.guardrail_base import GuardrailBlocked
from workers.hooks.guardrail_builtins import LlmJudge, OpenAIModeration, SessionSource
from workers.hooks.guardrails import Guardrails, caller_view, requested
from workers.hooks.service import FrontDoorAnswer, ServiceHooks
from workers.http import HttpClient
from workers.settings.hooks import Guardrail

# A check takes from microseconds (a regex) to seconds (a model as judge).
DURATION_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0)
# LiteLLM's call type for each API a request came in (a custom guardrail's `call_type`).
_CALL_TYPES = {
    "chat": "completion",
    "embedding": "embeddings",
    "text_completion": "text_completion",
    "messages": "anthropic_messages",
    "responses": "responses",
}
_KINDS = {"embedding": KIND_EMBEDDING, "text_completion": KIND_TEXT_COMPLETION}


class GuardrailMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.checks = Counter(
            "switchboard_guardrail_checks_total",
            "Guardrail checks, by guardrail and result: passed, masked (the text was "
            "rewritten) or blocked (the request or its answer was refused).",
            ["guardrail", "result"],
            registry=registry,
        )
        self.duration = Histogram(
            "switchboard_guardrail_duration_seconds",
            "Time one guardrail check took.",
            ["guardrail"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def observe(self, name: str, result: str, seconds: float) -> None:
        self.checks.labels(name, result).inc()
        self.duration.labels(name).observe(seconds)


class FrontDoorGuardrails:
    def __init__(
        self,
        entries: list[Guardrail],
        metrics: GuardrailMetrics,
        hooks: ServiceHooks | None,
        front: FrontDoor | None = None,
        session: SessionSource | None = None,
    ) -> None:
        self.rules = Guardrails(entries, observer=metrics.observe)
        # Per key: the guardrails its requests always run (switchboard_settings.api_keys).
        self.by_key: dict[str, list[str]] = {}
        if front is not None:
            for key in front.settings.api_keys:
                if key.guardrails:
                    self.by_key[key.alias] = list(key.guardrails)
            for entry in self.rules.entries.values():
                if isinstance(entry.guard, LlmJudge):
                    entry.guard.ask = functools.partial(ask_model, front)
                elif isinstance(entry.guard, OpenAIModeration) and session is not None:
                    group = front.config.deployments.get(entry.guard.model)
                    entry.guard.connect(session, list(group) if group else None)
        # The front door's callbacks: a request blocked before queueing no worker sees.
        self.hooks = hooks

    async def before(self, body: bytes, caller: Caller, kind: str) -> tuple[bytes, dict[str, Any]]:
        """pre_call: the body to queue (rewritten if a guardrail masked it) and its object.
        A block raises GuardrailBlocked (a 400); nothing has been queued."""
        data: dict[str, Any] = orjson.loads(body)
        self.rules.check_names(data)
        for_key = [*self.by_key.get(caller.alias, ()), *key_guardrails(caller)]
        if for_key:
            data["guardrails"] = sorted(requested(data) | set(for_key))
            # A database key may name a guardrail the config dropped since: refused, not
            # skipped. The body carries the key's list, so the cache keys on it too.
            self.rules.check_names(data)
            body = orjson.dumps(data)
        started_s = time.time()
        try:
            if await self.rules.pre_call(data, caller_view(caller.alias), _CALL_TYPES[kind]):
                body = orjson.dumps(data)
        except GuardrailBlocked as exc:
            if self.hooks is not None:
                answered_here(
                    self.hooks,
                    FrontDoorAnswer(
                        request_id=caller.new_request_id(),
                        kind=_KINDS.get(kind, KIND_CHAT),
                        model_group=str(data.get("model", "")),
                        body=body,
                        started_s=started_s,
                        stream=bool(data.get("stream")),
                        api_key_alias=caller.alias,
                        error=exc,
                        team_id=team_of(caller),
                    ),
                )
            raise
        return body, data

    def attach(self, relay: Relay, data: dict[str, Any], caller: Caller, kind: str) -> None:
        """during_call beside the provider call; post_call on a whole (non-stream) answer."""
        who = caller_view(caller.alias)
        if self.rules.selected(data, "during_call"):
            relay.gate = self.rules.during_call(data, who, _CALL_TYPES[kind])
        if not relay.stream and self.rules.selected(data, "post_call"):

            async def check(body: bytes) -> bytes:
                response = orjson.loads(body)
                if await self.rules.post_call(data, who, response):
                    return orjson.dumps(response)
                return body

            relay.check_answer = check
        elif relay.stream and self.rules.selected(data, "post_call"):
            relay.check_record = StreamCheck(self.rules, data, who)


def key_guardrails(caller: Caller) -> tuple[str, ...]:
    """The guardrails a database key carries (/key/generate's `guardrails`)."""
    principal = caller.principal
    return () if principal is None else principal.key.guardrails


class StreamCheck:
    """post_call on a stream: masking built-ins rewrite each chunk's text as it passes (a
    match split across two chunks slips through); at the end every post_call guardrail
    checks the assembled text, and a block ends the stream with its error event instead
    of `[DONE]` (the text already sent stays sent)."""

    def __init__(self, rules: Guardrails, data: dict[str, Any], who: Any) -> None:
        self.rules = rules
        self.data = data
        self.who = who
        self.masks = rules.masks_answers(data)
        self.texts: dict[int, list[str]] = {}

    async def __call__(self, record: Record) -> Record:
        if record.chunks:
            record = msgspec.structs.replace(
                record, chunks=[await self._chunk(raw) for raw in record.chunks]
            )
        if record.end != envelopes.DONE:
            return record
        answer = {
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": "".join(parts)}}
                for i, parts in sorted(self.texts.items())
            ]
        }
        try:
            await self.rules.post_call(self.data, self.who, answer)
        except GuardrailBlocked as exc:
            return Record(
                seq=record.seq,
                chunks=record.chunks,
                end=envelopes.ERROR,
                body=exc.to_json(),
                status=exc.http_status,
                meta=record.meta,
            )
        return record

    async def _chunk(self, raw: bytes) -> bytes:
        """One event, in any API's shape (api_shapes.stream_slots): its new text kept for
        the check at the end, and masked as it passes; a text it repeats (a Responses
        `*.done` event) masked alike."""
        name, data = parse_event(raw)
        changed = False
        for (container, key), text, index in (
            (slot, text, index) for (slot, text), index in stream_slots(data)
        ):
            if self.masks and text:
                masked = await self._mask(text)
                if masked != text:
                    container[key] = text = masked
                    changed = True
            if index is not None:
                self.texts.setdefault(index, []).append(text)
        return frame_event(name, data) if changed else raw

    async def _mask(self, text: str) -> str:
        message: dict[str, Any] = {"content": text}
        piece: dict[str, Any] = {"choices": [{"index": 0, "message": message}]}
        await self.rules.post_call(self.data, self.who, piece, masking_only=True)
        return str(message["content"])


GUARDRAILS = web.AppKey("guardrails", FrontDoorGuardrails)


def guardrails_ctx(
    config: Config, front_door: web.AppKey[FrontDoor], http: web.AppKey[HttpClient]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Its metrics always (the catalog lists them); the guardrails when the config has any.
    A custom guardrail that cannot be imported stops the start. `http`: the front door's
    upstream session (openai_moderation calls through it; opened by a later context, so
    looked up at each call)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        metrics = GuardrailMetrics(app[front_door].metrics.registry)
        _check_key_guardrails(config)
        if config.guardrails:
            try:
                _check_judges(config)
                app[GUARDRAILS] = FrontDoorGuardrails(
                    list(config.guardrails),
                    metrics,
                    app.get(FRONT_HOOKS),
                    app[front_door],
                    lambda: app[http].session,
                )
            except ValueError as exc:  # a custom guardrail that cannot be imported
                raise ConfigError("guardrails", str(exc)) from exc
        yield

    return ctx


def _check_key_guardrails(config: Config) -> None:
    names = {entry.guardrail_name for entry in config.guardrails}
    for i, key in enumerate(config.switchboard_settings.api_keys):
        unknown = set(key.guardrails) - names
        if unknown:
            raise ConfigError(
                f"switchboard_settings.api_keys[{i}].guardrails",
                f"{sorted(unknown)} are not in the guardrails section",
            )


def _check_judges(config: Config) -> None:
    """An llm_judge's model group exists; an openai_moderation's model group, when `model`
    names one, is OpenAI's (its /v1/moderations)."""
    for i, entry in enumerate(config.guardrails):
        model = entry.litellm_params.model
        group = config.deployments.get(model or "", ())
        if entry.litellm_params.guardrail == "openai_moderation" and group:
            if group[0].provider != "openai":
                raise ConfigError(
                    f"guardrails[{i}].litellm_params.model",
                    f"{model!r} is served by {group[0].provider}; openai_moderation needs "
                    "an OpenAI deployment (or LiteLLM's api_base and api_key)",
                )
        if entry.litellm_params.guardrail == "llm_judge" and model not in config.deployments:
            raise ConfigError(
                f"guardrails[{i}].litellm_params.model", f"{model!r} is no model group"
            )


async def ask_model(front: FrontDoor, group: str, messages: list[dict[str, Any]]) -> str:
    """A question to a model group, queued like any request (an llm_judge's): its answer's
    text. Bounded by the front door's request_timeout_s; a failure is the judge's error."""
    timeout_s = front.settings.request_timeout_s
    now_ms = int(time.time() * 1000)
    request_id = "req_judge_" + os.urandom(12).hex()
    envelope = Envelope(
        request_id=request_id,
        kind=KIND_CHAT,
        model_group=group,
        stream=False,
        deadline_ms=now_ms + int(timeout_s * 1000),
        enqueued_ms=now_ms,
        reply_to=front.id,
        lane=front.settings.lanes[0],
        body=orjson.dumps({"model": group, "messages": messages}),
    )
    loop = asyncio.get_running_loop()
    waiter = front.hub.register(request_id)
    try:
        entry = await front.enqueue(envelope.lane, envelopes.encode(envelope))
        waiter.queued = Queued(envelope, entry)
        parts: list[bytes] = []
        record = await waiter.next_record(loop.time() + timeout_s)
        while record.end == envelopes.PART:
            parts.append(record.body)
            record = await waiter.next_record(loop.time() + timeout_s)
    finally:
        front.hub.unregister(request_id)
    if record.end != envelopes.RESPONSE:
        raise ValueError(f"the judge {group!r} failed (status {record.status})")
    answer = orjson.loads(envelopes.join_parts(parts, record).body)
    return str(answer["choices"][0]["message"].get("content") or "")
