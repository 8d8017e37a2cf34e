"""What runs around an SDK call (issue #19), for `completion`/`embedding` and the `Router`
alike: the guardrails in `switchboard.callbacks`, the cache in `switchboard.cache`, and the
record the callbacks get. The call itself is a function given in; nothing here knows how
a provider is reached.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import msgspec

from workers.hooks.cache import CacheControl, CachedAnswer
from workers.hooks.guardrails import Guardrails, caller_view
from workers.sdk import cache as sdk_cache
from workers.sdk import callbacks
from workers.sdk.cache import Cache
from workers.sdk.stream import ChatStream
from workers.wire import (
    ChatCompletion,
    EmbeddingResponse,
    decode_chat_completion,
    decode_embedding_response,
    encode,
)

T = TypeVar("T", ChatCompletion, EmbeddingResponse)

# Keyword arguments that configure the call rather than the request body: never logged.
DEPLOYMENT_ARGS = (
    "api_base",
    "base_url",
    "api_key",
    "api_version",
    "organization",
    "extra_headers",
    "input_cost_per_token",
    "output_cost_per_token",
    "base_model",
)

ChatCall = Callable[
    [list[Any], "callbacks.CallRecord | None"], Coroutine[Any, Any, ChatCompletion | ChatStream]
]


async def around_chat(
    model: str, messages: list[Any], kwargs: dict[str, Any], stream: bool, call: ChatCall
) -> ChatCompletion | ChatStream:
    """`call(messages, record)` with the guardrails, the cache and the callbacks around it.
    Pops the arguments that are theirs (`caching`, `cache`, `guardrails`) from `kwargs`."""
    caching, cache_options = kwargs.pop("caching", None), kwargs.pop("cache", None)
    guards, named = callbacks.guardrails(), kwargs.pop("guardrails", None)
    checked: dict[str, Any] | None = None
    if guards is not None:  # on the path by design: a block must stop the call
        checked = {**_logged(messages, kwargs), "guardrails": named or []}
        guards.check_names(checked)
        if await guards.pre_call(checked, SDK_CALLER, "completion"):
            messages = checked["messages"]
    record = callbacks.start("completion", model, _logged(messages, kwargs), stream)
    planned = (
        None if stream else _cache_plan("chat", model, messages, kwargs, cache_options, caching)
    )
    try:
        if planned is not None:
            hit = await _cached(planned, decode_chat_completion)
            if hit is not None:
                if record is not None:
                    record.succeeded(hit, hit.hidden_params, hit.usage, cache_hit=True)
                return hit
        running = call(messages, record)
        response = await (running if checked is None else _guarded(guards, checked, running))
    except Exception as exc:
        if record is not None:
            record.failed(exc)
        raise
    if planned is not None and isinstance(response, ChatCompletion):
        await _store(planned, response)
    return response


async def around_embedding(
    model: str,
    input: Any,
    kwargs: dict[str, Any],
    call: Callable[[], Coroutine[Any, Any, EmbeddingResponse]],
) -> EmbeddingResponse:
    """`call()` with the cache and the callbacks around it."""
    caching, cache_options = kwargs.pop("caching", None), kwargs.pop("cache", None)
    record = callbacks.start("embedding", model, _logged_input(input, kwargs), False)
    planned = _cache_plan("embedding", model, input, kwargs, cache_options, caching)
    try:
        if planned is not None:
            hit = await _cached(planned, decode_embedding_response)
            if hit is not None:
                if record is not None:
                    record.succeeded(hit, hit.hidden_params, hit.usage, cache_hit=True)
                return hit
        response = await call()
    except Exception as exc:
        if record is not None:
            record.failed(exc)
        raise
    if record is not None:
        record.succeeded(response, response.hidden_params, response.usage)
    if planned is not None:
        await _store(planned, response)
    return response


Planned = tuple[Cache, str, CacheControl]
# What a guardrail's `user_api_key_dict` holds in the SDK: no key, the process itself.
SDK_CALLER = caller_view("sdk")


async def _guarded(
    guards: Guardrails | None,
    checked: dict[str, Any],
    call: Coroutine[Any, Any, ChatCompletion | ChatStream],
) -> ChatCompletion | ChatStream:
    """The call beside its during_call guardrails (a block cancels it), then the post_call
    ones on a whole answer (a block raises; masking rewrites the answer)."""
    assert guards is not None
    if guards.selected(checked, "during_call"):
        try:
            async with asyncio.TaskGroup() as group:
                called = group.create_task(call)
                group.create_task(guards.during_call(checked, SDK_CALLER, "completion"))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the block (or the call's own error)
        response = called.result()
    else:
        response = await call
    if isinstance(response, ChatCompletion) and guards.selected(checked, "post_call"):
        answer = msgspec.to_builtins(response)
        if await guards.post_call(checked, SDK_CALLER, answer):
            hidden = response.hidden_params
            response = msgspec.convert(answer, ChatCompletion)
            response.hidden_params = hidden
    return response


def _cache_plan(
    kind: str,
    model: str,
    given: Any,
    kwargs: Mapping[str, Any],
    cache_options: Any,
    caching: bool | None,
) -> Planned | None:
    """The cache's part in a call: its key and the request's controls (None: no part)."""
    cache = sdk_cache.current
    if cache is None:
        return None
    request = _logged(given, kwargs) if kind == "chat" else _logged_input(given, kwargs)
    if cache_options is not None:
        request["cache"] = cache_options
    planned = cache.plan(kind, model, request, caching)
    return None if planned is None else (cache, *planned)


def _logged_input(given: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    request = {k: v for k, v in kwargs.items() if k not in DEPLOYMENT_ARGS}
    request["input"] = given
    return request


async def _cached(planned: Planned, decode: Callable[[bytes], T]) -> T | None:
    cache, key, control = planned
    if control.no_cache:
        return None
    answer = await cache.get(key)
    if answer is None or (control.max_age_s is not None and answer.age_s > control.max_age_s):
        return None
    response = decode(answer.body)
    response.hidden_params = {
        "cache_hit": True,
        "cost_usd": 0.0,
        "cost_known": True,
        "original_cost_usd": answer.cost_usd,
    }
    return response


async def _store(planned: Planned, response: ChatCompletion | EmbeddingResponse) -> None:
    cache, key, control = planned
    if control.no_store:
        return
    cost = response.hidden_params.get("cost_usd")
    answer = CachedAnswer(created_s=time.time(), body=encode(response), cost_usd=cost)
    await cache.set(key, answer, control.ttl_s or cache.ttl)


def _logged(messages: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What callbacks see of a call's arguments: never a credential or a deployment knob."""
    request = {k: v for k, v in kwargs.items() if k not in DEPLOYMENT_ARGS}
    request["messages"] = messages
    return request
