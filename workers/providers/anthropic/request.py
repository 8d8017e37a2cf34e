"""An OpenAI chat request -> the body of Anthropic's `POST /v1/messages`.

Steps: apply deployment defaults -> refuse (or drop) what Anthropic cannot honor -> translate
messages -> sampling, tools, thinking and output format. Nothing is forwarded untranslated
except the Anthropic-only fields in `NATIVE_FIELDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from workers import pricing, wire
from workers.deployment import Deployment
from workers.errors import InvalidRequest
from workers.providers.anthropic.messages import Block, translate_messages
from workers.providers.base import UNKNOWN_FIELD, ChatCall, Refuse
from workers.wire import ChatCompletionRequest

PROVIDER = "anthropic"
# OpenAI parameter -> why Anthropic cannot honor it (docs/providers/anthropic.md is written
# from this table). Values in `NEUTRAL_VALUES`, and temperatures up to 1, ask for nothing
# Anthropic lacks and pass.
REFUSED_PARAMS: Mapping[str, str] = {
    "n": "Anthropic returns one choice per request (n > 1)",
    "seed": "Anthropic has no seeded sampling",
    "temperature": "Anthropic's temperature range is 0..1 (values above 1)",
    "presence_penalty": "Anthropic has no presence penalty",
    "frequency_penalty": "Anthropic has no frequency penalty",
    "logit_bias": "Anthropic has no logit bias",
    # top_logprobs comes with logprobs: true, and is the one to name when both are set.
    "top_logprobs": "Anthropic does not return log probabilities",
    "logprobs": "Anthropic does not return log probabilities",
    "response_format": "Anthropic has no JSON mode (type json_object); "
    "json_schema maps to output_config.format",
    "audio": "Anthropic does not produce audio",
    "modalities": 'Anthropic produces text only (anything but ["text"])',
    "prediction": "Anthropic has no predicted outputs",
    "functions": "legacy functions are not translated; use tools",
    "function_call": "legacy function_call is not translated; use tool_choice",
    "store": "Anthropic does not store completions (store: true)",
    "service_tier": "Anthropic's service_tier values (auto, standard_only) are not OpenAI's",
    "prompt_cache_key": "Anthropic caches by explicit cache_control breakpoints",
    "verbosity": "Anthropic has no verbosity control",
    "web_search_options": "Anthropic's web search is a server tool, not translated",
}
NEUTRAL_VALUES: Mapping[str, Any] = {
    "n": 1,
    "logprobs": False,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "store": False,
    "modalities": ["text"],
}
# Anthropic-only top-level fields a caller may send (extra_body) and that go through as-is.
NATIVE_FIELDS: frozenset[str] = frozenset({"top_k"})
# reasoning_effort -> thinking.budget_tokens (Anthropic's minimum budget is 1024).
THINKING_BUDGETS: Mapping[str, int] = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
# max_tokens is required. Without one we ask for the model's output limit, capped: Anthropic
# refuses a request whose prompt + max_tokens exceeds the context window ("input length and
# `max_tokens` exceed context limit: 178959 + 64000 > 200000"), so asking for 64k by default
# would refuse every long prompt. A longer answer needs an explicit max_tokens.
DEFAULT_MAX_TOKENS = 4096
MAX_DEFAULT_MAX_TOKENS = 8192
_EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}
_TOOL_CHOICES: Mapping[str, str] = {"auto": "auto", "required": "any"}


def build_body(
    call: ChatCall, deployment: Deployment, refuse: Refuse, *, stream: bool
) -> dict[str, Any]:
    model = deployment.model
    request, body = _with_defaults(call, deployment)
    native = {name: body[name] for name in NATIVE_FIELDS if body.get(name) is not None}
    for name in wire.unknown_fields(body):
        if name not in NATIVE_FIELDS:
            refuse(name, UNKNOWN_FIELD)
    request = _without_refused(request, refuse)
    conversation = translate_messages(request.messages, refuse)
    limits_model = deployment.base_model or model
    out: dict[str, Any] = {"model": model, "max_tokens": _max_tokens(request, limits_model)}
    if conversation.system is not None:
        out["system"] = conversation.system
    out["messages"] = conversation.messages
    _add_tools(out, request)
    _add_sampling(out, request)
    out.update(native)
    _add_thinking(out, request, pricing.max_output_tokens(PROVIDER, limits_model))
    _add_output_config(out, request)
    if stream:
        out["stream"] = True
    return out


def _with_defaults(
    call: ChatCall, deployment: Deployment
) -> tuple[ChatCompletionRequest, dict[str, Any]]:
    """The request with the deployment's default parameters under the caller's."""
    if not deployment.default_params:
        return call.request, call.body
    body = {**deployment.default_params, **call.body}
    try:
        return wire.chat_request_from_dict(body), body
    except msgspec.ValidationError as exc:
        raise InvalidRequest(
            f"deployment default_params do not form a valid request: {exc}", provider=PROVIDER
        ) from exc


def refused_params(request: ChatCompletionRequest) -> list[str]:
    """The parameters of `request` Anthropic cannot honor, in table order."""
    return [
        param
        for param in REFUSED_PARAMS
        if (value := getattr(request, param)) is not None and not _is_honored(param, value)
    ]


def _is_honored(param: str, value: Any) -> bool:
    if param == "temperature":
        return bool(value <= 1)
    if param == "response_format":
        return bool(value.type != "json_object")
    return param in NEUTRAL_VALUES and value == NEUTRAL_VALUES[param]


def _without_refused(request: ChatCompletionRequest, refuse: Refuse) -> ChatCompletionRequest:
    refused = refused_params(request)
    for param in refused:
        refuse(param, REFUSED_PARAMS[param])
    if not refused:
        return request
    return msgspec.structs.replace(request, **dict.fromkeys(refused))


def _max_tokens(request: ChatCompletionRequest, model: str) -> int:
    if request.max_output_tokens is not None:
        return request.max_output_tokens
    limit = pricing.max_output_tokens(PROVIDER, model)
    return min(limit, MAX_DEFAULT_MAX_TOKENS) if limit else DEFAULT_MAX_TOKENS


# --------------------------------------------------------------------------- sampling


def _add_sampling(out: dict[str, Any], request: ChatCompletionRequest) -> None:
    if request.temperature is not None:
        out["temperature"] = request.temperature
    if request.top_p is not None:
        out["top_p"] = request.top_p
    stop = request.stop_sequences()
    if stop:
        out["stop_sequences"] = stop
    # safety_identifier is OpenAI's newer name for the end-user id `user` carried.
    # LiteLLM's request metadata may name the user too (`metadata.user_id`): the same
    # thing as Anthropic's metadata.user_id; its other keys are the gateway's (issue #16).
    metadata_user = (request.metadata or {}).get("user_id")
    user_id = request.safety_identifier or request.user
    user_id = user_id or (metadata_user if isinstance(metadata_user, str) else None)
    if user_id:
        out["metadata"] = {"user_id": user_id}


# --------------------------------------------------------------------------- tools


def _add_tools(out: dict[str, Any], request: ChatCompletionRequest) -> None:
    if request.tools:
        out["tools"] = [_tool(tool, i) for i, tool in enumerate(request.tools)]
    choice = _tool_choice(request)
    if choice is not None:
        out["tool_choice"] = choice


def _tool(tool: wire.Tool, i: int) -> Block:
    function = tool.function
    if tool.type != "function" or function is None:
        raise InvalidRequest(
            f"tools[{i}]: Anthropic takes function tools only, not `{tool.type}`",
            param=f"tools[{i}].type",
            provider=PROVIDER,
        )
    native: Block = {"name": function.name}
    if function.description:
        native["description"] = function.description
    native["input_schema"] = function.parameters or dict(_EMPTY_SCHEMA)
    if function.strict:
        native["strict"] = True
    if tool.cache_control is not None:
        native["cache_control"] = tool.cache_control
    return native


def _tool_choice(request: ChatCompletionRequest) -> Block | None:
    choice = request.tool_choice
    if not request.tools:
        return None  # without tools only "none" passes validation, and it needs no saying
    if choice == "none":
        return {"type": "none"}
    native: Block
    if choice is None:
        if request.parallel_tool_calls is not False:
            return None  # Anthropic's default is auto; say nothing when the caller said nothing
        native = {"type": "auto"}
    elif isinstance(choice, str) and choice in _TOOL_CHOICES:
        native = {"type": _TOOL_CHOICES[choice]}
    elif isinstance(choice, wire.NamedToolChoice) and choice.function is not None:
        native = {"type": "tool", "name": choice.function.name}
    else:
        raise InvalidRequest(
            "`tool_choice` must name a function", param="tool_choice", provider=PROVIDER
        )
    if request.parallel_tool_calls is False:
        native["disable_parallel_tool_use"] = True
    return native


# --------------------------------------------------------------------------- thinking, output


def _add_thinking(
    out: dict[str, Any], request: ChatCompletionRequest, output_limit: int | None
) -> None:
    thinking = _thinking(request)
    if thinking is None:
        return
    out["thinking"] = thinking
    budget = thinking.get("budget_tokens") if thinking.get("type") == "enabled" else None
    if isinstance(budget, int) and out["max_tokens"] <= budget:
        # Anthropic wants max_tokens > budget_tokens; keep the caller's answer budget on top.
        raised = budget + out["max_tokens"]
        out["max_tokens"] = min(raised, output_limit) if output_limit else raised


def _thinking(request: ChatCompletionRequest) -> dict[str, Any] | None:
    effort = request.reasoning_effort
    if request.thinking is not None:
        if effort is not None:
            raise InvalidRequest(
                "give either `thinking` or `reasoning_effort`, not both",
                param="reasoning_effort",
                provider=PROVIDER,
            )
        return dict(request.thinking)
    if effort is None or effort == "none":
        return None
    budget = THINKING_BUDGETS.get(effort)
    if budget is None:
        raise InvalidRequest(
            f"`reasoning_effort` must be one of none, {', '.join(THINKING_BUDGETS)}; "
            f"got {effort!r}",
            param="reasoning_effort",
            provider=PROVIDER,
        )
    return {"type": "enabled", "budget_tokens": budget}


def _add_output_config(out: dict[str, Any], request: ChatCompletionRequest) -> None:
    fmt = request.response_format
    if fmt is None or fmt.type != "json_schema":
        return
    if fmt.json_schema is None or fmt.json_schema.schema is None:
        raise InvalidRequest(
            "`response_format.json_schema.schema` is required for Anthropic",
            param="response_format",
            provider=PROVIDER,
        )
    out["output_config"] = {"format": {"type": "json_schema", "schema": fmt.json_schema.schema}}
