"""Claude on Vertex AI as a fake: Anthropic's Messages API behind Vertex's publisher-model
methods (issue #18).

    POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:rawPredict
         -> Anthropic's message JSON
    POST .../models/{model}:streamRawPredict   (`stream: true` in the body)
         -> Anthropic's SSE events, as Anthropic frames them
    POST .../models/count-tokens:rawPredict    (the body names the model)
         -> {"input_tokens": n}

`v1beta1` is served alike. The body is what `AnthropicVertex` sends: a Messages body without
`model` (the URL names it) and with `anthropic_version: "vertex-2023-10-16"` (or a dated
version, as the SDK here sends); `anthropic-beta` is a header. Every call needs
`Authorization: Bearer <a token the fake's OAuth endpoint issued>` (google_oauth.py), else
Google's 401. The answer is the Anthropic fake's, the same events byte for byte, for the
model's scenario (`scenario.py`, plus `stop_reason=`). Quota
(429) and auth failures are Google's `{"error": {"code", "message", "status"}}`, as Vertex's
front end answers them; the model's own failures are Anthropic's bodies, which Vertex passes
through.
"""

from __future__ import annotations

import asyncio
import re

import msgspec
from aiohttp import web

from workers.testing import anthropic_errors as errors
from workers.testing import gemini_errors
from workers.testing.anthropic import SNAPSHOTS, admit, messages_reply, stream_reply
from workers.testing.anthropic_reply import MessagesRequest, decode_request
from workers.testing.anthropic_wire import Ids, render_message, render_stream
from workers.testing.google_oauth import authority
from workers.testing.responses import json_response
from workers.testing.state import ClientWatch, FakeState, record_request
from workers.testing.streaming import wait_forever
from workers.testing.tokens import count_prompt_tokens

ANTHROPIC_VERSION = "vertex-2023-10-16"
# Vertex documents one version (what the gateway sends); the fake also takes a dated
# `YYYY-MM-DD`, because the anthropic SDK installed here (2.17) sends its own API version.
_VERSION = re.compile(r"vertex-2023-10-16|\d{4}-\d{2}-\d{2}")
COUNT_TOKENS = "count-tokens"
_MODELS = (
    "/{version:v1|v1beta1}/projects/{project}/locations/{location}/publishers/anthropic/models/"
)
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_QUOTA = (
    "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model "
    "with base model: anthropic-{model}. Please submit a quota increase request. "
    "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai."
)


def routes(state: FakeState) -> list[web.RouteDef]:
    async def predict(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        request_id = errors.request_id(next(state.ids))
        if not authority(state).accepts(request.headers.get("Authorization", "")):
            return gemini_errors.error_response(401, _UNAUTHENTICATED, "UNAUTHENTICATED")
        model, _, method = request.match_info["target"].rpartition(":")
        if model == COUNT_TOKENS and method == "rawPredict":
            return _count_tokens(body, request_id)
        if method not in ("rawPredict", "streamRawPredict"):
            return gemini_errors.not_found(f"Method {method} is not found.")
        return await _answer(request, state, body, model, request_id, method)

    return [web.post(_MODELS + "{target}", predict)]


def read_body(body: bytes, model: str, *, stream: bool) -> MessagesRequest | str:
    """The Messages request in a rawPredict body, or the 400 message Vertex answers."""
    try:
        payload = msgspec.json.decode(body)
        native = decode_request(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return f"Invalid request body: {exc}"
    if not isinstance(payload, dict):
        return "Invalid request body: expected an object"
    if "model" in payload:
        return "model: Extra inputs are not permitted (the URL names the model)"
    version = payload.get("anthropic_version")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        return f"anthropic_version: Input should be '{ANTHROPIC_VERSION}'"
    if bool(payload.get("stream")) != stream:
        method = "streamRawPredict" if payload.get("stream") else "rawPredict"
        return f"a body with stream={bool(payload.get('stream'))} is for {method}"
    native.model = model
    return native.problem() or native.prefill_problem() or native


async def _answer(
    request: web.Request,
    state: FakeState,
    body: bytes,
    model: str,
    request_id: str,
    method: str,
) -> web.StreamResponse:
    stream = method == "streamRawPredict"
    native = read_body(body, model, stream=stream)
    if isinstance(native, str):
        return errors.invalid_request(native, request=request_id)
    admitted = admit(state, model, request_id)
    if isinstance(admitted, web.Response):
        return admitted
    scenario = admitted.scenario
    with ClientWatch(state, request.path, admitted.name) as watch:
        if admitted.is_failing and scenario.hang:
            await wait_forever()
        if admitted.is_failing and scenario.status == 429:
            message = _QUOTA.format(model=scenario.base.partition("@")[0])
            return gemini_errors.error_response(429, message, "RESOURCE_EXHAUSTED")
        if admitted.is_failing and scenario.status is not None:
            return errors.scripted_failure(scenario, request=request_id)
        reply = messages_reply(scenario, native, body, admitted.stop_reason)
        name = SNAPSHOTS.get(scenario.base, scenario.base)
        ids = Ids(next(state.ids))
        headers = {"request-id": request_id}
        if stream:
            events = render_stream(reply, model=name, ids=ids)
            return await stream_reply(request, watch, admitted, events, headers)
        latency_s = state.timing.latency_for(scenario)
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        return json_response(render_message(reply, model=name, ids=ids), headers=headers)


def _count_tokens(body: bytes, request_id: str) -> web.Response:
    try:
        native = decode_request(body)
    except msgspec.DecodeError as exc:
        return errors.invalid_request(f"Invalid request body: {exc}", request=request_id)
    if not native.model:
        return errors.invalid_request("model: Field required", request=request_id)
    tokens = count_prompt_tokens(native.prompt_texts())
    return json_response(msgspec.json.encode({"input_tokens": tokens}))
