"""One OpenAI chat request -> one GenerateContentRequest body, steps named:
apply deployment defaults -> admit (refuse what Gemini cannot honor) -> contents -> tools ->
generationConfig -> Gemini-native extras."""

from __future__ import annotations

from typing import Any

import msgspec

from workers.errors import InternalError, InvalidRequest
from workers.http import HttpClient
from workers.providers.base import Refuse
from workers.providers.gemini.contents import ContentsBuilder
from workers.providers.gemini.errors import PROVIDER
from workers.providers.gemini.generation import generation_config, tool_config, tools_of
from workers.providers.gemini.refusals import NATIVE_FIELDS, SERVICE_TIERS, admit
from workers.providers.media import MediaFetches
from workers.wire import ChatCompletionRequest, chat_request_from_dict

JSONObject = dict[str, Any]


_REQUEST_FIELDS = frozenset(ChatCompletionRequest.__struct_fields__) - {"model", "messages"}


def typed_defaults(params: dict[str, Any]) -> dict[str, Any]:
    """A deployment's default_params with OpenAI fields as wire types (done once per adapter);
    Gemini-native fields stay as given."""
    known = {name: value for name, value in params.items() if name in _REQUEST_FIELDS}
    try:
        converted = chat_request_from_dict({"model": "", "messages": [], **known})
    except msgspec.ValidationError as exc:
        raise InternalError(
            f"gemini deployment default_params are invalid: {exc}", provider=PROVIDER
        ) from exc
    return {**params, **{name: getattr(converted, name) for name in known}}


def with_defaults(
    request: ChatCompletionRequest, body: dict[str, Any], defaults: dict[str, Any]
) -> tuple[ChatCompletionRequest, dict[str, Any]]:
    """Typed defaults where the request is silent, applied to the request and its body."""
    if not defaults:
        return request, body
    unset = {
        name: value
        for name, value in defaults.items()
        if name in _REQUEST_FIELDS and getattr(request, name) is None
    }
    request = msgspec.structs.replace(request, **unset) if unset else request
    return request, {**defaults, **body}


async def build_body(
    request: ChatCompletionRequest,
    body: dict[str, Any],
    http: HttpClient,
    media: MediaFetches,
    *,
    refuse: Refuse,
    model: str,
    timeout_s: float | None,
) -> JSONObject:
    request = admit(request, body, refuse, model=model)
    builder = ContentsBuilder(http, media, refuse, model=model, timeout_s=timeout_s)
    system, contents = await builder.build(request.messages)
    if not contents:
        raise InvalidRequest(
            "Gemini needs at least one user or assistant message besides system messages",
            param="messages",
            provider=PROVIDER,
            model=model,
        )
    native = _native_fields(body, model)
    payload: JSONObject = {}
    if system is not None:
        payload["systemInstruction"] = system
    payload["contents"] = contents
    tools = tools_of(request, refuse)
    if tools is not None:
        payload["tools"] = tools
        toolconfig = tool_config(request)
        if toolconfig is not None:
            payload["toolConfig"] = toolconfig
    config = generation_config(request, native, model=model)
    if config:
        payload["generationConfig"] = config
    if "safety_settings" in native:
        payload["safetySettings"] = native["safety_settings"]
    if "cached_content" in native:
        payload["cachedContent"] = native["cached_content"]
    tier = SERVICE_TIERS.get(request.service_tier) if request.service_tier else None
    if tier is not None:
        payload["serviceTier"] = tier
    return payload


# field -> (type it must have, what it must be)
_NATIVE_TYPES: dict[str, tuple[type, str]] = {
    "top_k": (int, "an integer"),
    "safety_settings": (list, "a list of {category, threshold} objects"),
    "cached_content": (str, 'a cachedContents resource name ("cachedContents/...")'),
}


def _native_fields(body: dict[str, Any], model: str) -> dict[str, Any]:
    native = {name: body[name] for name in NATIVE_FIELDS if body.get(name) is not None}
    for name, value in native.items():
        kind, description = _NATIVE_TYPES[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InvalidRequest(
                f"`{name}` must be {description}", param=name, provider=PROVIDER, model=model
            )
    return native
