"""OpenAI sampling, output, thinking and tool parameters -> Gemini `generationConfig`,
`tools` and `toolConfig`."""

from __future__ import annotations

from typing import Any

from workers.errors import InvalidRequest
from workers.providers.base import Refuse
from workers.providers.gemini.errors import PROVIDER
from workers.providers.gemini.refusals import thinks_always
from workers.wire import ChatCompletionRequest

JSONObject = dict[str, Any]

# reasoning_effort -> thinkingBudget on Gemini 2.x. Chosen inside every 2.5 model's range
# (Pro 128..32768, Flash 0..24576, Flash-Lite 512..24576) where possible; `none` turns
# thinking off (Pro refuses that itself), `xhigh` is Pro's ceiling.
THINKING_BUDGETS: dict[str, int] = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
}
# reasoning_effort -> thinkingLevel on Gemini 3 and later (the enum names the SDK sends).
THINKING_LEVELS: dict[str, str] = {
    "minimal": "MINIMAL",
    "low": "LOW",
    "medium": "MEDIUM",
    "high": "HIGH",
    "xhigh": "XHIGH",
}
# OpenAI tool_choice words -> functionCallingConfig.mode.
TOOL_MODES: dict[str, str] = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


def generation_config(
    request: ChatCompletionRequest, native: dict[str, Any], *, model: str
) -> JSONObject:
    config: JSONObject = {}
    _put(config, "temperature", request.temperature)
    _put(config, "topP", request.top_p)
    _put(config, "topK", native.get("top_k"))
    _put(config, "maxOutputTokens", request.max_output_tokens)
    if request.stop is not None:
        config["stopSequences"] = request.stop_sequences()
    _put(config, "candidateCount", request.n)
    _put(config, "seed", request.seed)
    _put(config, "presencePenalty", request.presence_penalty)
    _put(config, "frequencyPenalty", request.frequency_penalty)
    if request.logprobs:
        config["responseLogprobs"] = True
        _put(config, "logprobs", request.top_logprobs)
    config.update(_response_format(request))
    _put(config, "thinkingConfig", thinking_config(request, model=model))
    return config


def _put(config: JSONObject, key: str, value: Any) -> None:
    if value is not None:
        config[key] = value


def _response_format(request: ChatCompletionRequest) -> JSONObject:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return {}
    if fmt.type == "json_object" or fmt.json_schema is None or fmt.json_schema.schema is None:
        return {"responseMimeType": "application/json"}
    # responseJsonSchema takes full JSON Schema; responseSchema only an OpenAPI subset.
    return {"responseMimeType": "application/json", "responseJsonSchema": fmt.json_schema.schema}


def thinking_config(request: ChatCompletionRequest, *, model: str) -> JSONObject | None:
    """thinkingConfig from `thinking` (Anthropic-style budget) or `reasoning_effort`.

    Thinking that is on asks for includeThoughts, so thought summaries come back as
    `reasoning_content`."""
    if request.thinking is not None and request.reasoning_effort is not None:
        raise InvalidRequest(
            "set either `reasoning_effort` or `thinking`, not both",
            param="thinking",
            provider=PROVIDER,
            model=model,
        )
    if request.thinking is not None:
        return _from_thinking(request.thinking, model)
    effort = request.reasoning_effort
    if effort is None:
        return None
    if thinks_always(model) and effort in THINKING_LEVELS:
        return {"thinkingLevel": THINKING_LEVELS[effort], "includeThoughts": True}
    budget = THINKING_BUDGETS.get(effort)
    if budget is None:
        raise InvalidRequest(
            f"`reasoning_effort` must be one of {', '.join(THINKING_BUDGETS)}; got {effort!r}",
            param="reasoning_effort",
            provider=PROVIDER,
            model=model,
        )
    return _budget(budget)


def _from_thinking(thinking: dict[str, Any], model: str) -> JSONObject:
    kind = thinking.get("type")
    budget = thinking.get("budget_tokens")
    if kind == "enabled" and isinstance(budget, int) and not isinstance(budget, bool):
        return _budget(budget)
    if kind == "disabled":
        return _budget(0)
    if kind == "adaptive":
        return _budget(-1)  # Gemini's dynamic thinking: the model picks the budget
    raise InvalidRequest(
        '`thinking` must be {"type": "enabled", "budget_tokens": N}, {"type": "adaptive"} '
        'or {"type": "disabled"}',
        param="thinking",
        provider=PROVIDER,
        model=model,
    )


def _budget(tokens: int) -> JSONObject:
    if tokens == 0:
        return {"thinkingBudget": 0}
    return {"thinkingBudget": tokens, "includeThoughts": True}


def tools_of(request: ChatCompletionRequest, refuse: Refuse) -> list[JSONObject] | None:
    declarations = []
    for i, tool in enumerate(request.tools or ()):
        if tool.cache_control is not None:
            refuse(f"tools[{i}].cache_control", "Gemini caches prompts implicitly")
        function = tool.function
        if tool.type != "function" or function is None:
            refuse(f"tools[{i}].type", f"Gemini declares functions only, not `{tool.type}` tools")
            continue
        declaration: JSONObject = {"name": function.name}
        _put(declaration, "description", function.description)
        # parametersJsonSchema takes full JSON Schema; `parameters` only an OpenAPI subset.
        _put(declaration, "parametersJsonSchema", function.parameters)
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else None


def tool_config(request: ChatCompletionRequest) -> JSONObject | None:
    """functionCallingConfig for tool_choice. A `strict` function asks for VALIDATED mode,
    in which Gemini checks calls against their declarations."""
    choice = request.tool_choice
    strict = any(t.function is not None and t.function.strict for t in request.tools or ())
    if isinstance(choice, str):
        mode = TOOL_MODES[choice]
        if mode == "AUTO" and strict:
            mode = "VALIDATED"
        return {"functionCallingConfig": {"mode": mode}}
    if choice is None:
        return {"functionCallingConfig": {"mode": "VALIDATED"}} if strict else None
    if choice.function is None:
        raise InvalidRequest(
            "a named `tool_choice` needs `function.name`", param="tool_choice", provider=PROVIDER
        )
    return {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
    }
