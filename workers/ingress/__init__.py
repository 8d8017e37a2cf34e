"""The ingress APIs besides Chat Completions (issue #18): how a body in the client's API
becomes the chat wire model, and how the reply goes back out in that API.

The front door validates and enqueues the client's bytes with `Envelope.ingress`; the worker
translates them here (`Ingress.prepare`), runs the chat call through the same routing, and
formats each batch of chunks (or the whole response) with the ingress's `Formatter`. One
queue, one router, one counting path: only the two edges differ.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, NamedTuple, Protocol

import msgspec
import orjson
from redis.asyncio import Redis

from workers import text_completions
from workers.envelopes import INGRESS_MESSAGES, INGRESS_RESPONSES, Envelope
from workers.errors import InvalidRequest, NotFound, SwitchboardError
from workers.ingress import messages_reply, messages_request, response_store
from workers.ingress.responses_failure import failure_of
from workers.ingress.responses_formatter import ResponsesFormatter, Store, background_refused
from workers.ingress.responses_request import ResponsesRequest, Translator
from workers.providers.base import PIN_HELD, PIN_REASONING, NativeBatch, NativeRequest, Pin
from workers.providers.openai import RESPONSES
from workers.redis_streams import Keys
from workers.validation import decode_request
from workers.wire import ChatCompletion, ChatCompletionChunk, Usage, encode

log = logging.getLogger("switchboard.ingress")
JSONObject = dict[str, Any]


STOP = {"type": "message_stop"}


class Formatter(Protocol):
    """How one request's reply is written in its client's API."""

    def frame(self, batch: list[ChatCompletionChunk]) -> tuple[list[bytes], Usage | None]:
        """A batch's events, and the usage if the batch carried it (it comes last)."""
        ...

    def finish(self, usage: Usage | None) -> list[bytes]:
        """The events that end the stream (before the record's terminal event)."""
        ...

    def response(self, response: ChatCompletion) -> bytes:
        """A whole (non-stream) response body."""
        ...

    def failed(self, error: SwitchboardError) -> list[bytes]:
        """The events that end a stream failing after its first event, in the API's own
        words; none where the error record's event says it (chat, and Messages, whose
        front door words it)."""
        ...

    async def settle(self, deployment: str) -> None:
        """After the answer is formed, before its final record: keep what must be kept."""
        ...


class ChatFormatter:
    """Chat Completions: chunks as they are; the usage chunk only when asked for. A legacy
    text completion (/v1/completions, queued as the chat request it became) goes out in the
    text completion shape (workers/text_completions.py)."""

    def __init__(self, include_usage: bool, *, text_completion: bool = False) -> None:
        self.include_usage = include_usage
        self.encode_chunk = text_completions.from_chunk if text_completion else encode
        self.encode_response = text_completions.from_chat if text_completion else encode

    def frame(self, batch: list[ChatCompletionChunk]) -> tuple[list[bytes], Usage | None]:
        chunks: list[bytes] = []
        usage = None
        for chunk in batch:
            if chunk.usage is not None and not chunk.choices:
                usage = chunk.usage
                if not self.include_usage:
                    continue
            chunks.append(self.encode_chunk(chunk))
        return chunks, usage

    def finish(self, usage: Usage | None) -> list[bytes]:
        return []

    def response(self, response: ChatCompletion) -> bytes:
        return self.encode_response(response)

    def failed(self, error: SwitchboardError) -> list[bytes]:
        return []

    async def settle(self, deployment: str) -> None:
        return None


class MessagesFormatter(messages_reply.MessagesStream):
    """Anthropic Messages, answered under the model name the client asked for; an Anthropic
    deployment's own reply (a native pass-through) goes out unchanged."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.is_stopped = False  # a native stream's message_stop went out

    def frame(self, batch: list[ChatCompletionChunk]) -> tuple[list[bytes], Usage | None]:
        if not isinstance(batch, NativeBatch):
            return super().frame(batch)
        self.started = self.native = True
        usage = next((c.usage for c in batch if c.usage is not None and not c.choices), None)
        self.is_stopped = self.is_stopped or any(
            e.startswith(b"event: message_stop") for e in batch.native
        )
        return list(batch.native), usage

    def finish(self, usage: Usage | None) -> list[bytes]:
        if not self.native:
            return super().finish(usage)
        # The worker stops reading at the usage chunk, which message_stop itself carries.
        return [] if self.is_stopped else [messages_reply.event("message_stop", STOP)]

    def response(self, response: ChatCompletion) -> bytes:
        native: bytes | None = getattr(response, "native_body", None)
        if native is not None:
            return native
        return messages_reply.message_body(response, self.model)

    def failed(self, error: SwitchboardError) -> list[bytes]:
        return []

    async def settle(self, deployment: str) -> None:
        return None


class Prepared(NamedTuple):
    body: JSONObject  # the chat body
    formatter: Formatter
    native: NativeRequest | None = None
    affinity: str | None = None
    served_by: str | None = None  # the deployment that served the conversation's last turn
    pinned: Pin = ""  # why only `served_by` may serve it, if only it may


# The bytes of a conversation's start that make its affinity key (workers/routing/engine.py
# `rendezvous`): enough to tell conversations apart, bounded whatever their size.
AFFINITY_BYTES = 64 * 1024


def messages_affinity(owner: str, body: JSONObject) -> str:
    """A Messages conversation's key: its caller, system prompt and first message, which
    every turn of it repeats (Claude Code's prompt cache is keyed on that prefix too)."""
    messages = body.get("messages")
    start = orjson.dumps([body.get("system"), messages[:1] if isinstance(messages, list) else None])
    digest = hashlib.blake2b(owner.encode() + b"|" + start[:AFFINITY_BYTES], digest_size=16)
    return digest.hexdigest()


class Ingress:
    """A worker's translation of the ingress APIs, with what it needs of Redis."""

    def __init__(self, redis: Redis, keys: Keys, *, responses_ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.responses_ttl_s = responses_ttl_s

    async def prepare(
        self, envelope: Envelope, body: JSONObject, *, drop_params: bool, native_group: bool
    ) -> Prepared:
        """The chat body for a body in the envelope's ingress API, and its formatter;
        `native_group`: every deployment of the group serves /v1/responses natively."""
        if envelope.ingress == INGRESS_MESSAGES:
            chat = decode_request(
                lambda b: messages_request.to_chat_body(b, drop_params=drop_params), body
            )
            # An Anthropic deployment gets the client's own body (issue #18).
            native = NativeRequest(
                provider="anthropic", body=body, headers=dict(envelope.headers or {})
            )
            affinity = messages_affinity(envelope.owner, body)
            return Prepared(chat, MessagesFormatter(str(chat["model"])), native, affinity)
        if envelope.ingress == INGRESS_RESPONSES:
            return await self._responses(
                envelope, body, drop_params=drop_params, native_group=native_group
            )
        raise InvalidRequest(f"unknown ingress API {envelope.ingress}")

    async def _history(self, envelope: Envelope, parent: str) -> response_store.Conversation:
        """The chain a follow-up continues; a background response whose parent cannot be
        read is stored as failed, as its client polls for it."""
        try:
            return await response_store.conversation(self.redis, self.keys, parent, envelope.owner)
        except NotFound as exc:
            if envelope.response_id:
                await self._fail_queued(envelope, parent, exc)
            raise

    async def _fail_queued(self, envelope: Envelope, parent: str, error: NotFound) -> None:
        assert envelope.response_id is not None
        raw = await response_store.response_body(
            self.redis, self.keys, envelope.response_id, envelope.owner
        )
        failed = {**orjson.loads(raw), "status": "failed", "error": failure_of(error)}
        await response_store.save_background(
            self.redis,
            self.keys,
            response=failed,
            owner=envelope.owner,
            parent=parent,
            status="failed",
            ttl_s=self.responses_ttl_s,
        )

    async def _responses(
        self, envelope: Envelope, body: JSONObject, *, drop_params: bool, native_group: bool
    ) -> Prepared:
        """A /v1/responses body as a chat call. With no parent, an OpenAI or Azure
        deployment takes the client's own body (issue #18). A follow-up of a provider-made
        response goes natively to the deployment that holds its parent, and only there; a
        follow-up of a gateway-stored response is translated, its chain read in one script,
        preferring the deployment that served it, or only that one when the parent's output
        holds encrypted reasoning (its provider's signed thinking). The gateway's own fields
        were stripped from `body` already (Job.gateway_body)."""
        request = decode_request(lambda b: msgspec.convert(b, ResponsesRequest), body)
        parent = request.previous_response_id
        history: list[JSONObject] = []
        served_by = holder = None
        pinned: Pin = ""
        if parent:
            holder = await response_store.provider_deployment(
                self.redis, self.keys, parent, envelope.owner
            )
            if holder is not None:
                pinned = PIN_HELD
            else:
                history, served_by, holds_reasoning = await self._history(envelope, parent)
                pinned = PIN_REASONING if holds_reasoning else ""
        is_native = holder is not None or (not parent and native_group)
        background = envelope.response_id is not None  # the front door queued it so
        if background:
            # Run here, translated; the front door answered `queued` under this id.
            request = msgspec.structs.replace(request, background=None)
            is_native = False
        elif request.background and not is_native:
            raise background_refused()
        # A native call's chat body only meters it: what the translation cannot carry is
        # the provider's to judge.
        translator = Translator(drop_params=drop_params or is_native)
        chat = decode_request(lambda b: translator.chat_body(request, b, history), body)
        response_id = envelope.response_id or response_store.new_response_id(
            None if holder else parent
        )
        store = (
            Store(self.redis, self.keys, self.responses_ttl_s, envelope, request)
            if request.is_stored or background
            else None
        )
        formatter = ResponsesFormatter(request, response_id, store)
        direct = None
        if not background and (holder or not parent):
            direct = NativeRequest(provider=RESPONSES, body=body)
        if background and store is not None:
            formatter.background = True
            await store.save_background(formatter.body("in_progress"), "in_progress")
        # A response id carries its conversation's tag, so every turn of one conversation
        # picks alike when nothing pins it.
        return Prepared(
            chat, formatter, direct, response_id[5:21], holder or served_by or None, pinned
        )
