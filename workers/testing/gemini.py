"""The Gemini API as a fake: `models/{model}:generateContent`, `:streamGenerateContent`
(SSE with `alt=sse`, one JSON array without), `:embedContent` and `:batchEmbedContents`,
under `/v1beta` and `/v1`, keyed by `x-goog-api-key` (or `?key=`).

The model name in the path is the scenario (`scenario`), plus two Gemini-only directives
that the shared grammar has no word for:

    finish=<finishReason>   end the candidate with it (SAFETY, RECITATION, OTHER,
                            MALFORMED_FUNCTION_CALL, ...); filtered and failed finishes carry
                            no content in the final candidate, as the service sends them
    blocked=<blockReason>   refuse the prompt: 200 with promptFeedback and no candidates
                            (`status=content_filter` does the same with SAFETY)

Thought summaries come back only when the request asks (thinkingConfig.includeThoughts) and
`reasoning=` is set; thoughtsTokenCount is reported either way. Function calls carry a
thoughtSignature on the first call; a text answer is signed only when `reasoning=` is set and
the request declares functions (as thinking models do when function calling is on).
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import Awaitable, Callable

import msgspec
import orjson
from aiohttp import web

from workers.testing import gemini_errors as errors
from workers.testing import gemini_tokens
from workers.testing.embedding import embedding_vector, input_key
from workers.testing.gemini_render import (
    SSE_CONTENT_TYPE,
    Shape,
    StreamRenderer,
    blocked_response,
    render_response,
    sse_event,
)
from workers.testing.gemini_wire import (
    EmbedContentRequest,
    GenerateContentRequest,
    decode_batch_embed,
    decode_embed,
    decode_generate,
    request_problem,
)
from workers.testing.reply import ReplyPlan, plan_reply
from workers.testing.scenario import DIRECTIVE_SEPARATOR, Scenario, ScenarioError, parse_scenario
from workers.testing.state import ClientWatch, FakeState, record_request
from workers.testing.streaming import send_events, wait_forever
from workers.testing.tokens import count_prompt_tokens

API_VERSIONS = ("v1beta", "v1")
FINISH_REASONS = frozenset(
    {
        "STOP",
        "MAX_TOKENS",
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "OTHER",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "MALFORMED_FUNCTION_CALL",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_OTHER",
        "NO_IMAGE",
        "IMAGE_RECITATION",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
        "FINISH_REASON_UNSPECIFIED",
    }
)
BLOCK_REASONS = frozenset({"SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY"})
EMBEDDING_DIMENSIONS = {"gemini-embedding-001": 3072, "text-embedding-004": 768}
DEFAULT_EMBEDDING_DIMENSIONS = 3072
MAX_BATCH = 100
# What the service sends beside Content-Type on every answer.
_HEADERS = {
    "Vary": "Origin, X-Origin, Referer",
    "Server": "scaffolding on HTTPServer2",
    "X-XSS-Protection": "0",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Server-Timing": "gfet4t7; dur=1",
}
_JSON_HEADERS = {"Content-Type": errors.JSON_CONTENT_TYPE, **_HEADERS}
_SSE_HEADERS = {"Content-Type": SSE_CONTENT_TYPE, **_HEADERS}


class Extras(msgspec.Struct, frozen=True, kw_only=True):
    finish: str | None = None
    blocked: str | None = None


@functools.lru_cache(maxsize=4096)
def parse_model(name: str) -> tuple[Scenario, Extras]:
    """The shared scenario of a model name, plus the Gemini-only directives."""
    base, *directives = name.split(DIRECTIVE_SEPARATOR)
    shared, extras = [base], {}
    for directive in directives:
        key, has_value, value = directive.partition("=")
        if key not in ("finish", "blocked"):
            shared.append(directive)
            continue
        allowed = FINISH_REASONS if key == "finish" else BLOCK_REASONS
        if not has_value or value.upper() not in allowed:
            raise ScenarioError(
                f"model {name!r}: {key} must be one of {', '.join(sorted(allowed))}"
            )
        extras[key] = value.upper()
    return parse_scenario(DIRECTIVE_SEPARATOR.join(shared)), Extras(**extras)


def routes(state: FakeState) -> list[web.RouteDef]:
    async def models_call(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        model, sep, method = request.match_info["target"].rpartition(":")
        handler = _METHODS.get(method) if sep else None
        if handler is None:
            return errors.not_found(f"Method not found: {request.match_info['target']}")
        denied = _denied(request, state)
        return denied or await handler(request, state, model, body)

    return [web.post(f"/{version}/models/{{target}}", models_call) for version in API_VERSIONS]


def _denied(request: web.Request, state: FakeState) -> web.Response | None:
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        return errors.missing_key()
    return None if state.accepts_key(key) else errors.invalid_key()


# --------------------------------------------------------------------------- admission


class _Admitted(msgspec.Struct, frozen=True):
    name: str
    scenario: Scenario
    extras: Extras
    is_failing: bool

    @property
    def block_reason(self) -> str | None:
        if self.is_failing and self.scenario.error_kind == "content_filter":
            return "SAFETY"
        return self.extras.blocked


def _admit(state: FakeState, name: str) -> _Admitted | web.Response:
    try:
        scenario, extras = parse_model(name)
    except ScenarioError as exc:
        return errors.invalid_argument(f"fake upstream: {exc}")
    return _Admitted(name, scenario, extras, scenario.fails(state.count_model(name)))


async def _fail_or_wait(admitted: _Admitted, delay_s: float, method: str) -> web.Response | None:
    if admitted.is_failing and admitted.scenario.hang:
        await wait_forever()
    if (
        admitted.is_failing
        and admitted.scenario.status is not None
        and admitted.scenario.error_kind != "content_filter"
    ):
        return errors.scenario_failure(admitted.scenario, method)
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    return None


# --------------------------------------------------------------------------- generate


async def _generate(
    request: web.Request, state: FakeState, model: str, body: bytes, *, stream: bool
) -> web.StreamResponse:
    try:
        generate = decode_generate(body)
    except msgspec.DecodeError as exc:
        return errors.invalid_argument(f"Invalid JSON payload received. {exc}")
    admitted = _admit(state, model)
    if isinstance(admitted, web.Response):
        return admitted
    problem = request_problem(generate, admitted.scenario.base)
    if problem is not None:
        return errors.invalid_argument(problem)
    method = "streamGenerateContent" if stream else "generateContent"
    with ClientWatch(state, request.path, admitted.name) as watch:
        delay_s = 0.0 if stream else state.timing.latency_for(admitted.scenario)
        failure = await _fail_or_wait(admitted, delay_s, method)
        if failure is not None:
            return failure
        plan, shape = _plan(admitted, generate)
        if not stream:
            return web.Response(body=_whole(plan, shape, admitted), headers=_JSON_HEADERS)
        events, cut = _stream_events(plan, shape, admitted)
        if request.query.get("alt") != "sse":
            return web.Response(body=_as_json_array(events), headers=_JSON_HEADERS)
        timing = state.timing
        return await send_events(
            request,
            watch,
            events,
            headers=_SSE_HEADERS,
            ttft_s=timing.ttft_for(admitted.scenario),
            chunk_delay_s=timing.chunk_delay_for(admitted.scenario),
            cut_connection=cut,
        )


def _plan(admitted: _Admitted, generate: GenerateContentRequest) -> tuple[ReplyPlan, Shape]:
    scenario = admitted.scenario
    if scenario.tools and generate.answers_function_calls():
        # Results are in: the model answers in text instead of calling again.
        scenario = msgspec.structs.replace(scenario, tools=0)
    config = generate.config
    choices = config.candidate_count or 1
    plan = plan_reply(
        scenario,
        prompt_tokens=count_prompt_tokens(generate.prompt_texts()),
        last_user_text=generate.last_user_text(),
        tool_names=generate.tool_names(),
        choices=choices,
    )
    finish = admitted.extras.finish or ("MAX_TOKENS" if plan.finish_reason == "length" else "STOP")
    shape = Shape(
        response_id=secrets.token_urlsafe(17),
        model_version=scenario.base,
        choices=choices,
        finish=finish,
        thoughts=generate.includes_thoughts and plan.reasoning_tokens > 0,
        signs_text=plan.reasoning_tokens > 0 and bool(generate.tool_names()),
        logprobs=(config.logprobs or 0) if config.response_logprobs else None,
    )
    return plan, shape


def _whole(plan: ReplyPlan, shape: Shape, admitted: _Admitted) -> bytes:
    reason = admitted.block_reason
    if reason is not None:
        return errors.pretty(blocked_response(plan, shape, reason))
    return render_response(plan, shape)


def _stream_events(plan: ReplyPlan, shape: Shape, admitted: _Admitted) -> tuple[list[bytes], bool]:
    """Every event of the stream, and whether to cut the connection after the last one."""
    reason = admitted.block_reason
    if reason is not None:
        return [sse_event(blocked_response(plan, shape, reason))], False
    scenario = admitted.scenario
    renderer = StreamRenderer(plan, shape)
    error_after = scenario.stream_error_after if admitted.is_failing else None
    cut_after = scenario.disconnect_after if admitted.is_failing else None
    limits = [n for n in (error_after, cut_after) if n is not None]
    stop_at = min(limits) if limits else None
    events = renderer.opening()
    steps = renderer.steps()
    if stop_at is None:
        return [*events, *steps, *renderer.closing()], False
    events.extend(steps[:stop_at])
    if stop_at == error_after:
        events.append(sse_event(errors.stream_error_event(scenario)))
        return events, False
    return events, True


def _as_json_array(events: list[bytes]) -> bytes:
    """Without alt=sse the service streams one JSON array of the same objects."""
    objects = [errors.pretty(orjson.loads(event.removeprefix(b"data: "))) for event in events]
    return b"[" + b",\r\n".join(o.rstrip(b"\n") for o in objects) + b"]"


# --------------------------------------------------------------------------- embeddings


async def _embed(
    request: web.Request, state: FakeState, model: str, body: bytes, *, batch: bool
) -> web.StreamResponse:
    try:
        items = decode_batch_embed(body).requests if batch else [decode_embed(body)]
    except msgspec.DecodeError as exc:
        return errors.invalid_argument(f"Invalid JSON payload received. {exc}")
    admitted = _admit(state, model)
    if isinstance(admitted, web.Response):
        return admitted
    problem = _embed_problem(items, model, admitted.scenario.base, batch=batch)
    if problem is not None:
        return errors.invalid_argument(problem)
    method = "batchEmbedContents" if batch else "embedContent"
    with ClientWatch(state, request.path, admitted.name):
        failure = await _fail_or_wait(admitted, state.timing.latency_for(admitted.scenario), method)
        if failure is not None:
            return failure
        largest = EMBEDDING_DIMENSIONS.get(admitted.scenario.base, DEFAULT_EMBEDDING_DIMENSIONS)
        values = [
            {"values": list(embedding_vector(input_key(item.content.text()), _size(item, largest)))}
            for item in items
        ]
        answer = {"embeddings": values} if batch else {"embedding": values[0]}
        return web.Response(body=errors.pretty(answer), headers=_JSON_HEADERS)


def _size(item: EmbedContentRequest, largest: int) -> int:
    return item.output_dimensionality or largest


def _embed_problem(
    items: list[EmbedContentRequest], model: str, base: str, *, batch: bool
) -> str | None:
    if batch and not items:
        return "* BatchEmbedContentsRequest.requests: requests is not specified\n"
    if len(items) > MAX_BATCH:
        return (
            "* BatchEmbedContentsRequest.requests: "
            f"at most {MAX_BATCH} requests can be in one batch\n"
        )
    largest = EMBEDDING_DIMENSIONS.get(base, DEFAULT_EMBEDDING_DIMENSIONS)
    for i, item in enumerate(items):
        where = f"BatchEmbedContentsRequest.requests[{i}]" if batch else "EmbedContentRequest"
        if batch and item.model != f"models/{model}":
            return f"* {where}.model: the model of each request must be models/{model}\n"
        if not item.content.parts:
            return f"* {where}.content.parts: contents.parts must not be empty.\n"
        size = item.output_dimensionality
        if size is not None and not 1 <= size <= largest:
            return f"* {where}.output_dimensionality: must be between 1 and {largest}\n"
    return None


async def _count(
    request: web.Request, state: FakeState, model: str, body: bytes
) -> web.StreamResponse:
    admitted = _admit(state, model)
    if isinstance(admitted, web.Response):
        return admitted
    failure = await _fail_or_wait(admitted, 0.0, "countTokens")
    return failure or await gemini_tokens.count_tokens(request, state, model, body)


Method = Callable[[web.Request, FakeState, str, bytes], Awaitable[web.StreamResponse]]
_METHODS: dict[str, Method] = {
    "generateContent": functools.partial(_generate, stream=False),
    "streamGenerateContent": functools.partial(_generate, stream=True),
    "embedContent": functools.partial(_embed, batch=False),
    "batchEmbedContents": functools.partial(_embed, batch=True),
    "countTokens": _count,
}
