"""Semantic checks msgspec's type validation cannot express, shared by the front door and the
SDK so both refuse the same requests with the same OpenAI-style messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec

from workers.errors import InvalidRequest
from workers.tokens import estimate_input_tokens, estimate_prompt_tokens
from workers.wire import ChatCompletionRequest, EmbeddingRequest, embedding_inputs

_TOOL_CHOICE_WORDS = frozenset({"none", "auto", "required"})
MAX_N = 128
# Bounds on counts and ids, so that every provider's encoder and schema can hold what the
# gateway accepted (issue #13, item 5): token counts and dimensions are int32 in Gemini's
# and Bedrock's schemas; `seed` is an int64 in OpenAI's.
MAX_COUNT = 2**31 - 1
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1


class RequestLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What one request may ask of the gateway (issue #13: one embeddings request with 5,000
    inputs made a 163 MB reply). Defaults are the SDK's; the service takes its own from
    `switchboard_settings` (same names, same defaults)."""

    # OpenAI's own limit for one embeddings request.
    max_embedding_inputs: int = 2048
    # Per input, estimated (workers/tokens.py). OpenAI's models take 8,192 real tokens, but
    # the estimate runs high for prose and other embedding models take 32k, so the default
    # refuses only what no mainstream embedding model accepts.
    max_embedding_input_tokens: int = 32_768
    # A chat's messages or an embedding request's input, estimated. Above the largest
    # context windows offered (2M), so it refuses only what no model could take.
    max_request_tokens: int = 2_000_000


DEFAULT_LIMITS = RequestLimits()

Source = TypeVar("Source")
Decoded = TypeVar("Decoded")


def decode_request(decode: Callable[[Source], Decoded], source: Source) -> Decoded:
    """`decode(source)` (a msgspec decoder or converter of a request), its refusal an
    InvalidRequest that names the offending parameter when msgspec says which."""
    try:
        return decode(source)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request: {exc}", param=param_of(exc)) from exc
    except msgspec.DecodeError as exc:  # bytes that are no JSON (from a foreign producer)
        raise InvalidRequest(f"invalid request: {exc}") from exc


def param_of(exc: msgspec.ValidationError) -> str | None:
    """The parameter a msgspec validation error points at (`... - at `$.messages[0]``)."""
    text = str(exc)
    marker = "at `$."
    if marker in text:
        return text.split(marker, 1)[1].rstrip("`")
    return None


def _bad(message: str, param: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def _check_range(value: float | None, low: float, high: float, param: str) -> None:
    if value is not None and not low <= value <= high:
        raise _bad(f"`{param}` must be between {low:g} and {high:g}; got {value:g}", param)


def validate_chat_request(
    request: ChatCompletionRequest, limits: RequestLimits = DEFAULT_LIMITS
) -> None:
    if not request.model:
        raise _bad("`model` must not be empty", "model", "missing_required_parameter")
    if not request.messages:
        raise _bad("`messages` must contain at least one message", "messages", "empty_array")
    _validate_numbers(request)
    if request.stream_options is not None and not request.stream:
        raise _bad(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    if request.top_logprobs is not None and not request.logprobs:
        raise _bad("`top_logprobs` requires `logprobs` to be true", "top_logprobs")
    _validate_tools(request)
    _validate_tool_choice(request)
    _validate_response_format(request)
    _validate_messages(request)
    _check_prompt_size(request, "messages", limits)


# OpenAI's bound on a function name; providers agree on at most this many characters.
MAX_TOOL_NAME = 64


def _validate_tools(request: ChatCompletionRequest) -> None:
    """A function tool names its function, and its parameters are a JSON Schema object: a
    malformed tool must be a 400 here, not a provider's puzzling error (issue #16)."""
    for i, tool in enumerate(request.tools or ()):
        if tool.type != "function":
            continue
        where = f"tools[{i}].function"
        if tool.function is None:
            raise _bad(
                f"`{where}` is missing: a function tool needs {{name, parameters}}",
                where,
                "missing_required_parameter",
            )
        name = tool.function.name
        if not name or len(name) > MAX_TOOL_NAME:
            raise _bad(f"`{where}.name` must be 1 to {MAX_TOOL_NAME} characters", f"{where}.name")
        parameters = tool.function.parameters
        if parameters is not None and parameters.get("type", "object") != "object":
            raise _bad(
                f"`{where}.parameters` must be a JSON Schema of type object",
                f"{where}.parameters",
            )


def _validate_numbers(request: ChatCompletionRequest) -> None:
    """Every number field within the range OpenAI documents, or a bound every provider holds."""
    if request.n is not None and not 1 <= request.n <= MAX_N:
        raise _bad(f"`n` must be between 1 and {MAX_N}; got {request.n}", "n")
    _check_range(request.temperature, 0, 2, "temperature")
    _check_range(request.top_p, 0, 1, "top_p")
    _check_range(request.presence_penalty, -2, 2, "presence_penalty")
    _check_range(request.frequency_penalty, -2, 2, "frequency_penalty")
    _check_range(request.top_logprobs, 0, 20, "top_logprobs")
    for param in ("max_tokens", "max_completion_tokens"):
        value = getattr(request, param)
        if value is not None and value < 1:
            raise _bad(f"`{param}` must be at least 1; got {value}", param)
        if value is not None and value > MAX_COUNT:
            raise _bad(f"`{param}` must be at most {MAX_COUNT}", param)
    if request.seed is not None and not SEED_MIN <= request.seed <= SEED_MAX:
        raise _bad("`seed` must be a 64-bit signed integer", "seed")
    if request.logit_bias:
        for token, bias in request.logit_bias.items():
            if not -100 <= bias <= 100:
                raise _bad(f"`logit_bias[{token}]` must be between -100 and 100", "logit_bias")


def _validate_tool_choice(request: ChatCompletionRequest) -> None:
    choice = request.tool_choice
    if isinstance(choice, str) and choice not in _TOOL_CHOICE_WORDS:
        raise _bad(
            "`tool_choice` must be one of none, auto, required or a named function; "
            f"got {choice!r}",
            "tool_choice",
        )
    if choice is not None and choice != "none" and not request.tools:
        raise _bad("`tool_choice` is only allowed when `tools` are given", "tool_choice")


def _validate_response_format(request: ChatCompletionRequest) -> None:
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is None:
        raise _bad(
            "`response_format` of type json_schema needs a `json_schema` object",
            "response_format",
        )


def _validate_messages(request: ChatCompletionRequest) -> None:
    for i, message in enumerate(request.messages):
        if message.role == "tool" and not message.tool_call_id:
            raise _bad(
                f"messages[{i}]: a tool message needs `tool_call_id`",
                f"messages[{i}].tool_call_id",
                "missing_required_parameter",
            )
        if message.role in ("system", "developer", "user", "tool") and message.content is None:
            raise _bad(
                f"messages[{i}]: a {message.role} message needs `content`",
                f"messages[{i}].content",
                "missing_required_parameter",
            )
        if isinstance(message.content, list):
            for j, part in enumerate(message.content):
                if part.type == "text" and part.text is None:
                    raise _bad(
                        f"messages[{i}].content[{j}]: a text part needs `text`",
                        f"messages[{i}].content[{j}].text",
                        "missing_required_parameter",
                    )
                if part.type == "image_url" and part.image_url is None:
                    raise _bad(
                        f"messages[{i}].content[{j}]: an image_url part needs `image_url`",
                        f"messages[{i}].content[{j}].image_url",
                        "missing_required_parameter",
                    )


def validate_embedding_request(
    request: EmbeddingRequest, limits: RequestLimits = DEFAULT_LIMITS
) -> None:
    if not request.model:
        raise _bad("`model` must not be empty", "model", "missing_required_parameter")
    try:
        inputs = embedding_inputs(request)
    except ValueError as exc:
        raise _bad(str(exc), "input") from exc
    if request.dimensions is not None and not 1 <= request.dimensions <= MAX_COUNT:
        raise _bad(f"`dimensions` must be between 1 and {MAX_COUNT}", "dimensions")
    _check_inputs(inputs, limits)
    _check_prompt_size(request, "input", limits)


def _check_inputs(inputs: list[str] | list[list[int]], limits: RequestLimits) -> None:
    if len(inputs) > limits.max_embedding_inputs:
        raise _bad(
            f"`input` may hold at most {limits.max_embedding_inputs} items per request; "
            f"got {len(inputs)}. Send them in batches "
            "(the limit is switchboard_settings.max_embedding_inputs).",
            "input",
            "too_many_inputs",
        )
    cap = limits.max_embedding_input_tokens
    items: list[str | list[int]] = list(inputs)
    for i, item in enumerate(items):
        tokens = estimate_input_tokens(item)
        if tokens > cap:
            raise _bad(
                f"`input[{i}]` is about {tokens} tokens; one input may hold at most {cap} "
                "(estimated at 4 bytes per token; the limit is "
                "switchboard_settings.max_embedding_input_tokens).",
                f"input[{i}]",
                "input_too_long",
            )


def _check_prompt_size(
    request: ChatCompletionRequest | EmbeddingRequest, param: str, limits: RequestLimits
) -> None:
    tokens = estimate_prompt_tokens(request)
    if tokens > limits.max_request_tokens:
        raise _bad(
            f"`{param}` is about {tokens} tokens; one request may hold at most "
            f"{limits.max_request_tokens} (estimated at 4 bytes per token; the limit is "
            "switchboard_settings.max_request_tokens).",
            param,
            "too_many_tokens",
        )
