"""/v1/responses replies as the worker writes them (issue #18): the translated reply built
from chat chunks (responses_reply.py) or a native deployment's own reply relayed unchanged,
what is kept of it (the gateway's store, a provider id's owner, a background response's
statuses; response_store.py), and how a stream failing midway ends (responses_failure.py).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from workers.envelopes import Envelope
from workers.errors import InvalidRequest, SwitchboardError
from workers.ingress import response_store
from workers.ingress.responses_failure import NativeEvents, failure_of
from workers.ingress.responses_reply import ResponseBuilder
from workers.ingress.responses_request import ResponsesRequest, input_items
from workers.providers.base import NativeBatch
from workers.redis_streams import Keys
from workers.wire import ChatCompletion, ChatCompletionChunk, Usage

log = logging.getLogger("switchboard.ingress")
JSONObject = dict[str, Any]


class ResponsesFormatter(ResponseBuilder):
    """OpenAI Responses; a stored response is saved before its final record, so that a
    follow-up naming it finds it however soon it comes. An OpenAI or Azure deployment's own
    reply (a native pass-through) goes out unchanged and the provider keeps it: the gateway
    records only whose its id is and which deployment holds it (docs/ingress.md)."""

    def __init__(self, request: ResponsesRequest, response_id: str, store: Store | None) -> None:
        super().__init__(request, response_id, int(time.time()))
        self.store = store
        self.native = False  # the reply is the deployment's own
        self.native_id = ""  # the provider's id for it
        self.relayed = NativeEvents()

    def frame(self, batch: list[ChatCompletionChunk]) -> tuple[list[bytes], Usage | None]:
        if not isinstance(batch, NativeBatch):
            return super().frame(batch)
        self.started = self.native = True
        usage = next((c.usage for c in batch if c.usage is not None and not c.choices), None)
        self.native_id = self.native_id or next((c.id for c in batch if c.id), "")
        self.relayed.read(batch.native)
        return list(batch.native), usage

    def finish(self, usage: Usage | None) -> list[bytes]:
        # A native stream's terminal event (response.completed, ...) carried the usage.
        return [] if self.native else super().finish(usage)

    def failed(self, error: SwitchboardError) -> list[bytes]:
        if not self.started:
            return []
        if self.native:
            return self.relayed.failed(error)
        response = {**self.body("failed"), "error": failure_of(error)}
        return [self._event("response.failed", response=response)]

    def response(self, response: ChatCompletion) -> bytes:
        native: bytes | None = getattr(response, "native_body", None)
        if native is None:
            return super().response(response)
        self.native = True
        self.native_id = response.id
        return native

    async def fail_stored(self, error: SwitchboardError) -> None:
        """A background response that failed: stored as failed, for its client to poll."""
        if self.store is None or not self.background:
            return
        failed = {**self.body("failed"), "error": failure_of(error)}
        try:
            await self.store.save_background(failed, "failed")
        except RedisError as exc:
            log.warning("could not store response %s as failed: %s", self.id, exc)

    async def settle(self, deployment: str) -> None:
        if self.store is None:
            return
        try:
            if self.background:
                done = self.body("completed")
                await self.store.save_background(done, str(done["status"]), deployment)
            elif not self.native:
                await self.store.save(self.body("completed"), deployment)
            elif self.native_id:
                await self.store.save_provider_id(self.native_id, deployment)
        except RedisError as exc:
            # The answer still goes out; only a follow-up naming it will not find it.
            log.warning("could not store response %s: %s", self.native_id or self.id, exc)


class Store:
    """Where one stored response goes, and whose it is."""

    def __init__(
        self, redis: Redis, keys: Keys, ttl_s: int, envelope: Envelope, request: ResponsesRequest
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self.owner = envelope.owner
        self.parent = request.previous_response_id
        # Ids for the input items that have none, as OpenAI lists them (input_items).
        self.input = [_listed(item) for item in input_items(request)]

    async def save(self, response: JSONObject, deployment: str) -> None:
        await response_store.save(
            self.redis,
            self.keys,
            response=response,
            owner=self.owner,
            parent=self.parent,
            deployment=deployment,
            input_items=self.input,
            ttl_s=self.ttl_s,
        )

    async def save_background(
        self, response: JSONObject, status: str, deployment: str = ""
    ) -> None:
        await response_store.save_background(
            self.redis,
            self.keys,
            response=response,
            owner=self.owner,
            parent=self.parent,
            status=status,
            ttl_s=self.ttl_s,
            deployment=deployment,
            input_items=self.input,
        )

    async def save_provider_id(self, response_id: str, deployment: str) -> None:
        await response_store.save_provider_id(
            self.redis,
            self.keys,
            response_id,
            owner=self.owner,
            deployment=deployment,
            ttl_s=self.ttl_s,
        )


def _listed(item: JSONObject) -> JSONObject:
    """An input item as OpenAI lists it: with an id, a message's text as parts."""
    listed = dict(item)
    if "id" not in listed:
        listed["id"] = "msg_" + os.urandom(12).hex()
    is_message = listed.get("type", "message" if "role" in listed else None) == "message"
    if is_message:
        listed["type"] = "message"
        if isinstance(listed.get("content"), str):
            kind = "output_text" if listed.get("role") == "assistant" else "input_text"
            listed["content"] = [{"type": kind, "text": listed["content"]}]
    return listed


def background_refused() -> InvalidRequest:
    """`background: true` where the reply would be translated: never silently ignored."""
    return InvalidRequest(
        "`background: true` is supported only where a model group's deployments serve the "
        "Responses API natively (OpenAI, Azure); this request is translated through chat "
        "completions, which cannot run in the background",
        param="background",
        code="unsupported_parameter",
    )
