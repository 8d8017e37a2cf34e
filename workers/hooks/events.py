"""`CallEvent`: what one finished call was, the same for the SDK and the service, and the
LiteLLM-shaped arguments a callback receives for it.

An event is built cheaply where the call ends (references, no copies); everything a
callback reads (`kwargs`, the response object, datetimes) is made from it on the delivery
task, off the request path.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import orjson

from workers.errors import SwitchboardError

# What replaces message and response text when message logging is off
# (litellm_settings.turn_off_message_logging).
REDACTED = "redacted-by-switchboard"
# Request fields that are not model parameters: they go elsewhere in the kwargs.
_NOT_PARAMS = frozenset({"model", "messages", "input", "metadata", "user", "stream"})


class CallEvent(msgspec.Struct, kw_only=True):
    # "completion" or "embedding" (the call_type LiteLLM reports, without its "a" prefix).
    call_type: str
    request_id: str
    # The model the caller named (a model group in the service, `provider/model` in the SDK).
    model: str
    start_time: float  # unix seconds
    end_time: float
    # The request body as the caller sent it (messages or input, parameters, metadata).
    request: dict[str, Any]
    stream: bool = False
    # The response: a wire Struct (the SDK), its JSON bytes (the service) or builtins;
    # None on failure. Turned into builtins on the delivery task, never on the request's.
    response: Any = None
    # On failure: the error the caller got.
    error: SwitchboardError | None = None
    deployment: str = ""
    provider: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    cache_hit: bool = False
    # Milliseconds the request waited in its queue (the service only).
    queue_ms: float | None = None
    # The caller's key alias and team, when the service knows them.
    api_key_alias: str | None = None
    team_id: str | None = None

    @property
    def is_success(self) -> bool:
        return self.error is None


class Response(dict[str, Any]):
    """A response object callbacks can read either way LiteLLM's allows:
    `response_obj["usage"]` or `response_obj.usage`."""

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        return Response(value) if isinstance(value, dict) else value


def redacted_messages(messages: Any) -> Any:
    if not isinstance(messages, list):
        return REDACTED
    return [{**m, "content": REDACTED} if isinstance(m, dict) else REDACTED for m in messages]


def redacted_response(response: dict[str, Any]) -> dict[str, Any]:
    """The response without its text: choices keep their index and finish_reason."""
    out = dict(response)
    if isinstance(out.get("choices"), list):
        out["choices"] = [_redacted_choice(c) for c in out["choices"]]
    if isinstance(out.get("data"), list):  # embeddings: the vectors are content too
        out["data"] = [{"index": d.get("index"), "object": "embedding"} for d in out["data"]]
    return out


def _redacted_choice(choice: Any) -> Any:
    if not isinstance(choice, dict):
        return choice
    message = choice.get("message") or choice.get("delta")
    key = "message" if "message" in choice else "delta"
    if isinstance(message, dict):
        return {**choice, key: {"role": message.get("role", "assistant"), "content": REDACTED}}
    return choice


def view(event: CallEvent, *, redact: bool) -> tuple[dict[str, Any], Response | None]:
    """(kwargs, response_obj) for a callback, as LiteLLM passes them."""
    response = as_builtins(event.response)
    if redact and response is not None:
        response = redacted_response(response)
    kwargs = _kwargs(event, response, redact)
    return kwargs, (Response(response) if response is not None else None)


def as_builtins(response: Any) -> dict[str, Any] | None:
    if response is None or isinstance(response, dict):
        return response
    if isinstance(response, bytes | bytearray | memoryview):
        decoded = orjson.loads(response)
        return decoded if isinstance(decoded, dict) else None
    built = msgspec.to_builtins(response)
    return built if isinstance(built, dict) else None


def _kwargs(event: CallEvent, response: dict[str, Any] | None, redact: bool) -> dict[str, Any]:
    request = event.request
    metadata = request.get("metadata") or {}
    messages = request.get("messages")
    if redact:
        messages = redacted_messages(messages)
    start = datetime.datetime.fromtimestamp(event.start_time)
    end = datetime.datetime.fromtimestamp(event.end_time)
    kwargs: dict[str, Any] = {
        "model": event.model,
        "messages": messages,
        "user": request.get("user"),
        "call_type": event.call_type,
        "stream": event.stream,
        "litellm_call_id": event.request_id,
        "optional_params": {k: v for k, v in request.items() if k not in _NOT_PARAMS},
        "litellm_params": {
            "metadata": {
                **metadata,
                "user_api_key_alias": event.api_key_alias,
                "user_api_key_team_id": event.team_id,
                "model_group": event.model,
                "deployment": event.deployment,
            },
            "custom_llm_provider": event.provider,
        },
        "response_cost": event.cost_usd,
        "cache_hit": event.cache_hit,
        "start_time": start,
        "end_time": end,
        "standard_logging_object": standard_payload(event, messages, response),
    }
    if "input" in request:
        kwargs["input"] = REDACTED if redact else request["input"]
    if event.error is not None:
        kwargs["exception"] = event.error
    return kwargs


def standard_payload(
    event: CallEvent, messages: Any, response: dict[str, Any] | None
) -> dict[str, Any]:
    """LiteLLM's `StandardLoggingPayload` subset: one flat, JSON-ready record of the call
    (what the `jsonl` and `webhook` built-ins write); messages and response as redacted."""
    error = event.error
    return {
        "id": event.request_id,
        "call_type": event.call_type,
        "status": "success" if error is None else "failure",
        "model": event.model,
        "model_group": event.model,
        "model_id": event.deployment,
        "custom_llm_provider": event.provider,
        "stream": event.stream,
        "startTime": event.start_time,
        "endTime": event.end_time,
        "response_time": round(event.end_time - event.start_time, 6),
        "queue_time_ms": event.queue_ms,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "total_tokens": event.prompt_tokens + event.completion_tokens,
        "response_cost": event.cost_usd or 0.0,
        "cache_hit": event.cache_hit,
        "metadata": {
            **(event.request.get("metadata") or {}),
            "user_api_key_alias": event.api_key_alias,
            "user_api_key_team_id": event.team_id,
        },
        "end_user": event.request.get("user"),
        "messages": messages,
        "response": response,
        "error_str": None if error is None else error.message,
        "error_code": None if error is None else error.code,
        "status_code": None if error is None else error.http_status,
    }
