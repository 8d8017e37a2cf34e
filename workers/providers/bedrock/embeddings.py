"""Amazon Titan text embeddings through InvokeModel (`POST /model/{modelId}/invoke`).

    G1 (amazon.titan-embed-text-v1):    {"inputText"}                       -> 1536 floats
    V2 (amazon.titan-embed-text-v2:0):  {"inputText", "dimensions"?}       -> 1024, 512 or 256

Titan embeds one text per call, so an OpenAI input list becomes one call per item (a few at
a time); the answers' `embedding` and `inputTextTokenCount` become the OpenAI list and usage.
Other Bedrock embedding families (Cohere, Titan multimodal) are not translated.
"""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import Mapping

import msgspec

from workers.errors import InvalidRequest, ProviderError
from workers.providers.base import Refuse
from workers.providers.bedrock.errors import PROVIDER
from workers.wire import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    embedding_inputs,
)

V2_DIMENSIONS = (256, 512, 1024)
# How many InvokeModel calls one embedding request keeps in flight.
CONCURRENCY = 8
REFUSED_EMBEDDING_PARAMS: Mapping[str, str] = {
    "user": "Titan embeddings take no end-user id",
}


class TitanRequest(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    input_text: str
    dimensions: int | None = None


class TitanResponse(msgspec.Struct, kw_only=True, rename="camel"):
    embedding: list[float]
    input_text_token_count: int = 0


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(TitanResponse).decode


def is_titan_text_embedding(model: str) -> bool:
    return "amazon.titan-embed-text" in model


def titan_bodies(request: EmbeddingRequest, model: str, refuse: Refuse) -> list[bytes]:
    """One InvokeModel body per input text; refuses what Titan cannot honor."""
    for param, reason in REFUSED_EMBEDDING_PARAMS.items():
        if getattr(request, param) is not None:
            refuse(param, reason)
    dimensions = _dimensions(request.dimensions, model, refuse)
    inputs = embedding_inputs(request)
    if not all(isinstance(item, str) for item in inputs):
        raise InvalidRequest(
            "Titan embeds text; token-id arrays cannot be sent", param="input", provider=PROVIDER
        )
    return [_encode(TitanRequest(input_text=str(text), dimensions=dimensions)) for text in inputs]


def _dimensions(dimensions: int | None, model: str, refuse: Refuse) -> int | None:
    if dimensions is None:
        return None
    if "-v1" in model:
        refuse("dimensions", "Titan Embeddings G1 has a fixed size (1536)")
        return None
    if dimensions not in V2_DIMENSIONS:
        refuse("dimensions", "Titan Text Embeddings V2 gives 256, 512 or 1024 dimensions")
        return None
    return dimensions


def embedding_response(
    answers: list[bytes], request: EmbeddingRequest, model: str
) -> EmbeddingResponse:
    data: list[Embedding] = []
    tokens = 0
    for index, raw in enumerate(answers):
        try:
            answer = _decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProviderError(
                f"Bedrock sent an embedding answer we cannot read: {exc}",
                provider=PROVIDER,
                model=model,
            ) from exc
        tokens += answer.input_text_token_count
        vector = answer.embedding
        form = _base64(vector) if request.encoding_format == "base64" else vector
        data.append(Embedding(index=index, embedding=form))
    return EmbeddingResponse(
        data=data, model=model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
    )


def _base64(vector: list[float]) -> str:
    """OpenAI's base64 form: little-endian float32 values."""
    packed = array.array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()
