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

import os
from collections.abc import Mapping
from typing import Any

from workers import accounting
from workers.deployment import Deployment
from workers.http import shared_client
from workers.providers import create_adapter, make_deployment
from workers.providers.mock import mock_of
from workers.retry import with_retries
from workers.sdk import callbacks
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
from workers.wire import ChatCompletion, EmbeddingResponse

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
    record = callbacks.start("completion", model, _logged(messages, kwargs), stream)
    try:
        return await _acompletion(
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
    except Exception as exc:
        if record is not None:
            record.failed(exc)
        raise


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
    adapter = mock_of(adapter, call) or adapter
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
    request = {k: v for k, v in kwargs.items() if k not in _DEPLOYMENT_ARGS}
    record = callbacks.start("embedding", model, {**request, "input": input}, False)
    try:
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
