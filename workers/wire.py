"""The OpenAI Chat Completions and Embeddings schema as msgspec Structs.

This module is the only definition of the OpenAI wire model. Every other part speaks it:
the front door decodes requests into it, adapters translate to and from it at the provider
edge, workers encode chunks from it once, and the SDK hands its objects to callers.

Encoding conventions, chosen to match what OpenAI itself sends:
- a field without a default is always encoded (so `"content": null` appears when empty);
- a field with a default is omitted when it holds that default on Structs that set
  `omit_defaults` (deltas, request parts), and encoded as-is elsewhere.

Request Structs are lenient about the *shape* of nested objects they do not interpret
(content-part and tool `type` are plain strings) so that a new OpenAI part or tool type still
reaches OpenAI-family providers untouched; native adapters reject what they cannot translate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import msgspec


class WireModel(msgspec.Struct, kw_only=True, repr_omit_defaults=True):
    """Base of every wire Struct: attribute access like the openai SDK, plus dict export."""

    def model_dump(self) -> dict[str, Any]:
        """The object as plain JSON-compatible builtins (what the openai SDK's model_dump gives)."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result

    def model_dump_json(self) -> str:
        return encode(self).decode()

    def __getitem__(self, key: str) -> Any:
        # LiteLLM users index responses like dicts (`resp["choices"][0]["message"]`).
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


class OptionalFields(WireModel, kw_only=True, omit_defaults=True):
    """Base for objects whose unset optional fields are left out of the JSON."""


# --------------------------------------------------------------------------- request


class ImageURL(OptionalFields, kw_only=True):
    url: str
    detail: str | None = None


class InputAudio(OptionalFields, kw_only=True):
    data: str
    format: str


class FileRef(OptionalFields, kw_only=True):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class ContentPart(OptionalFields, kw_only=True):
    """One part of a multi-part message: text, image_url, input_audio, file or refusal."""

    type: str
    text: str | None = None
    image_url: ImageURL | None = None
    input_audio: InputAudio | None = None
    file: FileRef | None = None
    refusal: str | None = None
    # Anthropic-style prompt-caching breakpoint; passed to providers that support it.
    cache_control: dict[str, Any] | None = None


class FunctionCall(OptionalFields, kw_only=True):
    name: str
    arguments: str


class ToolCall(WireModel, kw_only=True):
    """A tool call, in requests and responses. Not OptionalFields: omit_defaults would drop
    `type`, which OpenAI always sends and requires; the default lets requests omit it."""

    id: str
    type: str = "function"
    function: FunctionCall


MessageRole = Literal["system", "developer", "user", "assistant", "tool", "function"]


class Message(OptionalFields, kw_only=True):
    role: MessageRole
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None
    refusal: str | None = None
    audio: dict[str, Any] | None = None
    # Extensions several gateways share: a reasoning model's visible thinking, and the
    # provider's signed thinking blocks that must be sent back unchanged on the next turn.
    reasoning_content: str | None = None
    thinking_blocks: list[dict[str, Any]] | None = None
    cache_control: dict[str, Any] | None = None

    def text(self) -> str:
        """The message's text parts joined; what a provider without parts would see."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text or "" for p in self.content if p.type == "text")


class FunctionDefinition(OptionalFields, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(OptionalFields, kw_only=True):
    type: str = "function"
    function: FunctionDefinition | None = None
    cache_control: dict[str, Any] | None = None


class ToolChoiceFunction(OptionalFields, kw_only=True):
    name: str


class NamedToolChoice(OptionalFields, kw_only=True):
    type: str = "function"
    function: ToolChoiceFunction | None = None


class JSONSchemaFormat(OptionalFields, kw_only=True):
    name: str
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseFormat(OptionalFields, kw_only=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(OptionalFields, kw_only=True):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatCompletionRequest(OptionalFields, kw_only=True):
    """`POST /v1/chat/completions`: every documented parameter.

    Fields this Struct does not know are not lost: the JSON body travels alongside it and
    OpenAI-family adapters forward those fields verbatim (see `unknown_fields`).
    """

    model: str
    messages: list[Message]
    audio: dict[str, Any] | None = None
    frequency_penalty: float | None = None
    function_call: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = None
    max_tokens: int | None = None
    metadata: dict[str, Any] | None = None
    modalities: list[str] | None = None
    n: int | None = None
    parallel_tool_calls: bool | None = None
    prediction: dict[str, Any] | None = None
    presence_penalty: float | None = None
    prompt_cache_key: str | None = None
    reasoning_effort: str | None = None
    response_format: ResponseFormat | None = None
    safety_identifier: str | None = None
    seed: int | None = None
    service_tier: str | None = None
    stop: str | list[str] | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    tool_choice: str | NamedToolChoice | None = None
    tools: list[Tool] | None = None
    top_logprobs: int | None = None
    top_p: float | None = None
    user: str | None = None
    verbosity: str | None = None
    web_search_options: dict[str, Any] | None = None
    # Anthropic-style extended thinking (`{"type": "enabled", "budget_tokens": N}`), accepted
    # by reasoning-capable native adapters; OpenAI-family hosts receive it as sent.
    thinking: dict[str, Any] | None = None

    @property
    def is_stream(self) -> bool:
        return bool(self.stream)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    @property
    def max_output_tokens(self) -> int | None:
        return (
            self.max_completion_tokens
            if self.max_completion_tokens is not None
            else self.max_tokens
        )

    def stop_sequences(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


CHAT_REQUEST_FIELDS: frozenset[str] = frozenset(ChatCompletionRequest.__struct_fields__)


def unknown_fields(body: dict[str, Any]) -> list[str]:
    """Top-level request keys the schema does not define (forwarded as-is to OpenAI-family)."""
    return [key for key in body if key not in CHAT_REQUEST_FIELDS]


def set_fields(request: ChatCompletionRequest) -> list[str]:
    """Names of the parameters the caller actually set (not None)."""
    return [
        name
        for name in ChatCompletionRequest.__struct_fields__
        if getattr(request, name) is not None
    ]


# --------------------------------------------------------------------------- responses


class PromptTokensDetails(OptionalFields, kw_only=True):
    cached_tokens: int  # required fields are always encoded, even when 0
    audio_tokens: int | None = None
    # Tokens written to the provider's prompt cache (OpenAI's name; Anthropic, Bedrock fill it),
    # billed at the cache-write price.
    cache_write_tokens: int | None = None


class CompletionTokensDetails(OptionalFields, kw_only=True):
    reasoning_tokens: int
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(OptionalFields, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None

    @property
    def cached_tokens(self) -> int:
        details = self.prompt_tokens_details
        return details.cached_tokens if details else 0

    @property
    def cache_write_tokens(self) -> int:
        details = self.prompt_tokens_details
        return (details.cache_write_tokens or 0) if details else 0

    @property
    def reasoning_tokens(self) -> int:
        details = self.completion_tokens_details
        return details.reasoning_tokens if details else 0


def make_usage(
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    cache_write_tokens: int | None = None,
) -> Usage:
    """Usage in the hub's normal form: prompt counts include cache reads and writes,
    completion counts include reasoning."""
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=cached_tokens, cache_write_tokens=cache_write_tokens
        ),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning_tokens),
    )


def assistant_message(content: str | None, **fields: Any) -> ChatCompletionMessage:
    return ChatCompletionMessage(role="assistant", content=content, **fields)


class ChatCompletionMessage(OptionalFields, kw_only=True):
    """An assistant message in a response. `content` has no default, so it is always
    encoded (`null` when the answer is only tool calls), as OpenAI does."""

    role: Literal["assistant"]
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    annotations: list[dict[str, Any]] | None = None
    audio: dict[str, Any] | None = None
    function_call: FunctionCall | None = None
    reasoning_content: str | None = None
    thinking_blocks: list[dict[str, Any]] | None = None


class Choice(WireModel, kw_only=True):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletion(WireModel, kw_only=True, dict=True):
    """`chat.completion`. Instances also carry `_hidden_params` (cost, deployment, attempts),
    set by whoever produced them and never encoded."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None

    @property
    def hidden_params(self) -> dict[str, Any]:
        params: dict[str, Any] = getattr(self, "_hidden_params", None) or {}
        return params

    @hidden_params.setter
    def hidden_params(self, params: dict[str, Any]) -> None:
        self._hidden_params = params


class FunctionCallDelta(OptionalFields, kw_only=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(OptionalFields, kw_only=True):
    """A fragment of a streamed tool call. `index` is the call's position among tool calls."""

    index: int
    id: str | None = None
    type: str | None = None
    function: FunctionCallDelta | None = None


class Delta(OptionalFields, kw_only=True):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    function_call: FunctionCallDelta | None = None
    reasoning_content: str | None = None
    thinking_blocks: list[dict[str, Any]] | None = None


class ChunkChoice(WireModel, kw_only=True):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(WireModel, kw_only=True, omit_defaults=True):
    id: str
    object: Literal["chat.completion.chunk"]  # no default: omit_defaults would drop it
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


def new_chunk(
    id: str, created: int, model: str, choices: list[ChunkChoice], usage: Usage | None = None
) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id=id,
        object="chat.completion.chunk",
        created=created,
        model=model,
        choices=choices,
        usage=usage,
    )


# --------------------------------------------------------------------------- embeddings


class EmbeddingRequest(OptionalFields, kw_only=True):
    model: str
    # str | list[str] | list[int] | list[list[int]]; msgspec cannot union several array
    # types, so the list is checked by `embedding_inputs`.
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    user: str | None = None


EMBEDDING_REQUEST_FIELDS: frozenset[str] = frozenset(EmbeddingRequest.__struct_fields__)


def embedding_inputs(request: EmbeddingRequest) -> list[str] | list[list[int]]:
    """The input as a list of texts or of token arrays; raises ValueError on a mixed list."""
    raw = request.input
    if isinstance(raw, str):
        return [raw]
    if not raw:
        raise ValueError("input must not be empty")
    if all(isinstance(item, str) for item in raw):
        return list(raw)
    if all(isinstance(item, int) and not isinstance(item, bool) for item in raw):
        return [list(raw)]
    if all(isinstance(item, list) and _all_ints(item) for item in raw):
        return [list(item) for item in raw]
    raise ValueError(
        "input must be a string, an array of strings, an array of token ids, "
        "or an array of token-id arrays"
    )


def _all_ints(items: Iterable[Any]) -> bool:
    return all(isinstance(i, int) and not isinstance(i, bool) for i in items)


class Embedding(WireModel, kw_only=True):
    object: Literal["embedding"] = "embedding"
    index: int
    # A list of floats, or a base64 string of little-endian float32 when asked for.
    embedding: list[float] | str


class EmbeddingUsage(WireModel, kw_only=True):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingResponse(WireModel, kw_only=True, dict=True):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage

    @property
    def hidden_params(self) -> dict[str, Any]:
        params: dict[str, Any] = getattr(self, "_hidden_params", None) or {}
        return params

    @hidden_params.setter
    def hidden_params(self, params: dict[str, Any]) -> None:
        self._hidden_params = params


# --------------------------------------------------------------------------- models, errors


class ModelCard(WireModel, kw_only=True):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "switchboard"


class ModelList(WireModel, kw_only=True):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(WireModel, kw_only=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(WireModel, kw_only=True):
    error: ErrorDetail


# --------------------------------------------------------------------------- codecs
# Built once: nothing on the hot path constructs an encoder or decoder.

encode = msgspec.json.Encoder().encode
decode_chat_request = msgspec.json.Decoder(ChatCompletionRequest).decode
decode_embedding_request = msgspec.json.Decoder(EmbeddingRequest).decode
decode_chat_completion = msgspec.json.Decoder(ChatCompletion).decode
decode_chunk = msgspec.json.Decoder(ChatCompletionChunk).decode
decode_embedding_response = msgspec.json.Decoder(EmbeddingResponse).decode
decode_error_body = msgspec.json.Decoder(ErrorBody).decode
decode_usage = msgspec.json.Decoder(Usage).decode


def chat_request_from_dict(body: dict[str, Any]) -> ChatCompletionRequest:
    """Validate a request given as Python objects (the SDK's keyword arguments)."""
    return msgspec.convert(body, ChatCompletionRequest)


def embedding_request_from_dict(body: dict[str, Any]) -> EmbeddingRequest:
    return msgspec.convert(body, EmbeddingRequest)
