"""The contract every provider adapter fulfils.

An adapter is built once per deployment (precomputing its URL and headers) and translates at
the edge, once each way: OpenAI request -> native request, native response or stream ->
OpenAI objects. Streams are yielded as *batches* of chunks (what one network read completed)
so the worker can write a burst of chunks to Redis in one entry.

Stream contract, relied on by the SDK and the worker:
- chunks carry OpenAI deltas; tool-call deltas are indexed by position among tool calls;
- when the provider reports usage, the last chunk is a usage chunk with `choices == []`
  (whether the client asked for it is decided by the consumer, which strips it if not);
- a failure before or during the stream raises a `SwitchboardError`.

A stream cut off by its worker's death continues only where the provider can continue a
partial answer (issue #15): `continuation(call, prefix)` gives the call that does, or why
the provider cannot; `with_prefix` appends the text already delivered as the final assistant
message, the form every provider that can continue takes.

Parameters a provider cannot honor are refused here, once for every adapter: `refuser(call)`
gives the callback an adapter's translation calls with (param, reason); it raises a 400 naming
the parameter and provider, or, with drop_params, logs the drop and lets the caller drop it.
Which parameters (and which of their values) a provider refuses stays in its own tables.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal

import msgspec
import orjson

from workers.deployment import Deployment, ProviderDefaults
from workers.errors import InvalidRequest
from workers.http import HttpClient
from workers.params import unsupported
from workers.providers.media import MediaFetches
from workers.tokens import estimate_tokens
from workers.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    Message,
)

# (param, reason) -> None: a 400 naming the parameter, or (drop_params) logged; the caller drops.
Refuse = Callable[[str, str], None]
# Why a call may go only to the deployment that served its conversation (issue #18):
# "held", a native Responses follow-up (the provider holds its parent, no other account
# has it); "reasoning", a translated follow-up whose parent's output holds encrypted
# reasoning (signed thinking, which another provider or account may refuse).
Pin = Literal["", "held", "reasoning"]
PIN_HELD: Pin = "held"
PIN_REASONING: Pin = "reasoning"
# Why a top-level field outside the OpenAI schema is refused by a native adapter.
UNKNOWN_FIELD = "not an OpenAI parameter it can translate"


class NativeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request in a provider's own API, as its client sent it (issue #18: /v1/messages to
    an Anthropic deployment). The adapter of that provider sends `body` with only the model
    replaced, plus `headers` (anthropic-beta); any other adapter uses the translation."""

    provider: str
    body: dict[str, Any]
    headers: dict[str, str] = {}


class NativeBatch(list[ChatCompletionChunk]):
    """A stream batch from a native pass-through: the translated chunks (for usage, routing
    and accounting) and the provider's own SSE events behind them (`event: X\ndata: Y`),
    which a native client is sent unchanged."""

    __slots__ = ("native",)

    def __init__(self, chunks: Iterable[ChatCompletionChunk], native: list[bytes]) -> None:
        super().__init__(chunks)
        self.native = native


class ChatCall(msgspec.Struct, kw_only=True):
    """One chat request as an adapter receives it."""

    request: ChatCompletionRequest
    # The request as a JSON object, including fields the schema does not know; gateway-only
    # fields (timeout, num_retries, ...) are already removed.
    body: dict[str, Any]
    request_id: str = ""
    timeout_s: float | None = None
    drop_params: bool = False
    # URLs the request names that an adapter downloads (image_url for Gemini and Bedrock),
    # under the operator's media policy. Every attempt of the request (retries, fallbacks)
    # gets this same object, so each URL is fetched once per request.
    media: MediaFetches = msgspec.field(default_factory=MediaFetches)
    # Routing tags (`tags`, `metadata.tags`; workers/routing/tags.py); never sent upstream.
    tags: tuple[str, ...] = ()
    # A /v1/completions request (workers/text_completions.py): a provider with a native
    # completions API may serve it there.
    is_text_completion: bool = False
    # The client's own request for a provider that takes it natively (NativeRequest).
    native: NativeRequest | None = None
    # Keeps one conversation on one deployment of a group (its prompt cache, its encrypted
    # reasoning): routing picks by rendezvous hash of this among the eligible deployments
    # (workers/routing/engine.py). None: the group's routing strategy decides.
    affinity: str | None = None
    # The deployment that served this conversation so far (a Responses follow-up's parent):
    # chosen when eligible, before the affinity key (its encrypted reasoning is its own).
    served_by: str | None = None
    # Why only `served_by` may serve the call (no other deployment, retry target or
    # fallback), if only it may: see `Pin`. "": it is a preference.
    pinned: Pin = ""
    # LiteLLM's request `mock_response`: answered with this text, no provider call
    # (workers/providers/mock.py).
    mock_response: str | None = None


class Continued(msgspec.Struct, frozen=True, kw_only=True):
    """A call that continues a partial answer, and the text its answer starts with that the
    client already has (a provider that refuses a prefix ending in whitespace is sent the
    prefix without it, and answers with it first)."""

    call: ChatCall
    skip: str = ""


# Why the base adapter's provider cannot continue: its API has no way to.
NO_CONTINUATION = "its API cannot continue a partial answer"


def with_prefix(call: ChatCall, prefix: str, **body_fields: Any) -> ChatCall:
    """`call` with `prefix` as a final assistant message (in the request Structs and the
    body alike) and `body_fields` added to the body. An output cap the client set is
    lowered by the tokens the prefix used, so both parts together stay within it."""
    request, body = call.request, dict(call.body)
    used = estimate_tokens(prefix)
    caps: dict[str, Any] = {}
    for field in ("max_tokens", "max_completion_tokens"):
        cap = getattr(request, field)
        if cap is not None:
            caps[field] = max(1, cap - used)
            body[field] = caps[field]
    messages = [*request.messages, Message(role="assistant", content=prefix)]
    body["messages"] = [*body.get("messages", ()), {"role": "assistant", "content": prefix}]
    body.update(body_fields)
    request = msgspec.structs.replace(request, messages=messages, **caps)
    return msgspec.structs.replace(call, request=request, body=body)


class EmbeddingCall(msgspec.Struct, kw_only=True):
    request: EmbeddingRequest
    body: dict[str, Any]
    request_id: str = ""
    timeout_s: float | None = None
    drop_params: bool = False
    tags: tuple[str, ...] = ()


class Adapter(ABC):
    provider: ClassVar[str]
    defaults: ClassVar[ProviderDefaults] = ProviderDefaults()
    supports_embeddings: ClassVar[bool] = False

    def __init__(self, deployment: Deployment, http: HttpClient) -> None:
        self.deployment = deployment
        self.http = http

    @property
    def model(self) -> str:
        return self.deployment.model

    @classmethod
    def config_problem(cls, deployment: Deployment) -> tuple[str, str] | None:
        """(litellm_params field, what is wrong) when no call to `deployment` could work,
        for the config loader to report; None for most providers."""
        return None

    def drop_params(self, call: ChatCall | EmbeddingCall) -> bool:
        return call.drop_params or self.deployment.drop_params

    def refuser(self, call: ChatCall | EmbeddingCall) -> Refuse:
        """The refusal callback for one call (see the module docstring)."""
        drop_params = self.drop_params(call)
        provider, model = self.provider, self.model

        def refuse(param: str, reason: str) -> None:
            unsupported(param, provider, reason, drop_params=drop_params, model=model)

        return refuse

    def refuse_unknown(self, call: ChatCall | EmbeddingCall, names: Iterable[str]) -> None:
        """Refuse top-level fields outside the OpenAI schema that the adapter cannot forward."""
        refuse = self.refuser(call)
        for name in names:
            refuse(name, UNKNOWN_FIELD)

    def refuse_set(
        self, call: ChatCall | EmbeddingCall, values: Mapping[str, Any], table: Mapping[str, str]
    ) -> list[str]:
        """Refuse each parameter of `table` (param -> reason) that `values` sets to anything
        but None; the names the caller must drop, in table order."""
        refuse = self.refuser(call)
        found = [param for param in table if values.get(param) is not None]
        for param in found:
            refuse(param, table[param])
        return found

    def encode_body(self, body: Any) -> bytes:
        """A native request body as JSON bytes. Validation bounds numbers and nesting so that
        this holds for any request the gateway accepted; if it ever fails, the request holds
        a value no JSON encoder can write: a 400, never a 500 (issue #13, item 5)."""
        try:
            return orjson.dumps(body)
        except orjson.JSONEncodeError as exc:
            raise InvalidRequest(
                f"the request cannot be sent to {self.provider}: {exc}",
                code="invalid_value",
                provider=self.provider,
                model=self.model,
            ) from exc

    def timeout_s(self, call: ChatCall | EmbeddingCall, *, stream: bool) -> float | None:
        if call.timeout_s is not None:
            return call.timeout_s
        if stream and self.deployment.stream_timeout_s is not None:
            return self.deployment.stream_timeout_s
        return self.deployment.timeout_s

    @abstractmethod
    async def chat(self, call: ChatCall) -> ChatCompletion:
        """A whole (non-stream) chat completion."""

    @abstractmethod
    def stream(self, call: ChatCall) -> AsyncIterator[list[ChatCompletionChunk]]:
        """The chat completion as batches of chunks (see the module docstring)."""

    async def open_stream(
        self, call: ChatCall
    ) -> tuple[list[ChatCompletionChunk], AsyncIterator[list[ChatCompletionChunk]]]:
        """Start a stream and read its first batch: (that batch, the rest). A failure before
        it closes the stream (an upstream connection would otherwise stay open)."""
        batches = self.stream(call)
        try:
            first: list[ChatCompletionChunk] = await anext(batches, [])
        except BaseException:
            await batches.aclose()  # type: ignore[attr-defined]  # an async generator
            raise
        return first, batches

    def continuation(self, call: ChatCall, prefix: str) -> Continued | str:
        """The call that continues an answer whose text so far is `prefix` (the provider then
        answers with the rest only), or why this provider cannot."""
        return NO_CONTINUATION

    async def embed(self, call: EmbeddingCall) -> EmbeddingResponse:
        raise InvalidRequest(
            f"{self.provider} does not offer embeddings through Switchboard",
            param="model",
            code="unsupported_model",
            provider=self.provider,
            model=self.model,
        )

    async def aclose(self) -> None:
        """Release per-adapter resources (most adapters share the process HttpClient)."""
        return None
