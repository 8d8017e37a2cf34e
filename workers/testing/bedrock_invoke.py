"""Bedrock InvokeModel for Amazon Titan text embeddings, as a fake (a Claude model's
InvokeModel is Anthropic's Messages API: `bedrock_claude`).

    POST /model/amazon.titan-embed-text-v1/invoke     {"inputText"}
         -> {"embedding": [1536 floats], "inputTextTokenCount"}
    POST /model/amazon.titan-embed-text-v2:0/invoke   {"inputText", "dimensions"?, ...}
         -> {"embedding": [1024|512|256], "embeddingsByType": {"float": [...]},
             "inputTextTokenCount"}

Vectors are the shared deterministic ones (`embedding.embedding_vector` of the text), so a
test can recompute them. Other model bodies are not faked: a 400 says so.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from workers.testing import bedrock_claude
from workers.testing.bedrock_auth import check_auth
from workers.testing.bedrock_errors import (
    parse_bedrock_scenario,
    request_id,
    scenario_failure,
    validation_error,
)
from workers.testing.embedding import embedding_vector, input_key
from workers.testing.responses import json_response
from workers.testing.scenario import ScenarioError
from workers.testing.state import ClientWatch, FakeState, record_request
from workers.testing.streaming import wait_forever
from workers.testing.tokens import count_tokens

G1_DIMENSIONS = 1536
V2_DIMENSIONS = (1024, 512, 256)
_V2_KEYS = frozenset({"inputText", "dimensions", "normalize", "embeddingTypes"})
_encode = msgspec.json.Encoder().encode


def routes(state: FakeState) -> list[web.RouteDef]:
    async def invoke(request: web.Request) -> web.StreamResponse:
        if bedrock_claude.is_claude(request.match_info["model_id"]):
            return await bedrock_claude.answer(request, state, stream=False)
        return await _invoke(request, state)

    return [web.post("/model/{model_id:.+}/invoke", invoke)]


async def _invoke(request: web.Request, state: FakeState) -> web.StreamResponse:
    body = await record_request(request, state)
    denied = check_auth(request, body, state)
    if denied is not None:
        return denied
    name = request.match_info["model_id"]
    try:
        bedrock = parse_bedrock_scenario(name)
    except ScenarioError as exc:
        return validation_error(f"fake upstream: {exc}")
    answer = _embed(bedrock.scenario.base, body)
    if isinstance(answer, str):
        return validation_error(answer)
    with ClientWatch(state, request.path, name):
        if bedrock.scenario.fails(state.count_model(name)):
            if bedrock.scenario.hang:
                await wait_forever()
            if bedrock.scenario.status is not None:
                return scenario_failure(bedrock)
        latency_s = state.timing.latency_for(bedrock.scenario)
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        return json_response(_encode(answer), headers={"x-amzn-RequestId": request_id()})


def _embed(model: str, body: bytes) -> dict[str, Any] | str:
    """The answer for one Titan request, or the ValidationException message."""
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return "Malformed input request, please reformat your input and try again."
    if not isinstance(payload, dict) or not isinstance(payload.get("inputText"), str):
        return "Malformed input request: #: required key [inputText] not found"
    text: str = payload["inputText"]
    if not text:
        return "Malformed input request: expected minLength: 1, actual: 0, please reformat"
    if model.startswith("amazon.titan-embed-text-v1"):
        extra = sorted(set(payload) - {"inputText"})
        if extra:
            return f"Malformed input request: extraneous key [{extra[0]}] is not permitted"
        vector = list(embedding_vector(input_key(text), G1_DIMENSIONS))
        return {"embedding": vector, "inputTextTokenCount": count_tokens(text)}
    if model.startswith("amazon.titan-embed-text-v2"):
        return _v2(payload, text)
    return f"fake upstream: InvokeModel is faked for Titan text embeddings only, not {model}"


def _v2(payload: dict[str, Any], text: str) -> dict[str, Any] | str:
    extra = sorted(set(payload) - _V2_KEYS)
    if extra:
        return f"Malformed input request: extraneous key [{extra[0]}] is not permitted"
    dimensions = payload.get("dimensions", V2_DIMENSIONS[0])
    if dimensions not in V2_DIMENSIONS:
        return f"Malformed input request: #/dimensions: {dimensions} is not a valid enum value"
    vector = list(embedding_vector(input_key(text), dimensions))
    return {
        "embedding": vector,
        "embeddingsByType": {"float": vector},
        "inputTextTokenCount": count_tokens(text),
    }
