"""The OpenAI parameters Gemini cannot honor, kept as data (docs/providers/gemini.md is
written from these tables), and the admission step that refuses or drops them.

Refusing is a 400 naming the parameter; with drop_params it is logged and dropped instead
(`workers.params`). Never silently.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from workers.providers.base import UNKNOWN_FIELD, Refuse
from workers.wire import ChatCompletionRequest, unknown_fields

MAX_CANDIDATES = 8
MAX_STOP_SEQUENCES = 5
_IMPLICIT_CACHE = "Gemini caches prompts implicitly (use `cached_content` for explicit caches)"

# param -> why Gemini cannot honor it, whatever its value.
REFUSED: dict[str, str] = {
    "audio": "Gemini chat models answer in text through generateContent",
    "function_call": "legacy; send `tool_choice`",
    "functions": "legacy; send `tools`",
    "logit_bias": "Gemini has no token biasing",
    "prediction": "Gemini has no predicted outputs",
    "prompt_cache_key": _IMPLICIT_CACHE,
    "safety_identifier": "the Gemini API has no end-user field",
    "user": "the Gemini API has no end-user field",
    "verbosity": "Gemini has no verbosity control",
    "web_search_options": "Google Search grounding is a Gemini tool the adapter does not send",
}
# param -> the values Gemini cannot honor, and why.
CONDITIONAL: dict[str, str] = {
    "n": f"more than {MAX_CANDIDATES}: Gemini returns at most {MAX_CANDIDATES} candidates",
    "stop": f"more than {MAX_STOP_SEQUENCES} sequences: Gemini takes at most "
    f"{MAX_STOP_SEQUENCES} stopSequences",
    "parallel_tool_calls": "false: Gemini cannot be limited to one function call per turn",
    "store": "true: the Gemini API stores no completions",
    "modalities": 'anything but ["text"]: Gemini chat models answer in text here',
    "reasoning_effort": "`none` on Gemini 3 and later, which always think",
    "service_tier": "other than auto, default, flex or priority (e.g. `scale`): Gemini's tiers "
    "are standard, flex and priority",
}
# Gemini-native fields accepted beside the OpenAI schema -> where they go.
NATIVE_FIELDS: dict[str, str] = {
    "top_k": "generationConfig.topK",
    "safety_settings": "safetySettings",
    "cached_content": "cachedContent",
}
# OpenAI service_tier -> Gemini serviceTier; `auto` leaves the choice to the project (None).
SERVICE_TIERS: dict[str, str | None] = {
    "auto": None,
    "default": "standard",
    "flex": "flex",
    "priority": "priority",
}
_GENERATION = re.compile(r"^gemini-(\d+)")


def thinks_always(model: str) -> bool:
    """Gemini 3 and later: thinking is set by level and cannot be turned off."""
    match = _GENERATION.match(model)
    return match is not None and int(match.group(1)) >= 3


def admit(
    request: ChatCompletionRequest, body: dict[str, Any], refuse: Refuse, *, model: str
) -> ChatCompletionRequest:
    """The request without the parameters Gemini cannot honor (or a 400 naming the first)."""
    cleared: dict[str, Any] = {}
    for param, reason in REFUSED.items():
        if getattr(request, param) is not None:
            refuse(param, reason)
            cleared[param] = None
    for param in _conditional(request, model):
        refuse(param, CONDITIONAL[param])
        cleared[param] = None
    for name in unknown_fields(body):
        if name not in NATIVE_FIELDS:
            refuse(name, UNKNOWN_FIELD)
    return msgspec.structs.replace(request, **cleared) if cleared else request


def _conditional(request: ChatCompletionRequest, model: str) -> list[str]:
    found = []
    if request.n is not None and request.n > MAX_CANDIDATES:
        found.append("n")
    if len(request.stop_sequences()) > MAX_STOP_SEQUENCES:
        found.append("stop")
    if request.parallel_tool_calls is False:
        found.append("parallel_tool_calls")
    if request.store:
        found.append("store")
    if request.modalities is not None and request.modalities != ["text"]:
        found.append("modalities")
    if request.reasoning_effort == "none" and thinks_always(model):
        found.append("reasoning_effort")
    if request.service_tier is not None and request.service_tier not in SERVICE_TIERS:
        found.append("service_tier")
    return found
