"""The in-process SDK: `completion`, `acompletion`, `embedding`, `aembedding`.

The same adapters the service runs, called directly: no Redis, no queue. Model strings are
`provider/model` as in LiteLLM; credentials come from the arguments or the provider's usual
environment variables. Unknown keyword arguments and `extra_body` reach OpenAI-family
providers as they are; native adapters refuse what they cannot translate (unless
`drop_params=True`).

Media that Gemini and Bedrock need as bytes (an http(s) `image_url`) is fetched under the
service's default policy here too: public addresses only, 20 MB and 10 s a URL. The SDK runs
in the caller's own process, where a URL in a message may still come from someone else (a
chat user, a document), so private, loopback and metadata addresses stay refused unless
`media_fetch={"allow_hosts": [...], "allow_networks": [...]}` lifts them for the call (the
keys of `switchboard_settings.media_fetch`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import msgspec

from workers import accounting
from workers.deployment import Deployment
from workers.hooks.cache import CacheControl, CachedAnswer
from workers.hooks.guardrails import Guardrails, caller_view
from workers.http import shared_client
from workers.providers import create_adapter, make_deployment
from workers.retry import with_retries
from workers.sdk import cache as sdk_cache
from workers.sdk import callbacks
from workers.sdk.cache import Cache
from workers.sdk.requests import (
    chat_call,
    check_options,
    embedding_call,
    media_policy,
    request_body,
)
from workers.sdk.stream import ChatStream, SyncChatStream, open_stream
from workers.sdk.sync import run_sync
from workers.settings.models import DEPLOYMENT_OPTION_KEYS
from workers.settings.switchboard import MediaFetch
from workers.wire import (
    ChatCompletion,
    EmbeddingResponse,
    decode_chat_completion,
    decode_embedding_response,
    encode,
)

T = TypeVar("T", ChatCompletion, EmbeddingResponse)

# Keyword arguments that configure the call rather than the request body.
_DEPLOYMENT_ARGS = (
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


def _split_kwargs(
    kwargs: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(deployment arguments, provider options, request parameters)."""
    given = {name: kwargs.pop(name) for name in _DEPLOYMENT_ARGS if name in kwargs}
    if "base_url" in given:
        given.setdefault("api_base", given.pop("base_url"))
    options = {name: kwargs.pop(name) for name in DEPLOYMENT_OPTION_KEYS if name in kwargs}
    return given, options, kwargs


def _deployment(
    model: str,
    given: dict[str, Any],
    options: dict[str, Any],
    *,
    timeout: float | None,
    drop_params: bool,
    environ: Mapping[str, str] | None,
) -> Deployment:
    return make_deployment(
        model,
        os.environ if environ is None else environ,
        timeout_s=timeout,
        drop_params=drop_params,
        options=options,
        name=model,
        **{k: v for k, v in given.items() if v is not None},
    )


async def acompletion(
    model: str,
    messages: list[Any],
    *,
    stream: bool = False,
    timeout: float | None = None,  # noqa: ASYNC109  # LiteLLM's signature: a per-call HTTP timeout
    num_retries: int = 0,
    drop_params: bool = False,
    extra_body: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    media_fetch: MediaFetch | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> ChatCompletion | ChatStream:
    """One chat completion; with `stream=True` an async iterator of chunks (ChatStream).
    `media_fetch` widens what image URLs may be fetched (see the module docstring)."""
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
        call = _acompletion(
            model,
            messages,
            stream=stream,
            timeout=timeout,
            num_retries=num_retries,
            drop_params=drop_params,
            extra_body=extra_body,
            environ=environ,
            media_fetch=media_fetch,
            record=record,
            **kwargs,
        )
        response = await (call if checked is None else _guarded(guards, checked, call))
    except Exception as exc:
        if record is not None:
            record.failed(exc)
        raise
    if planned is not None and isinstance(response, ChatCompletion):
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
    request = {k: v for k, v in kwargs.items() if k not in _DEPLOYMENT_ARGS}
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
    request = {k: v for k, v in kwargs.items() if k not in _DEPLOYMENT_ARGS}
    request["messages"] = messages
    return request


async def _acompletion(
    model: str,
    messages: list[Any],
    *,
    stream: bool,
    timeout: float | None,  # noqa: ASYNC109  # LiteLLM's signature: a per-call HTTP timeout
    num_retries: int,
    drop_params: bool,
    extra_body: Mapping[str, Any] | None,
    environ: Mapping[str, str] | None,
    media_fetch: MediaFetch | Mapping[str, Any] | None,
    record: callbacks.CallRecord | None,
    **kwargs: Any,
) -> ChatCompletion | ChatStream:
    check_options(timeout, num_retries)
    given, options, params = _split_kwargs(kwargs)
    deployment = _deployment(
        model, given, options, timeout=timeout, drop_params=drop_params, environ=environ
    )
    body = request_body({"model": model, "messages": messages, **params}, extra_body)
    if stream:
        body["stream"] = True
    call = chat_call(body, drop_params=drop_params, media=media_policy(media_fetch))
    adapter = create_adapter(deployment, shared_client())
    if stream:
        first, rest = await open_stream(adapter, call, num_retries)
        return ChatStream(
            first,
            rest,
            include_usage=call.request.include_usage,
            deployment=deployment,
            record=record,
        )
    response = await with_retries(lambda: adapter.chat(call), num_retries)
    accounting.attach(response, deployment)
    if record is not None:
        record.succeeded(response, response.hidden_params, response.usage)
    return response


def completion(
    model: str, messages: list[Any], *, stream: bool = False, **kwargs: Any
) -> ChatCompletion | SyncChatStream:
    """The blocking form of `acompletion`; safe to call inside a running event loop."""
    result = run_sync(acompletion(model, messages, stream=stream, **kwargs))
    if isinstance(result, ChatStream):
        return SyncChatStream(result)
    return result


async def aembedding(
    model: str,
    input: str | list[Any],
    *,
    timeout: float | None = None,  # noqa: ASYNC109  # LiteLLM's signature: a per-call HTTP timeout
    num_retries: int = 0,
    drop_params: bool = False,
    extra_body: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> EmbeddingResponse:
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
        response = await _aembedding(
            model,
            input,
            timeout=timeout,
            num_retries=num_retries,
            drop_params=drop_params,
            extra_body=extra_body,
            environ=environ,
            **kwargs,
        )
    except Exception as exc:
        if record is not None:
            record.failed(exc)
        raise
    if record is not None:
        record.succeeded(response, response.hidden_params, response.usage)
    if planned is not None:
        await _store(planned, response)
    return response


async def _aembedding(
    model: str,
    input: str | list[Any],
    *,
    timeout: float | None,  # noqa: ASYNC109  # LiteLLM's signature: a per-call HTTP timeout
    num_retries: int,
    drop_params: bool,
    extra_body: Mapping[str, Any] | None,
    environ: Mapping[str, str] | None,
    **kwargs: Any,
) -> EmbeddingResponse:
    check_options(timeout, num_retries)
    given, options, params = _split_kwargs(kwargs)
    deployment = _deployment(
        model, given, options, timeout=timeout, drop_params=drop_params, environ=environ
    )
    body = request_body({"model": model, "input": input, **params}, extra_body)
    call = embedding_call(body, drop_params=drop_params)
    adapter = create_adapter(deployment, shared_client())
    response = await with_retries(lambda: adapter.embed(call), num_retries)
    accounting.attach(response, deployment)
    return response


def embedding(model: str, input: str | list[Any], **kwargs: Any) -> EmbeddingResponse:
    return run_sync(aembedding(model, input, **kwargs))
