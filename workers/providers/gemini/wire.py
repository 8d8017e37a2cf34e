"""Gemini's GenerateContentResponse and embedding responses as msgspec Structs (decode only).

Field names are Gemini's (lowerCamelCase on the wire). Only what the adapter maps is declared;
the rest (safetyRatings, citationMetadata, groundingMetadata, per-modality token details) is
skipped by the decoder without being materialised.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Camel(msgspec.Struct, rename="camel", kw_only=True):
    pass


class FunctionCall(_Camel):
    name: str
    args: dict[str, Any] = {}


class Part(_Camel):
    text: str | None = None
    # A thought summary (only with thinkingConfig.includeThoughts): reasoning, not content.
    thought: bool = False
    thought_signature: str | None = None
    function_call: FunctionCall | None = None


class Content(_Camel):
    parts: list[Part] = []
    role: str | None = None


class LogprobsCandidate(_Camel):
    token: str = ""
    log_probability: float = 0.0


class TopCandidates(_Camel):
    candidates: list[LogprobsCandidate] = []


class LogprobsResult(_Camel):
    top_candidates: list[TopCandidates] = []
    chosen_candidates: list[LogprobsCandidate] = []


class Candidate(_Camel):
    content: Content | None = None
    finish_reason: str | None = None
    finish_message: str | None = None
    index: int = 0
    logprobs_result: LogprobsResult | None = None


class PromptFeedback(_Camel):
    block_reason: str | None = None
    block_reason_message: str | None = None


class UsageMetadata(_Camel):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    cached_content_token_count: int = 0
    thoughts_token_count: int = 0
    tool_use_prompt_token_count: int = 0
    total_token_count: int = 0


class GenerateContentResponse(_Camel):
    candidates: list[Candidate] = []
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    # Present only on the error event that ends a failed stream.
    error: dict[str, Any] | None = None


class ContentEmbedding(_Camel):
    values: list[float] = []


class EmbedContentResponse(_Camel):
    """`:embedContent` answers `embedding`, `:batchEmbedContents` answers `embeddings`."""

    embedding: ContentEmbedding | None = None
    embeddings: list[ContentEmbedding] = []
    # Not documented for the Gemini API; read when present (the SDK's type has the field).
    usage_metadata: UsageMetadata | None = None


decode_response = msgspec.json.Decoder(GenerateContentResponse).decode
decode_embeddings = msgspec.json.Decoder(EmbedContentResponse).decode
