"""An OpenAI chat request -> a ConverseRequest: refused parameters, tools, inference settings,
extended thinking, structured output. Messages are translated by `messages`.

`REFUSED_PARAMS` is the table of OpenAI parameters Converse cannot honor (docs/providers/
bedrock.md is written from it): each is a 400 naming the parameter, or with drop_params
dropped and logged, never ignored silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from workers.errors import InvalidRequest
from workers.providers.base import Refuse
from workers.providers.bedrock.converse import (
    ConverseRequest,
    InferenceConfiguration,
    JsonSchemaDefinition,
    OutputConfig,
    OutputFormat,
    OutputFormatStructure,
    ServiceTier,
    SpecificToolChoice,
    Tool,
    ToolChoice,
    ToolConfiguration,
    ToolInputSchema,
    ToolSpecification,
)
from workers.providers.bedrock.errors import PROVIDER
from workers.providers.bedrock.messages import Conversation, cache_point
from workers.wire import ChatCompletionRequest, NamedToolChoice

# reasoning_effort -> Claude's thinking budget_tokens (Anthropic's minimum is 1024); the same
# budgets as the Anthropic adapter, so one request thinks alike on either route.
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
# The answer's room when thinking is on and the caller set no max_tokens.
ANSWER_TOKENS = 4096
THINKING_TYPES = ("enabled", "disabled", "adaptive")
SERVICE_TIERS = ("default", "flex", "priority")
# Top-level fields outside the OpenAI schema that still mean something here: Claude's top_k
# and a verbatim `additionalModelRequestFields` for model-specific settings.
NATIVE_FIELDS = ("top_k", "additionalModelRequestFields")
EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


class Target(NamedTuple):
    """What the request is translated for."""

    model: str
    is_claude: bool
    max_output_tokens: int | None


class Refusal(NamedTuple):
    reason: str
    when: str = "set"  # for the docs table
    applies: Callable[[Any, Target], bool] = lambda value, target: True


_NO_END_USER = "Converse has no end-user id (requestMetadata is for invocation logs: use metadata)"
_NO_LOGPROBS = "Converse returns no log probabilities"
_NOT_CLAUDE = "only Anthropic Claude models take extended thinking on Bedrock"

REFUSED_PARAMS: dict[str, Refusal] = {
    "n": Refusal("Converse returns one choice per request", "> 1", lambda v, t: v > 1),
    "seed": Refusal("Converse has no seed (only model-specific request fields)"),
    "user": Refusal(_NO_END_USER),
    "safety_identifier": Refusal(_NO_END_USER),
    "logit_bias": Refusal("Converse has no logit bias"),
    "logprobs": Refusal(_NO_LOGPROBS, "true", lambda v, t: bool(v)),
    "top_logprobs": Refusal(_NO_LOGPROBS),
    "presence_penalty": Refusal("Converse has no presence penalty", "not 0", lambda v, t: v != 0),
    "frequency_penalty": Refusal("Converse has no frequency penalty", "not 0", lambda v, t: v != 0),
    "parallel_tool_calls": Refusal(
        "Converse cannot forbid parallel tool calls", "false", lambda v, t: v is False
    ),
    "temperature": Refusal("Converse takes temperature 0..1", "> 1", lambda v, t: v > 1),
    "response_format": Refusal(
        "Converse has no JSON mode; use a json_schema response_format",
        "type json_object",
        lambda v, t: v.type == "json_object",
    ),
    "reasoning_effort": Refusal(_NOT_CLAUDE, "model is not Claude", lambda v, t: not t.is_claude),
    "thinking": Refusal(_NOT_CLAUDE, "model is not Claude", lambda v, t: not t.is_claude),
    "service_tier": Refusal(
        "Bedrock tiers are default, flex and priority",
        "not auto/default/flex/priority",
        lambda v, t: v != "auto" and v not in SERVICE_TIERS,
    ),
    "store": Refusal("Bedrock does not store completions", "true", lambda v, t: bool(v)),
    "modalities": Refusal(
        "Converse answers with text only", "not [text]", lambda v, t: list(v) != ["text"]
    ),
    "audio": Refusal("Converse answers with text only"),
    "prediction": Refusal("Converse has no predicted outputs"),
    "web_search_options": Refusal("Converse has no built-in web search"),
    "verbosity": Refusal("Converse has no verbosity setting"),
    "prompt_cache_key": Refusal("Bedrock caches at cache points: use cache_control"),
    "functions": Refusal("legacy functions: use tools"),
    "function_call": Refusal("legacy function_call: use tool_choice"),
}


def refuse_params(request: ChatCompletionRequest, target: Target, refuse: Refuse) -> set[str]:
    """Refuse (or, with drop_params, drop) what Converse cannot honor; the dropped names."""
    dropped = set()
    for param, refusal in REFUSED_PARAMS.items():
        value = getattr(request, param)
        if value is not None and refusal.applies(value, target):
            refuse(param, refusal.reason)
            dropped.add(param)
    return dropped


def build_request(
    request: ChatCompletionRequest,
    conversation: Conversation,
    target: Target,
    refuse: Refuse,
    dropped: set[str],
    extras: dict[str, Any],
) -> ConverseRequest:
    """The native request; `dropped` are the parameters `refuse_params` let drop_params drop,
    `extras` the model-specific request fields (`native_fields`)."""

    def given(param: str) -> Any:
        return None if param in dropped else getattr(request, param)

    thinking = _thinking(given("thinking"), given("reasoning_effort"))
    additional = {**extras, "thinking": thinking} if thinking else extras
    return ConverseRequest(
        messages=conversation.messages,
        system=conversation.system or None,
        inference_config=_inference(request, given, thinking, target),
        tool_config=_tool_config(request, conversation.has_tool_blocks, refuse),
        additional_model_request_fields=additional or None,
        output_config=_output_config(given("response_format")),
        request_metadata=_request_metadata(request.metadata),
        service_tier=_service_tier(given("service_tier")),
    )


def native_fields(body: dict[str, Any], target: Target, refuse: Refuse) -> dict[str, Any]:
    """`additionalModelRequestFields` from the NATIVE_FIELDS of the request body."""
    fields: dict[str, Any] = {}
    passthrough = body.get("additionalModelRequestFields")
    if passthrough is not None:
        if not isinstance(passthrough, dict):
            raise _invalid(
                "additionalModelRequestFields must be an object", "additionalModelRequestFields"
            )
        fields.update(passthrough)
    top_k = body.get("top_k")
    if top_k is not None:
        if target.is_claude:
            fields["top_k"] = top_k
        else:
            refuse("top_k", "only Claude takes top_k as is; use additionalModelRequestFields")
    return fields


def _invalid(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_value", provider=PROVIDER)


# --------------------------------------------------------------------------- thinking


def _thinking(thinking: dict[str, Any] | None, effort: str | None) -> dict[str, Any] | None:
    """Claude's `thinking` request field from `thinking` (as sent) or `reasoning_effort`."""
    if thinking is not None and effort is not None:
        raise _invalid("set either `thinking` or `reasoning_effort`, not both", "reasoning_effort")
    if thinking is not None:
        return _checked_thinking(thinking)
    if effort is None or effort == "none":
        return None
    if effort not in THINKING_BUDGETS:
        raise _invalid(
            f"reasoning_effort must be one of none, {', '.join(THINKING_BUDGETS)}; got {effort!r}",
            "reasoning_effort",
        )
    return {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}


def _checked_thinking(thinking: dict[str, Any]) -> dict[str, Any]:
    kind = thinking.get("type")
    if kind not in THINKING_TYPES:
        raise _invalid(f"thinking.type must be one of {', '.join(THINKING_TYPES)}", "thinking")
    budget = thinking.get("budget_tokens")
    if kind == "enabled" and not (isinstance(budget, int) and budget >= 1024):
        raise _invalid("thinking.budget_tokens must be an integer of at least 1024", "thinking")
    return dict(thinking)


def _budget(thinking: dict[str, Any] | None) -> int | None:
    if thinking is None or thinking.get("type") != "enabled":
        return None
    budget: int = thinking["budget_tokens"]
    return budget


# --------------------------------------------------------------------------- settings


def _inference(
    request: ChatCompletionRequest,
    given: Callable[[str], Any],
    thinking: dict[str, Any] | None,
    target: Target,
) -> InferenceConfiguration | None:
    config = InferenceConfiguration(
        max_tokens=_max_tokens(request, _budget(thinking), target),
        temperature=given("temperature"),
        top_p=request.top_p,
        stop_sequences=request.stop_sequences() or None,
    )
    return config if config != InferenceConfiguration() else None


def _max_tokens(request: ChatCompletionRequest, budget: int | None, target: Target) -> int | None:
    """The caller's max_tokens; with thinking, raised above the budget (Claude needs
    maxTokens > budget_tokens) so the answer keeps the room the caller asked for."""
    max_tokens = request.max_output_tokens
    if budget is None or (max_tokens is not None and max_tokens > budget):
        return max_tokens
    raised = budget + (max_tokens or ANSWER_TOKENS)
    limit = target.max_output_tokens
    raised = min(raised, limit) if limit else raised
    if raised <= budget:
        param = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        raise _invalid(
            f"the model's output limit ({limit}) leaves no room above the thinking budget "
            f"({budget}); lower reasoning_effort or thinking.budget_tokens",
            param,
        )
    return raised


def _tool_config(
    request: ChatCompletionRequest, has_tool_blocks: bool, refuse: Refuse
) -> ToolConfiguration | None:
    choice = request.tool_choice
    if choice == "none" and request.tools:
        if not has_tool_blocks:
            return None  # no tools offered is how Converse says "none"
        refuse(
            "tool_choice",
            "Converse has no `none` tool choice, and a conversation holding tool calls "
            "must keep its tools",
        )
        choice = None
    tools = _tools(request, refuse)
    if not tools:
        if has_tool_blocks:
            raise InvalidRequest(
                "Bedrock needs `tools` whenever the conversation holds tool calls or tool "
                "results: send the tools again",
                param="tools",
                provider=PROVIDER,
            )
        return None
    return ToolConfiguration(tools=tools, tool_choice=_tool_choice(choice))


def _tools(request: ChatCompletionRequest, refuse: Refuse) -> list[Tool]:
    tools: list[Tool] = []
    for k, tool in enumerate(request.tools or ()):
        function = tool.function
        if tool.type != "function" or function is None:
            refuse(f"tools[{k}]", f"Converse takes only function tools, not `{tool.type}`")
            continue
        spec = ToolSpecification(
            name=function.name,
            description=function.description or None,
            input_schema=ToolInputSchema(json=function.parameters or EMPTY_SCHEMA),
            strict=function.strict,
        )
        tools.append(Tool(tool_spec=spec))
        point = cache_point(tool.cache_control, f"tools[{k}].cache_control")
        if point is not None:
            tools.append(Tool(cache_point=point))
    return tools


def _tool_choice(choice: str | NamedToolChoice | None) -> ToolChoice | None:
    if choice is None or choice == "none":
        return None
    if choice == "auto":
        return ToolChoice(auto={})
    if choice == "required":
        return ToolChoice(any={})
    if isinstance(choice, NamedToolChoice) and choice.function is not None:
        return ToolChoice(tool=SpecificToolChoice(name=choice.function.name))
    raise _invalid("a named tool_choice needs function.name", "tool_choice")


def _output_config(response_format: Any) -> OutputConfig | None:
    if response_format is None or response_format.type != "json_schema":
        return None  # `text` is what Converse does anyway
    schema = response_format.json_schema
    definition = JsonSchemaDefinition(
        schema=orjson.dumps(schema.schema or {}).decode(),
        name=schema.name,
        description=schema.description,
    )
    return OutputConfig(
        text_format=OutputFormat(
            type="json_schema", structure=OutputFormatStructure(json_schema=definition)
        )
    )


def _request_metadata(metadata: dict[str, Any] | None) -> dict[str, str] | None:
    if not metadata:
        return None
    if not all(isinstance(value, str) for value in metadata.values()):
        raise _invalid("metadata values must be strings", "metadata")
    return dict(metadata)


def _service_tier(tier: str | None) -> ServiceTier | None:
    # `auto` leaves the choice to the service, which is what omitting the field does.
    return ServiceTier(type=tier) if tier in SERVICE_TIERS else None
