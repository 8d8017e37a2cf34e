"""Claude on Bedrock as a fake: Anthropic's Messages API inside InvokeModel (issue #18).

    POST /model/{modelId}/invoke                      -> Anthropic's message JSON
    POST /model/{modelId}/invoke-with-response-stream -> event-stream `chunk` frames, each
         {"bytes": base64(<one Anthropic SSE event's JSON>), "p": <padding>}
    POST /model/{modelId}/count-tokens   {"input": {"invokeModel": {"body": base64}}}
         -> {"inputTokens": n}

The body is what `AnthropicBedrock` sends: a Messages body without `model` and `stream` (the
URL carries them), with `anthropic_version` and optionally `anthropic_beta` (a list of
strings); anything else is a ValidationException, as Bedrock words its schema errors. Bedrock
documents one version, `bedrock-2023-05-31` (what the gateway sends); the fake also takes a
dated `YYYY-MM-DD`, because the anthropic SDK installed here (2.17) sends its own API version
there. The answer is the Anthropic fake's (`anthropic.messages_reply`, the
same events byte for byte), with the model named as Anthropic names it and Bedrock's
`amazon-bedrock-invocationMetrics` added to `message_stop`. The scenario comes from the model
id with Bedrock's directives (`bedrock_errors`); failures are Bedrock's: an HTTP exception, or
an exception frame mid-stream.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from typing import Any

import msgspec
from aiohttp import web

from workers.testing.anthropic import messages_reply, until_content_chunk
from workers.testing.anthropic_reply import STOP_REASONS, MessagesRequest, decode_request
from workers.testing.anthropic_wire import Ids, render_message, render_stream
from workers.testing.bedrock_auth import check_auth
from workers.testing.bedrock_errors import (
    BedrockScenario,
    parse_bedrock_scenario,
    request_id,
    scenario_failure,
    stream_exception_payload,
    validation_error,
)
from workers.testing.bedrock_frames import CONTENT_TYPE, event_frame, exception_frame
from workers.testing.responses import json_response
from workers.testing.scenario import ScenarioError
from workers.testing.state import ClientWatch, FakeState, record_request
from workers.testing.streaming import send_events, wait_forever
from workers.testing.tokens import count_prompt_tokens

ANTHROPIC_VERSION = "bedrock-2023-05-31"
_VERSION = re.compile(r"(?:bedrock-)?\d{4}-\d{2}-\d{2}")
# Bedrock ids -> the model Anthropic's reply names: `us.anthropic.claude-3-5-sonnet-
# 20241022-v2:0` -> `claude-3-5-sonnet-20241022`.
_BEDROCK_ID = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.(?P<name>.+?)(?:-v\d+(?::\d+)?)?$")
_KNOWN_FIELDS = frozenset(
    set(MessagesRequest.__struct_fields__) - {"model", "stream"}
    | {
        "anthropic_version",
        "anthropic_beta",
        "metadata",
        "top_k",
        "top_p",
        "tool_choice",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
    }
)
_encode = msgspec.json.Encoder().encode


def is_claude(model_id: str) -> bool:
    return "anthropic." in model_id or "claude" in model_id.lower()


def anthropic_model(model_id: str) -> str:
    match = _BEDROCK_ID.match(model_id)
    return match["name"] if match else model_id


def routes(state: FakeState) -> list[web.RouteDef]:
    async def stream(request: web.Request) -> web.StreamResponse:
        return await answer(request, state, stream=True)

    async def count(request: web.Request) -> web.StreamResponse:
        return await count_tokens(request, state)

    return [
        web.post("/model/{model_id:.+}/invoke-with-response-stream", stream),
        web.post("/model/{model_id:.+}/count-tokens", count),
    ]


def read_body(body: bytes, model: str) -> MessagesRequest | str:
    """The Messages request in an InvokeModel body, or the ValidationException message."""
    try:
        payload = msgspec.json.decode(body)
        native = decode_request(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return f"Malformed input request: {exc}, please reformat your input and try again."
    if not isinstance(payload, dict):
        return "Malformed input request: expected type: JSONObject, please reformat"
    extra = sorted(set(payload) - _KNOWN_FIELDS)
    if extra:
        return f"Malformed input request: #: extraneous key [{extra[0]}] is not permitted"
    version = payload.get("anthropic_version")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        return f"Malformed input request: #/anthropic_version: {ANTHROPIC_VERSION} expected"
    beta = payload.get("anthropic_beta", [])
    if not isinstance(beta, list) or not all(isinstance(b, str) for b in beta):
        return "Malformed input request: #/anthropic_beta: expected type: JSONArray of String"
    native.model = model
    return native.problem() or native.prefill_problem() or native


async def answer(request: web.Request, state: FakeState, *, stream: bool) -> web.StreamResponse:
    body = await record_request(request, state)
    denied = check_auth(request, body, state)
    if denied is not None:
        return denied
    name = request.match_info["model_id"]
    try:
        bedrock = parse_bedrock_scenario(name)
    except ScenarioError as exc:
        return validation_error(f"fake upstream: {exc}")
    native = read_body(body, bedrock.scenario.base)
    if isinstance(native, str):
        return validation_error(native)
    is_failing = bedrock.scenario.fails(state.count_model(name))
    with ClientWatch(state, request.path, name) as watch:
        if is_failing and bedrock.scenario.hang:
            await wait_forever()
        if is_failing and bedrock.scenario.status is not None:
            return scenario_failure(bedrock)
        stop_reason = bedrock.stop_reason if bedrock.stop_reason in STOP_REASONS else None
        reply = messages_reply(bedrock.scenario, native, body, stop_reason)
        model, ids = anthropic_model(bedrock.scenario.base), Ids(next(state.ids))
        headers = {
            "x-amzn-RequestId": request_id(),
            "X-Amzn-Bedrock-Input-Token-Count": str(reply.input_tokens),
            "X-Amzn-Bedrock-Output-Token-Count": str(reply.output_tokens),
        }
        if stream:
            events = render_stream(reply, model=model, ids=ids)
            metrics = _metrics(reply.input_tokens, reply.output_tokens)
            return await _stream(request, watch, bedrock, is_failing, events, metrics)
        latency_s = state.timing.latency_for(bedrock.scenario)
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        return json_response(render_message(reply, model=model, ids=ids), headers=headers)


def _metrics(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "inputTokenCount": input_tokens,
        "outputTokenCount": output_tokens,
        "invocationLatency": 412,
        "firstByteLatency": 210,
    }


def event_json(event: bytes) -> bytes:
    """The JSON of one `event: X\\ndata: JSON\\n\\n` the Anthropic fake renders."""
    return event.partition(b"\ndata: ")[2].removesuffix(b"\n\n")


def chunk_frames(events: list[bytes], metrics: dict[str, int]) -> list[bytes]:
    """Each Anthropic event as the chunk frame Bedrock wraps it in; `message_stop` gains
    Bedrock's invocation metrics, as Bedrock adds them."""
    frames = []
    for ordinal, event in enumerate(events):
        data = event_json(event)
        if event.startswith(b"event: message_stop"):
            stop: dict[str, Any] = msgspec.json.decode(data)
            data = _encode({**stop, "amazon-bedrock-invocationMetrics": metrics})
        frames.append(event_frame("chunk", {"bytes": base64.b64encode(data).decode()}, ordinal))
    return frames


async def _stream(
    request: web.Request,
    watch: ClientWatch,
    bedrock: BedrockScenario,
    is_failing: bool,
    events: list[tuple[bytes, bool]],
    metrics: dict[str, int],
) -> web.StreamResponse:
    scenario = bedrock.scenario
    error_after = scenario.stream_error_after if is_failing else None
    cut_after = scenario.disconnect_after if is_failing else None
    limits = [n for n in (error_after, cut_after) if n is not None]
    sent = until_content_chunk(events, min(limits)) if limits else [e for e, _ in events]
    frames = chunk_frames(sent, metrics)
    if limits and min(limits) == error_after:
        payload = stream_exception_payload(bedrock.exception_type)
        frames.append(exception_frame(bedrock.exception_type, payload))
    timing = watch.state.timing
    return await send_events(
        request,
        watch,
        frames,
        headers={"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id()},
        ttft_s=timing.ttft_for(scenario),
        chunk_delay_s=timing.chunk_delay_for(scenario),
        cut_connection=bool(limits) and min(limits) != error_after,
    )


async def count_tokens(request: web.Request, state: FakeState) -> web.StreamResponse:
    """CountTokens for an InvokeModel body (Claude's Messages body, as `answer` takes it)."""
    body = await record_request(request, state)
    denied = check_auth(request, body, state)
    if denied is not None:
        return denied
    try:
        wrapped = msgspec.json.decode(body)
        inner = base64.b64decode(wrapped["input"]["invokeModel"]["body"], validate=True)
    except (msgspec.DecodeError, binascii.Error, KeyError, TypeError):
        return validation_error("1 validation error detected: input.invokeModel.body is required")
    try:
        model = parse_bedrock_scenario(request.match_info["model_id"]).scenario.base
    except ScenarioError as exc:
        return validation_error(f"fake upstream: {exc}")
    native = read_body(inner, model)
    if isinstance(native, str):
        return validation_error(native)
    tokens = count_prompt_tokens(native.prompt_texts())
    headers = {"x-amzn-RequestId": request_id()}
    return json_response(_encode({"inputTokens": tokens}), headers=headers)
