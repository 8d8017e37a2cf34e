"""The Anthropic Messages API as a fake: `POST /v1/messages`, plain and SSE.

Auth as the service and its SDK do it (`x-api-key`, or `Authorization: Bearer` as
anthropic-python 2.x sends), `anthropic-version` required in any `YYYY-MM-DD` form. The model
name picks the behaviour (see `scenario`), plus one Anthropic-only directive:

    stop_reason=<value>    end the answer with that stop_reason (end_turn, max_tokens,
                           stop_sequence, tool_use, pause_turn, refusal,
                           model_context_window_exceeded)

A request with a `cache_control` breakpoint and no `cached=` reports its prompt as written to
the cache; `stop_sequences` found in the answer cut it there (stop_reason stop_sequence); a
request with thinking enabled gets a signed thinking block even without `reasoning=`.

A final assistant message is a prefill, as the service takes it: the answer goes on from
its text and only the rest is sent. The fake refuses, with the service's 400s, a prefill
ending in whitespace, one with thinking enabled and one to Claude 4.6 or later, and, its
own rule, a prefill that is not how its answer starts (a gateway continuing a stream must
send exactly the text its client already has).
"""

from __future__ import annotations

import asyncio
import re

import msgspec
from aiohttp import web

from workers.testing import anthropic_batches
from workers.testing import anthropic_errors as errors
from workers.testing.anthropic_reply import (
    DEFAULT_THINKING_TOKENS,
    STOP_REASONS,
    MessagesRequest,
    PrefillMismatch,
    Reply,
    decode_request,
    shape_reply,
)
from workers.testing.anthropic_wire import Ids, render_message, render_stream, sse_event
from workers.testing.reply import plan_reply
from workers.testing.responses import json_response
from workers.testing.scenario import DIRECTIVE_SEPARATOR, Scenario, ScenarioError, parse_scenario
from workers.testing.state import ClientWatch, FakeState, record_request
from workers.testing.streaming import SSE_CONTENT_TYPE, send_events, wait_forever
from workers.testing.tokens import count_prompt_tokens

_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
STREAM_ERROR_EVENT = sse_event(b"error", errors.STREAM_ERROR)
_STOP_REASON_DIRECTIVE = "stop_reason="
# Dated ids the service reports for its aliases; other names are reported as sent.
SNAPSHOTS = {
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
}


def routes(state: FakeState) -> list[web.RouteDef]:
    async def messages(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        request_id = errors.request_id(next(state.ids))
        denied = _denied(request, state, request_id)
        return denied or await answer_messages(request, state, body, request_id)

    async def count_tokens(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        request_id = errors.request_id(next(state.ids))
        denied = _denied(request, state, request_id)
        if denied is not None:
            return denied
        try:
            native = decode_request(body)
        except msgspec.DecodeError as exc:
            return errors.invalid_request(f"Invalid request body: {exc}", request=request_id)
        tokens = count_prompt_tokens(native.prompt_texts())
        body = msgspec.json.encode({"input_tokens": tokens})
        return json_response(body, headers={"request-id": request_id})

    return [
        web.post("/v1/messages", messages),
        web.post("/v1/messages/count_tokens", count_tokens),
        # The Message Batches API (issue #20's native batches).
        *anthropic_batches.routes(state),
    ]


def _denied(request: web.Request, state: FakeState, request_id: str) -> web.Response | None:
    key = request.headers.get("x-api-key")
    if key is None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        key = token if scheme.lower() == "bearer" else None
    if not key:
        return errors.authentication_error("x-api-key header is required", request=request_id)
    if not state.accepts_key(key):
        return errors.authentication_error("invalid x-api-key", request=request_id)
    version = request.headers.get("anthropic-version")
    if version is None:
        return errors.invalid_request("anthropic-version: header is required", request=request_id)
    if not _VERSION.fullmatch(version):
        message = f"anthropic-version: {version!r} is not a valid version"
        return errors.invalid_request(message, request=request_id)
    return None


# --------------------------------------------------------------------------- admission


class Admitted(msgspec.Struct, frozen=True):
    name: str
    scenario: Scenario
    stop_reason: str | None
    is_failing: bool


def admit(state: FakeState, name: str, request_id: str) -> Admitted | web.Response:
    try:
        stripped, stop_reason = split_stop_reason(name)
        scenario = parse_scenario(stripped)
    except ScenarioError as exc:
        return errors.invalid_request(f"fake upstream: {exc}", request=request_id)
    ordinal = state.count_model(name)
    return Admitted(name, scenario, stop_reason, scenario.fails(ordinal))


def split_stop_reason(name: str) -> tuple[str, str | None]:
    """The model name without its `stop_reason=` directive, and that stop_reason."""
    base, *directives = name.split(DIRECTIVE_SEPARATOR)
    kept = [d for d in directives if not d.startswith(_STOP_REASON_DIRECTIVE)]
    chosen = [d[len(_STOP_REASON_DIRECTIVE) :] for d in directives if d not in kept]
    for value in chosen:
        if value not in STOP_REASONS:
            known = ", ".join(sorted(STOP_REASONS))
            raise ScenarioError(f"model {name!r}: stop_reason must be one of {known}")
    return DIRECTIVE_SEPARATOR.join([base, *kept]), (chosen[-1] if chosen else None)


# --------------------------------------------------------------------------- messages


async def answer_messages(
    request: web.Request, state: FakeState, body: bytes, request_id: str
) -> web.StreamResponse:
    try:
        native = decode_request(body)
    except msgspec.DecodeError as exc:
        return errors.invalid_request(f"Invalid request body: {exc}", request=request_id)
    problem = native.problem() or native.prefill_problem()
    if problem is not None:
        return errors.invalid_request(problem, request=request_id)
    admitted = admit(state, native.model or "", request_id)
    if isinstance(admitted, web.Response):
        return admitted
    with ClientWatch(state, request.path, admitted.name) as watch:
        scenario = admitted.scenario
        if admitted.is_failing and scenario.hang:
            await wait_forever()
        if admitted.is_failing and scenario.status is not None:
            return errors.scripted_failure(scenario, request=request_id)
        try:
            reply = _reply(admitted, native, body)
        except PrefillMismatch as exc:
            return errors.invalid_request(str(exc), request=request_id)
        model = SNAPSHOTS.get(scenario.base, scenario.base)
        ids = Ids(next(state.ids))
        headers = {"request-id": request_id}
        if native.stream:
            return await stream_reply(
                request, watch, admitted, render_stream(reply, model=model, ids=ids), headers
            )
        latency_s = state.timing.latency_for(scenario)
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        return json_response(render_message(reply, model=model, ids=ids), headers=headers)


def _reply(admitted: Admitted, native: MessagesRequest, body: bytes) -> Reply:
    return messages_reply(admitted.scenario, native, body, admitted.stop_reason)


def messages_reply(
    scenario: Scenario, native: MessagesRequest, body: bytes, stop_reason: str | None
) -> Reply:
    """The answer to a Messages body under a scenario (shared with Claude on Bedrock)."""
    if native.thinks and not scenario.reasoning_tokens:
        scenario = msgspec.structs.replace(scenario, reasoning_tokens=DEFAULT_THINKING_TOKENS)
    plan = plan_reply(
        scenario,
        prompt_tokens=count_prompt_tokens(native.prompt_texts()),
        last_user_text=native.last_user_text(),
        tool_names=native.tool_names(),
    )
    return shape_reply(
        plan,
        native,
        chunks=scenario.chunks,
        stop_reason=stop_reason,
        # Any breakpoint (system, tools, messages) makes a first request write the cache.
        writes_cache=b'"cache_control"' in body,
    )


async def stream_reply(
    request: web.Request,
    watch: ClientWatch,
    admitted: Admitted,
    events: list[tuple[bytes, bool]],
    headers: dict[str, str],
) -> web.StreamResponse:
    scenario = admitted.scenario
    error_after = scenario.stream_error_after if admitted.is_failing else None
    cut_after = scenario.disconnect_after if admitted.is_failing else None
    limits = [n for n in (error_after, cut_after) if n is not None]
    sent = [event for event, _ in events]
    if limits:
        sent = until_content_chunk(events, min(limits))
        if min(limits) == error_after:
            sent.append(STREAM_ERROR_EVENT)
    timing = watch.state.timing
    return await send_events(
        request,
        watch,
        sent,
        headers={"Content-Type": SSE_CONTENT_TYPE, **headers},
        ttft_s=timing.ttft_for(scenario),
        chunk_delay_s=timing.chunk_delay_for(scenario),
        cut_connection=bool(limits) and min(limits) != error_after,
    )


def until_content_chunk(events: list[tuple[bytes, bool]], count: int) -> list[bytes]:
    """The events before content chunk number `count + 1` (0: up to the first chunk)."""
    kept: list[bytes] = []
    seen = 0
    for event, is_content in events:
        if is_content:
            if seen == count:
                break
            seen += 1
        kept.append(event)
    return kept
