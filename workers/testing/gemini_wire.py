"""Gemini GenerateContentRequest and embedding requests as the fake reads them, with the
checks the real service makes before it generates anything.

Like the service (proto JSON), the fake rejects unknown field names, so a typo in an adapter
(`maxOutputToken`) fails as it would in production. Field names may be lowerCamelCase or
snake_case, as the service accepts both (the official SDK sends some nested ones in
snake_case).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Generic, TypeVar

import msgspec
import orjson

# --------------------------------------------------------------------------- requests


class _Strict(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    pass


class Blob(_Strict):
    mime_type: str
    data: str


class FileData(_Strict):
    file_uri: str
    mime_type: str | None = None


class FunctionCall(_Strict):
    name: str
    args: dict[str, Any] = {}
    id: str | None = None


class FunctionResponse(_Strict):
    name: str
    response: dict[str, Any]
    id: str | None = None
    will_continue: bool | None = None
    scheduling: str | None = None


class Part(_Strict):
    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    executable_code: dict[str, Any] | None = None
    code_execution_result: dict[str, Any] | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    video_metadata: dict[str, Any] | None = None
    media_resolution: dict[str, Any] | None = None


class Content(_Strict):
    role: str | None = None
    parts: list[Part] = []

    def text(self) -> str:
        return "".join(part.text or "" for part in self.parts if not part.thought)


class ThinkingConfig(_Strict):
    include_thoughts: bool | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None


class GenerationConfig(_Strict):
    stop_sequences: list[str] | None = None
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    response_json_schema: Any = None
    response_modalities: list[str] | None = None
    candidate_count: int | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_logprobs: bool | None = None
    logprobs: int | None = None
    enable_enhanced_civic_answers: bool | None = None
    speech_config: dict[str, Any] | None = None
    thinking_config: ThinkingConfig | None = None
    image_config: dict[str, Any] | None = None
    media_resolution: str | None = None


class FunctionDeclaration(_Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    parameters_json_schema: Any = None
    response: dict[str, Any] | None = None
    response_json_schema: Any = None
    behavior: str | None = None


class Tool(_Strict):
    function_declarations: list[FunctionDeclaration] | None = None
    google_search: dict[str, Any] | None = None
    google_search_retrieval: dict[str, Any] | None = None
    code_execution: dict[str, Any] | None = None
    url_context: dict[str, Any] | None = None


class FunctionCallingConfig(_Strict):
    mode: str | None = None
    allowed_function_names: list[str] | None = None


class ToolConfig(_Strict):
    function_calling_config: FunctionCallingConfig | None = None
    retrieval_config: dict[str, Any] | None = None


class GenerateContentRequest(_Strict):
    contents: list[Content] = []
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None
    safety_settings: list[dict[str, Any]] | None = None
    cached_content: str | None = None
    service_tier: str | None = None

    @property
    def config(self) -> GenerationConfig:
        return self.generation_config or _NO_CONFIG

    @property
    def includes_thoughts(self) -> bool:
        thinking = self.config.thinking_config
        return bool(thinking and thinking.include_thoughts)

    def tool_names(self) -> tuple[str, ...]:
        return tuple(
            declaration.name
            for tool in self.tools or ()
            for declaration in tool.function_declarations or ()
        )

    def prompt_texts(self) -> list[str]:
        """Every text the model reads, for token counting."""
        texts = [self.system_instruction.text()] if self.system_instruction else []
        for content in self.contents:
            for part in content.parts:
                if part.text is not None:
                    texts.append(part.text)
                elif part.function_call is not None:
                    texts.append(orjson.dumps(part.function_call.args).decode())
                elif part.function_response is not None:
                    texts.append(orjson.dumps(part.function_response.response).decode())
        return texts

    def answers_function_calls(self) -> bool:
        """Whether the last turn carries function results (the model then answers in text)."""
        return bool(self.contents) and any(
            part.function_response is not None for part in self.contents[-1].parts
        )

    def last_user_text(self) -> str:
        """The text of the last user turn; function results as JSON when that is all it has."""
        for content in reversed(self.contents):
            if content.role in (None, "user"):
                text = content.text()
                if text or not self.answers_function_calls():
                    return text
                responses = [
                    p.function_response.response for p in content.parts if p.function_response
                ]
                return orjson.dumps(responses).decode()
        return ""


_NO_CONFIG = GenerationConfig()


class EmbedContentRequest(_Strict):
    content: Content
    model: str | None = None
    task_type: str | None = None
    title: str | None = None
    output_dimensionality: int | None = None


class BatchEmbedContentsRequest(_Strict):
    requests: list[EmbedContentRequest]


T = TypeVar("T")
# Values that are the caller's own JSON (function arguments, results, schemas): their keys are
# data, not field names, and stay as sent.
_OPAQUE = frozenset(
    {
        "args",
        "response",
        "parameters",
        "parametersJsonSchema",
        "responseSchema",
        "responseJsonSchema",
    }
)


class _Decoder(Generic[T]):
    """Strict camelCase decoding on the fast path; the snake_case names the service also
    accepts (the SDK sends some, e.g. thinkingConfig's `include_thoughts`) on a second try."""

    def __init__(self, kind: type[T]) -> None:
        self.kind = kind
        self.fast = msgspec.json.Decoder(kind)

    def __call__(self, body: bytes) -> T:
        try:
            return self.fast.decode(body)
        except msgspec.ValidationError:
            # The body is JSON (the fast path got as far as checking fields).
            return msgspec.convert(_camel_keys(orjson.loads(body)), self.kind)


def _camel_keys(value: Any) -> Any:
    if isinstance(value, list):
        return [_camel_keys(item) for item in value]
    if not isinstance(value, dict):
        return value
    converted = {}
    for key, item in value.items():
        name = _camel(key)
        converted[name] = item if name in _OPAQUE else _camel_keys(item)
    return converted


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


decode_generate = _Decoder(GenerateContentRequest)
decode_embed = _Decoder(EmbedContentRequest)
decode_batch_embed = _Decoder(BatchEmbedContentsRequest)

# --------------------------------------------------------------------------- checks

MAX_STOP_SEQUENCES = 5
MAX_CANDIDATES = 8
MISSING_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required for "
    "tools to work correctly, and missing thought_signature may lead to degraded model "
    "performance. Additional data, function call `default_api:{name}` , position {position}. "
    "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)


def request_problem(request: GenerateContentRequest, base_model: str) -> str | None:
    """The INVALID_ARGUMENT message the service would answer, or None when it is valid."""
    if not request.contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    for i, content in enumerate(request.contents):
        problem = _content_problem(i, content)
        if problem is not None:
            return problem
    return (
        _config_problem(request.config)
        or _turn_order_problem(request.contents)
        or _signature_problem(request.contents, base_model)
    )


def _content_problem(i: int, content: Content) -> str | None:
    if content.role not in (None, "user", "model"):
        return "Please use a valid role: user, model."
    if not content.parts:
        return f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
    for j, part in enumerate(content.parts):
        if part.inline_data is not None and not _is_base64(part.inline_data.data):
            return (
                f"Invalid value at 'contents[{i}].parts[{j}].inline_data.data' (TYPE_BYTES), "
                "Base64 decoding failed"
            )
        if part.thought_signature is not None and not _is_base64(part.thought_signature):
            return f"Invalid value at 'contents[{i}].parts[{j}].thought_signature' (TYPE_BYTES)"
    return None


def _config_problem(config: GenerationConfig) -> str | None:
    if config.stop_sequences is not None and len(config.stop_sequences) > MAX_STOP_SEQUENCES:
        return "* GenerateContentRequest.generation_config.stop_sequences: at most 5 allowed\n"
    if config.candidate_count is not None and not 1 <= config.candidate_count <= MAX_CANDIDATES:
        return "* GenerateContentRequest.generation_config.candidate_count: must be 1 to 8\n"
    thinking = config.thinking_config
    if thinking and thinking.thinking_budget is not None and thinking.thinking_level is not None:
        return "You can only set one of thinking budget and thinking level."
    return None


def _turn_order_problem(contents: list[Content]) -> str | None:
    """Function results must follow the model turn that called, one result per call."""
    for i, content in enumerate(contents):
        results = sum(1 for part in content.parts if part.function_response is not None)
        if not results:
            continue
        previous = contents[i - 1] if i else None
        calls = (
            sum(1 for part in previous.parts if part.function_call is not None)
            if previous is not None and previous.role == "model"
            else 0
        )
        if not calls:
            return (
                "Please ensure that function response turn comes immediately after a function "
                "call turn."
            )
        if calls != results:
            return (
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
    return None


def _signature_problem(contents: list[Content], base_model: str) -> str | None:
    """Gemini 3 rejects a current-turn model step whose first functionCall lost its
    thoughtSignature (parallel calls carry one signature, on the first call)."""
    if not base_model.startswith("gemini-3"):
        return None
    start = 0
    for i, content in enumerate(contents):
        if content.role in (None, "user") and content.text():
            start = i
    for content in contents[start:]:
        calls = [part for part in content.parts if part.function_call is not None]
        if content.role == "model" and calls and not calls[0].thought_signature:
            name = calls[0].function_call.name if calls[0].function_call else ""
            position = content.parts.index(calls[0]) + 1
            return MISSING_SIGNATURE.format(name=name, position=position)
    return None


def _is_base64(data: str) -> bool:
    # Proto JSON bytes accept both the standard and the URL-safe alphabet.
    normal = data.replace("-", "+").replace("_", "/")
    try:
        base64.b64decode(normal + "=" * (-len(normal) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
