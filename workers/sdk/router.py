"""The SDK `Router`: the service's routing in-process, over a LiteLLM-style model_list.

    router = Router(model_list=[{"model_name": "gpt", "litellm_params": {...}}, ...],
                    routing_strategy="least-busy", num_retries=2, fallbacks=[{"gpt": ["claude"]}])
    response = await router.acompletion("gpt", messages)

Figures live in memory, or in Redis when given `redis_url` (shared with other Routers and
workers on the same namespace). Each event loop gets its own HTTP session and Redis pool;
`aclose()` (or `close()` for blocking use) releases the current loop's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from workers import accounting
from workers.deployment import Deployment, Secret
from workers.errors import InvalidRequest
from workers.http import HttpClient
from workers.providers import make_deployment
from workers.routing.attempts import Outcome
from workers.routing.engine import RoutingEngine
from workers.routing.memory_store import MemoryFigures
from workers.routing.plan import RoutingPlan, build_plan
from workers.routing.wildcards import Patterns
from workers.sdk import callbacks
from workers.sdk.requests import (
    chat_call,
    check_options,
    embedding_call,
    media_policy,
    request_body,
)
from workers.sdk.stream import ChatStream, SyncChatStream
from workers.sdk.sync import run_sync
from workers.settings import (
    DEPLOYMENT_OPTION_KEYS,
    REQUEST_PARAM_KEYS,
    ModelEntry,
    RouterSettings,
)
from workers.settings.switchboard import DEFAULT_NAMESPACE, MediaFetch
from workers.wire import ChatCompletion, EmbeddingResponse

if TYPE_CHECKING:
    # Imported when a Router is given a Redis (`redis_url`): `import switchboard` loads no
    # Redis client (issue #14).
    from redis.asyncio import Redis

# How often a Redis-backed Router renews the liveness of its in-flight accounting.
LIVENESS_INTERVAL_S = 1.0
LIVENESS_TTL_S = 5.0


class _LoopState:
    """What a Router holds per event loop: an HTTP session, maybe Redis, an engine."""

    def __init__(self, engine: RoutingEngine, http: HttpClient, redis: Redis | None) -> None:
        self.engine = engine
        self.http = http
        self.redis = redis
        self.renew: asyncio.Task[None] | None = None

    async def close(self) -> None:
        await self.engine.aclose()  # releases of streams abandoned unclosed
        if self.renew is not None:
            self.renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.renew
        await self.http.close()
        if self.redis is not None:
            await self.redis.aclose()


class Router:
    def __init__(
        self,
        model_list: Sequence[Mapping[str, Any]],
        *,
        routing_strategy: str = "simple-shuffle",
        num_retries: int | None = None,
        fallbacks: list[dict[str, list[str]]] | None = None,
        redis_url: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        environ: Mapping[str, str] | None = None,
        media_fetch: MediaFetch | Mapping[str, Any] | None = None,
        **router_settings: Any,
    ) -> None:
        """`router_settings` are router_settings' config keys (cooldown_time, ...);
        `media_fetch` is switchboard_settings.media_fetch (which image URLs may be fetched,
        by default public addresses only)."""
        settings = _convert(
            {
                "routing_strategy": routing_strategy,
                "num_retries": num_retries,
                "fallbacks": fallbacks,
                **router_settings,
            },
            RouterSettings,
            "router settings",
        )
        entries = [_entry(item, i) for i, item in enumerate(model_list)]
        groups: dict[str, list[Deployment]] = {}
        env = os.environ if environ is None else environ
        for entry in entries:
            group = groups.setdefault(entry.model_name, [])
            name = entry.model_info.id or f"{entry.model_name}[{len(group)}]"
            group.append(_deployment(entry, name, settings, env))
        self.plan: RoutingPlan = build_plan(groups, entries, settings)
        self._patterns = Patterns(self.plan.groups)
        self.media_policy = media_policy(media_fetch)
        self.redis_url = redis_url
        self.namespace = namespace
        self._memory = MemoryFigures(stats_ttl_s=settings.routing_strategy_args.ttl)
        self._owner = f"sdk-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def model_names(self) -> list[str]:
        return list(self.plan.groups)

    def _engine(self) -> RoutingEngine:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            http = HttpClient()
            if self.redis_url is None:
                state = _LoopState(RoutingEngine(self.plan, http, self._memory), http, None)
            else:
                from redis.asyncio import Redis

                from workers.redis_streams import Keys
                from workers.routing.redis_store import RedisFigures

                redis = Redis.from_url(self.redis_url)
                store = RedisFigures(
                    redis,
                    Keys(self.namespace),
                    self._owner,
                    owner_ttl_s=LIVENESS_TTL_S,
                    stats_ttl_s=self.plan.settings.routing_strategy_args.ttl,
                )
                state = _LoopState(RoutingEngine(self.plan, http, store), http, redis)
                state.renew = loop.create_task(
                    store.keep_alive(self.plan.groups, LIVENESS_INTERVAL_S)
                )
            self._loops[loop] = state
        return state.engine

    def _group(self, model: str) -> str:
        """The model group serving `model`: its own, else the wildcard group matching it."""
        if model in self.plan.groups:
            return model
        return self._patterns.group_for(model) or model

    async def acompletion(
        self,
        model: str,
        messages: list[Any],
        *,
        stream: bool = False,
        num_retries: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # LiteLLM's signature: seconds per request
        drop_params: bool = False,
        extra_body: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> ChatCompletion | ChatStream:
        """A chat completion routed within model group `model` (with retries and fallbacks)."""
        record = callbacks.start("completion", model, {**params, "messages": messages}, stream)
        try:
            return await self._acompletion(
                model,
                messages,
                stream=stream,
                num_retries=num_retries,
                timeout=timeout,
                drop_params=drop_params,
                extra_body=extra_body,
                record=record,
                **params,
            )
        except Exception as exc:
            if record is not None:
                record.failed(exc)
            raise

    async def _acompletion(
        self,
        model: str,
        messages: list[Any],
        *,
        stream: bool,
        num_retries: int | None,
        timeout: float | None,  # noqa: ASYNC109  # LiteLLM's signature: seconds per request
        drop_params: bool,
        extra_body: Mapping[str, Any] | None,
        record: callbacks.CallRecord | None,
        **params: Any,
    ) -> ChatCompletion | ChatStream:
        check_options(timeout, num_retries)
        body = request_body({"model": model, "messages": messages, **params}, extra_body)
        if stream:
            body["stream"] = True
        call = chat_call(body, drop_params=drop_params, media=self.media_policy, timeout_s=timeout)
        engine = self._engine()
        group = self._group(model)
        if stream:
            first, rest, outcome = await engine.stream(group, call, num_retries)
            return ChatStream(
                first,
                rest,
                include_usage=call.request.include_usage,
                deployment=outcome.deployment,
                record=record,
            )
        response, outcome = await engine.chat(group, call, num_retries)
        accounting.attach(response, outcome.deployment, **_routing_params(outcome))
        if record is not None:
            record.succeeded(response, response.hidden_params, response.usage)
        return response

    def completion(
        self, model: str, messages: list[Any], *, stream: bool = False, **kwargs: Any
    ) -> ChatCompletion | SyncChatStream:
        result = run_sync(self.acompletion(model, messages, stream=stream, **kwargs))
        if isinstance(result, ChatStream):
            return SyncChatStream(result)
        return result

    async def aembedding(
        self,
        model: str,
        input: str | list[Any],
        *,
        num_retries: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # LiteLLM's signature: seconds per request
        drop_params: bool = False,
        extra_body: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> EmbeddingResponse:
        record = callbacks.start("embedding", model, {**params, "input": input}, False)
        try:
            check_options(timeout, num_retries)
            body = request_body({"model": model, "input": input, **params}, extra_body)
            call = embedding_call(body, drop_params=drop_params, timeout_s=timeout)
            response, outcome = await self._engine().embed(self._group(model), call, num_retries)
        except Exception as exc:
            if record is not None:
                record.failed(exc)
            raise
        accounting.attach(response, outcome.deployment, **_routing_params(outcome))
        if record is not None:
            record.succeeded(response, response.hidden_params, response.usage)
        return response

    def embedding(self, model: str, input: str | list[Any], **kwargs: Any) -> EmbeddingResponse:
        return run_sync(self.aembedding(model, input, **kwargs))

    async def aclose(self) -> None:
        """Close this event loop's HTTP session and Redis pool."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.close()

    def close(self) -> None:
        """Close what the blocking methods opened (they run on the SDK's own loop)."""
        run_sync(self.aclose())


def _routing_params(outcome: Outcome) -> dict[str, Any]:
    return {"attempts": outcome.attempts, "fallbacks": outcome.fallbacks}


def _convert(value: Any, kind: type[Any], what: str) -> Any:
    try:
        return msgspec.convert(value, kind, dec_hook=_secret)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid {what}: {exc}") from exc


def _secret(kind: type, value: Any) -> Any:
    if kind is Secret and isinstance(value, str):
        return Secret(value)
    raise NotImplementedError(kind)


def _entry(item: Mapping[str, Any], index: int) -> ModelEntry:
    """A model_list item; request parameters in litellm_params become deployment defaults."""
    raw = dict(item)
    params = dict(raw.get("litellm_params") or {})
    defaults = {k: params.pop(k) for k in list(params) if k in REQUEST_PARAM_KEYS}
    defaults = {**(defaults.pop("extra_body", None) or {}), **defaults}
    raw["litellm_params"] = {**params, "default_params": defaults}
    return _convert(raw, ModelEntry, f"model_list[{index}]")  # type: ignore[no-any-return]  # _convert returns `kind`


def _deployment(
    entry: ModelEntry, name: str, settings: RouterSettings, environ: Mapping[str, str]
) -> Deployment:
    params, info = entry.litellm_params, entry.model_info
    model = params.model
    if params.custom_llm_provider and not model.startswith(f"{params.custom_llm_provider}/"):
        model = f"{params.custom_llm_provider}/{model}"
    given: dict[str, Any] = {
        "api_base": params.api_base or params.base_url,
        "api_key": params.api_key,
        "api_version": params.api_version,
        "organization": params.organization,
        "timeout_s": _first(params.timeout, settings.timeout),
        "stream_timeout_s": _first(
            params.stream_timeout, settings.stream_timeout, settings.timeout
        ),
        "drop_params": bool(params.drop_params),
        "extra_headers": params.extra_headers,
        "default_params": params.default_params,
        "options": {k: getattr(params, k) for k in DEPLOYMENT_OPTION_KEYS if getattr(params, k)},
        "name": name,
        "base_model": info.base_model,
        "input_cost_per_token": _first(params.input_cost_per_token, info.input_cost_per_token),
        "output_cost_per_token": _first(params.output_cost_per_token, info.output_cost_per_token),
    }
    return make_deployment(model, environ, **given)


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
