"""The OpenAI API as a fake: chat completions (plain and SSE), embeddings, legacy completions
(openai_completions.py), moderations (openai_moderations.py) and the model list.

`answer_chat` and `answer_embeddings` serve any OpenAI-format provider; a `Flavor` supplies
what differs (error bodies, headers, the model name it reports, the chunk dressing), so
`azure.py` reuses them behind its own URL scheme and auth.

With the `vllm` directive the fake is a vLLM server in one respect: `continue_final_message`
continues the final assistant message (only the rest of the answer is sent), refused with
`add_generation_prompt` left on, as vLLM does, and refused (the fake's own rule) when that
message is not how the answer starts. Without it the parameter is OpenAI's 400 for an
unknown argument.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec
import orjson
from aiohttp import web

from workers import wire
from workers.testing import openai_batches, openai_responses
from workers.testing import openai_errors as errors
from workers.testing import openai_responses_store as responses_store
from workers.testing.embedding import (
    FIXED_SIZE_MODELS,
    default_dimensions,
    embedding_base64,
    embedding_vector,
    input_key,
)
from workers.testing.json_reply import json_reply
from workers.testing.large import send_large_completion
from workers.testing.openai_completions import answer_completion
from workers.testing.openai_moderations import answer_moderation
from workers.testing.openai_wire import (
    ChatRequest,
    ChatStyle,
    ChunkEnvelope,
    StreamRenderer,
    decode_chat_request,
    decode_embeddings_request,
    render_completion,
    stream_error_event,
)
from workers.testing.reply import ReplyPlan, continued, plan_reply
from workers.testing.responses import json_response
from workers.testing.scenario import Scenario, ScenarioError, parse_scenario
from workers.testing.state import ClientWatch, FakeState, record_request
from workers.testing.streaming import SSE_CONTENT_TYPE, send_events, wait_forever
from workers.testing.tokens import count_prompt_tokens, count_tokens

MAX_CHOICES = 128
STREAM_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"
# Dated snapshots the service reports for its aliases; other names are reported as sent.
SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "o3-mini": "o3-mini-2025-01-31",
}
MODEL_IDS = (*SNAPSHOTS, *SNAPSHOTS.values(), "text-embedding-3-small", "text-embedding-3-large")


class Flavor(Protocol):
    """What one OpenAI-format provider does differently."""

    style: ChatStyle

    def chat_model(self, scenario: Scenario) -> str: ...

    def embedding_model(self, scenario: Scenario) -> str: ...

    def failure(
        self, request: web.Request, state: FakeState, scenario: Scenario
    ) -> web.Response: ...

    def headers(self, state: FakeState) -> dict[str, str]: ...


class OpenAIFlavor:
    style = ChatStyle(system_fingerprint="fp_07871e2ad8", service_tier="default", obfuscation=True)

    def chat_model(self, scenario: Scenario) -> str:
        return SNAPSHOTS.get(scenario.base, scenario.base)

    def embedding_model(self, scenario: Scenario) -> str:
        return scenario.base

    def failure(self, request: web.Request, state: FakeState, scenario: Scenario) -> web.Response:
        return errors.openai_failure(scenario, self.headers(state))

    def headers(self, state: FakeState) -> dict[str, str]:
        return {"x-request-id": f"req_{next(state.ids):024x}", "openai-processing-ms": "1"}


OPENAI = OpenAIFlavor()


def routes(state: FakeState) -> list[web.RouteDef]:
    models_body = wire.encode(
        wire.ModelList(data=[wire.ModelCard(id=m, owned_by="system") for m in MODEL_IDS])
    )

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        return _denied(request, state) or await answer_chat(request, state, OPENAI, body)

    async def embeddings(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        return _denied(request, state) or await answer_embeddings(request, state, OPENAI, body)

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        return _denied(request, state) or await answer_completion(request, state, body)

    async def responses(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        return _denied(request, state) or await answer_responses(request, state, body)

    async def moderations(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        return _denied(request, state) or await answer_moderation(request, state, body)

    async def models(request: web.Request) -> web.StreamResponse:
        await record_request(request, state)
        return _denied(request, state) or json_response(models_body)

    return [
        web.post("/v1/chat/completions", chat_completions),
        web.post("/v1/embeddings", embeddings),
        web.post("/v1/completions", completions),
        web.post("/v1/responses", responses),
        web.post("/v1/moderations", moderations),
        web.get("/v1/models", models),
        *responses_store.routes("/v1", state, _denied),
        # /v1/files and /v1/batches (issue #20's native batches).
        *openai_batches.routes(state),
    ]


def _denied(request: web.Request, state: FakeState) -> web.Response | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        return errors.openai_missing_key()
    return None if state.accepts_key(key) else errors.openai_invalid_key(key)


# --------------------------------------------------------------------------- admission


class _Admitted(msgspec.Struct, frozen=True):
    name: str
    scenario: Scenario
    is_failing: bool


def _admit(state: FakeState, name: str) -> _Admitted | web.Response:
    """Parse the scenario and count the request; a 400 when the model name is unusable."""
    if not name:
        return errors.invalid_request("you must provide a model parameter", param="model")
    try:
        scenario = parse_scenario(name)
    except ScenarioError as exc:
        return errors.invalid_request(f"fake upstream: {exc}", param="model", code="fake_directive")
    return _Admitted(name, scenario, scenario.fails(state.count_model(name)))


async def _fail_or_wait(
    request: web.Request, state: FakeState, flavor: Flavor, admitted: _Admitted, delay_s: float
) -> web.Response | None:
    """The failure the scenario asks for, if any; otherwise wait `delay_s`."""
    if admitted.is_failing and admitted.scenario.hang:
        await wait_forever()
    if admitted.is_failing and admitted.scenario.status is not None:
        return flavor.failure(request, state, admitted.scenario)
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    return None


# --------------------------------------------------------------------------- responses


async def answer_responses(
    request: web.Request, state: FakeState, raw: bytes
) -> web.StreamResponse:
    """Answer a Responses request (openai_responses.py renders it) under the scenario its
    model name gives, like chat; a stored one is kept (openai_responses_store.py)."""
    body = openai_responses.parse_body(raw)
    if isinstance(body, str):
        return errors.invalid_request(body)
    name = body.get("model")
    admitted = _admit(state, name if isinstance(name, str) else "")
    if isinstance(admitted, web.Response):
        return admitted
    missing = responses_store.missing_parent(state, request, body)
    if missing is not None:
        return missing
    texts = openai_responses.input_texts(body)
    with ClientWatch(state, request.path, admitted.name) as watch:
        stream = body.get("stream") is True
        delay_s = 0.0 if stream else state.timing.latency_for(admitted.scenario)
        failure = await _fail_or_wait(request, state, OPENAI, admitted, delay_s)
        if failure is not None:
            return failure
        plan = plan_reply(
            admitted.scenario,
            prompt_tokens=count_prompt_tokens([str(body.get("instructions") or ""), *texts]),
            last_user_text=texts[-1] if texts else "",
            tool_names=openai_responses.function_names(body),
        )
        ids = openai_responses.new_ids(next(state.ids))
        model = OPENAI.chat_model(admitted.scenario)
        if stream:
            return await _stream_response(request, state, watch, admitted, body, ids, plan)
        if body.get("background") is True:
            queued, final = openai_responses.render_whole_background(body, ids, model, plan)
            responses_store.keep(state, request, body, queued, final)
            return json_response(orjson.dumps(queued), headers=OPENAI.headers(state))
        rendered = openai_responses.render_whole(body, ids, model, plan)
        whole = orjson.loads(rendered)
        responses_store.keep(state, request, body, whole, whole)
        return json_response(rendered, headers=OPENAI.headers(state))


async def _stream_response(
    request: web.Request,
    state: FakeState,
    watch: ClientWatch,
    admitted: _Admitted,
    body: dict[str, Any],
    ids: dict[str, Any],
    plan: ReplyPlan,
) -> web.StreamResponse:
    """A streamed response: cut short by the scenario's stream_error_after (an `error`
    event) or disconnect_after (the connection closed), else kept once complete."""
    scenario = admitted.scenario
    error_after = scenario.stream_error_after if admitted.is_failing else None
    cut_after = scenario.disconnect_after if admitted.is_failing else None
    model = OPENAI.chat_model(scenario)
    events = openai_responses.render_stream(
        body, ids, model, plan, error_after=error_after if cut_after is None else cut_after
    )
    if cut_after is not None:
        events = events[:-1]  # the cut comes where the error event would
    final = openai_responses.final_response(events)
    if final is not None:
        responses_store.keep(state, request, body, final, final)
    sse = {"Content-Type": SSE_CONTENT_TYPE, **OPENAI.headers(state)}
    return await send_events(
        request,
        watch,
        events,
        headers=sse,
        chunk_delay_s=state.timing.chunk_delay_for(scenario),
        cut_connection=cut_after is not None,
    )


# --------------------------------------------------------------------------- chat


async def answer_chat(
    request: web.Request, state: FakeState, flavor: Flavor, body: bytes, *, model: str = ""
) -> web.StreamResponse:
    """Answer a chat completion for `model` (or the body's model when empty)."""
    try:
        chat = decode_chat_request(body)
    except msgspec.DecodeError as exc:
        return errors.invalid_request(f"Invalid request body: {exc}")
    choices = 1 if chat.n is None else chat.n
    if not 1 <= choices <= MAX_CHOICES:
        return errors.invalid_request(f"Invalid 'n': must be 1..{MAX_CHOICES}.", param="n")
    admitted = _admit(state, model or chat.model)
    if isinstance(admitted, web.Response):
        return admitted
    with ClientWatch(state, request.path, admitted.name) as watch:
        delay_s = 0.0 if chat.stream else state.timing.latency_for(admitted.scenario)
        failure = await _fail_or_wait(request, state, flavor, admitted, delay_s)
        if failure is not None:
            return failure
        if admitted.scenario.reply_bytes is not None and not chat.stream:
            return await send_large_completion(
                request,
                watch,
                size=admitted.scenario.reply_bytes,
                completion_id=f"chatcmpl-{next(state.ids):029x}",
                created=int(time.time()),
                model=flavor.chat_model(admitted.scenario),
                headers=flavor.headers(state),
            )
        plan = _plan(admitted.scenario, chat, choices)
        if chat.continue_final_message:
            plan_or_refusal = _continued(admitted.scenario, chat, plan)
            if isinstance(plan_or_refusal, web.Response):
                return plan_or_refusal
            plan = plan_or_refusal
        if chat.stream:
            return await _stream_chat(request, watch, flavor, admitted, plan, chat)
        rendered = render_completion(
            plan,
            flavor.style,
            id=f"chatcmpl-{next(state.ids):029x}",
            created=int(time.time()),
            model=flavor.chat_model(admitted.scenario),
            choices=choices,
        )
        return json_response(rendered, headers=flavor.headers(state))


def _continued(scenario: Scenario, chat: ChatRequest, plan: ReplyPlan) -> ReplyPlan | web.Response:
    """The plan's rest after the final assistant message (vLLM's continue_final_message)."""
    if not scenario.vllm:
        return errors.invalid_request(
            "Unrecognized request argument supplied: continue_final_message"
        )
    if chat.add_generation_prompt is not False:
        return errors.invalid_request(
            "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
        )
    final = chat.messages[-1] if chat.messages else None
    if final is None or final.role != "assistant":
        return errors.invalid_request(
            "continue_final_message needs the last message to be the assistant's"
        )
    rest = continued(plan.text or "", scenario.chunks, final.text())
    if rest is None:
        return errors.invalid_request(
            f"fake upstream: the final assistant message {final.text()!r} is not how this "
            f"model's answer starts ({plan.text!r})"
        )
    text, pieces = rest
    completion = count_tokens(text) if text else 0
    return msgspec.structs.replace(plan, text=text, pieces=pieces, completion_tokens=completion)


def _plan(scenario: Scenario, chat: ChatRequest, choices: int) -> ReplyPlan:
    if scenario.auto and chat.tools and chat.user_spoke_last():
        scenario = msgspec.structs.replace(scenario, tools=max(scenario.tools, 1))
    plan = plan_reply(
        scenario,
        prompt_tokens=count_prompt_tokens(message.text() for message in chat.messages),
        last_user_text=chat.last_user_text(),
        tool_names=chat.tool_names(),
        choices=choices,
    )
    if scenario.auto and plan.text is not None and chat.response_format:
        return json_reply(plan, scenario, chat.response_format, chat.last_user_text())
    return plan


async def _stream_chat(
    request: web.Request,
    watch: ClientWatch,
    flavor: Flavor,
    admitted: _Admitted,
    plan: ReplyPlan,
    chat: ChatRequest,
) -> web.StreamResponse:
    options = chat.stream_options
    envelope = ChunkEnvelope(
        id=f"chatcmpl-{next(watch.state.ids):029x}",
        created=int(time.time()),
        model=flavor.chat_model(admitted.scenario),
        choices=1 if chat.n is None else chat.n,
        include_usage=bool(options and options.include_usage),
        include_obfuscation=not (options and options.include_obfuscation is False),
    )
    events, cut = _stream_events(StreamRenderer(plan, flavor.style, envelope), admitted)
    timing = watch.state.timing
    headers = flavor.headers(watch.state)
    headers["Content-Type"] = SSE_CONTENT_TYPE
    return await send_events(
        request,
        watch,
        events,
        headers=headers,
        ttft_s=timing.ttft_for(admitted.scenario),
        chunk_delay_s=timing.chunk_delay_for(admitted.scenario),
        cut_connection=cut,
    )


def _stream_events(renderer: StreamRenderer, admitted: _Admitted) -> tuple[list[bytes], bool]:
    """Every event of the stream, and whether to cut the connection after the last one."""
    scenario = admitted.scenario
    error_after = scenario.stream_error_after if admitted.is_failing else None
    cut_after = scenario.disconnect_after if admitted.is_failing else None
    limits = [n for n in (error_after, cut_after) if n is not None]
    stop_at = min(limits) if limits else None
    events = renderer.opening()
    for index, step in enumerate(renderer.steps()):
        if index == stop_at:
            break
        events.extend(step)
    if stop_at is None:
        events.extend(renderer.closing())
        return events, False
    if stop_at == error_after:
        events.append(stream_error_event(STREAM_ERROR_MESSAGE))
        return events, False
    return events, True


# --------------------------------------------------------------------------- embeddings


async def answer_embeddings(
    request: web.Request, state: FakeState, flavor: Flavor, body: bytes, *, model: str = ""
) -> web.StreamResponse:
    """Answer an embeddings request for `model` (or the body's model when empty)."""
    try:
        embed = decode_embeddings_request(body)
        inputs = wire.embedding_inputs(wire.EmbeddingRequest(model="", input=embed.input))
    except (msgspec.DecodeError, ValueError) as exc:
        return errors.invalid_request(f"Invalid request body: {exc}", param="input")
    encoding = embed.encoding_format or "float"
    if encoding not in ("float", "base64"):
        return errors.invalid_request(
            f"Invalid value for 'encoding_format': {encoding!r}.", param="encoding_format"
        )
    admitted = _admit(state, model or embed.model)
    if isinstance(admitted, web.Response):
        return admitted
    dimensions_or_error = _dimensions(admitted.scenario.base, embed.dimensions)
    if isinstance(dimensions_or_error, web.Response):
        return dimensions_or_error
    with ClientWatch(state, request.path, admitted.name):
        delay_s = state.timing.latency_for(admitted.scenario)
        failure = await _fail_or_wait(request, state, flavor, admitted, delay_s)
        if failure is not None:
            return failure
        response = _embedding_response(
            inputs, dimensions_or_error, encoding, flavor.embedding_model(admitted.scenario)
        )
        return json_response(wire.encode(response), headers=flavor.headers(state))


def _dimensions(base_model: str, asked: int | None) -> int | web.Response:
    """The vector size to send, or the 400 the service gives for an impossible one."""
    largest = default_dimensions(base_model)
    if asked is None:
        return largest
    if base_model in FIXED_SIZE_MODELS:
        return errors.invalid_request(
            "This model does not support specifying dimensions.", param="dimensions"
        )
    if not 1 <= asked <= largest:
        return errors.invalid_request(
            f"Invalid value for 'dimensions' = {asked}. Must be between 1 and {largest}.",
            param="dimensions",
        )
    return asked


def _embedding_response(
    inputs: Sequence[str | list[int]], dimensions: int, encoding: str, model: str
) -> wire.EmbeddingResponse:
    form = embedding_base64 if encoding == "base64" else embedding_vector
    tokens = sum(count_tokens(i) if isinstance(i, str) else len(i) for i in inputs)
    return wire.EmbeddingResponse(
        data=[
            wire.Embedding(index=index, embedding=_json_value(form(input_key(item), dimensions)))
            for index, item in enumerate(inputs)
        ],
        model=model,
        usage=wire.EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _json_value(value: tuple[float, ...] | str) -> list[float] | str:
    return value if isinstance(value, str) else list(value)
