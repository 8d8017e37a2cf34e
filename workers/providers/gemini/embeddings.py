"""OpenAI embeddings <-> Gemini `:embedContent` (one input) and `:batchEmbedContents`
(several; at most 100 per call, so longer lists are sent in slices).

Gemini embeds text only, always answers floats (the base64 form OpenAI offers is packed here,
little-endian float32 as OpenAI sends it) and does not document token usage for embeddings:
when the answer carries no usageMetadata the prompt tokens are estimated at four characters a
token, so cost is an estimate too.
"""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import Sequence
from typing import Any

from workers.errors import InvalidRequest
from workers.providers.base import UNKNOWN_FIELD, Refuse
from workers.providers.gemini.errors import PROVIDER
from workers.providers.gemini.wire import EmbedContentResponse
from workers.wire import (
    EMBEDDING_REQUEST_FIELDS,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    embedding_inputs,
)

MAX_BATCH = 100
CHARS_PER_TOKEN = 4
# Gemini-native fields accepted beside the OpenAI schema -> where they go.
NATIVE_FIELDS: dict[str, str] = {"task_type": "taskType"}
REFUSED: dict[str, str] = {"user": "the Gemini API has no end-user field"}

JSONObject = dict[str, Any]


def texts_of(
    request: EmbeddingRequest, body: dict[str, Any], refuse: Refuse, *, model: str
) -> list[str]:
    """The inputs to embed, after refusing what Gemini cannot honor."""
    for param, reason in REFUSED.items():
        if body.get(param) is not None:
            refuse(param, reason)
    for name in body:
        if name not in EMBEDDING_REQUEST_FIELDS and name not in NATIVE_FIELDS:
            refuse(name, UNKNOWN_FIELD)
    inputs = embedding_inputs(request)
    if not all(isinstance(item, str) for item in inputs):
        raise InvalidRequest(
            "Gemini embeds text: send strings, not token ids",
            param="input",
            code="unsupported_parameter",
            provider=PROVIDER,
            model=model,
        )
    return [item for item in inputs if isinstance(item, str)]


def embed_request(
    text: str, request: EmbeddingRequest, body: dict[str, Any], model_path: str | None = None
) -> JSONObject:
    """One EmbedContentRequest; inside a batch each request names its model."""
    payload: JSONObject = {}
    if model_path is not None:
        payload["model"] = model_path
    payload["content"] = {"parts": [{"text": text}]}
    if body.get("task_type") is not None:
        payload["taskType"] = body["task_type"]
    if request.dimensions is not None:
        payload["outputDimensionality"] = request.dimensions
    return payload


def batches(texts: list[str]) -> list[list[str]]:
    return [texts[i : i + MAX_BATCH] for i in range(0, len(texts), MAX_BATCH)]


def vectors_of(response: EmbedContentResponse) -> list[list[float]]:
    if response.embedding is not None:
        return [response.embedding.values]
    return [item.values for item in response.embeddings]


def to_response(
    vectors: Sequence[list[float]],
    texts: list[str],
    prompt_tokens: int | None,
    *,
    encoding_format: str | None,
    model: str,
) -> EmbeddingResponse:
    tokens = prompt_tokens if prompt_tokens is not None else estimate_tokens(texts)
    return EmbeddingResponse(
        data=[
            Embedding(index=i, embedding=_encode(vector, encoding_format))
            for i, vector in enumerate(vectors)
        ],
        model=model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def estimate_tokens(texts: list[str]) -> int:
    return sum(max(1, -(-len(text) // CHARS_PER_TOKEN)) for text in texts)


def _encode(vector: list[float], encoding_format: str | None) -> list[float] | str:
    if encoding_format != "base64":
        return vector
    packed = array.array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()
