"""Enqueue a validated request and relay its reply: a JSON response, or SSE events as the
worker's records arrive. The first record decides the HTTP status, so an error before the
first chunk is a real HTTP error; after that, errors are SSE events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine

import msgspec
from aiohttp import web
from redis.exceptions import RedisError

from broker import sse_frames
from broker.auth import Caller
from broker.errors import JSON, anthropic_error_event, error_response, response_for_status
from broker.frontdoor import FrontDoor
from broker.reply_hub import Queued, Waiter
from workers import envelopes, redis_streams
from workers.envelopes import INGRESS_CHAT, INGRESS_MESSAGES, Envelope, Meta, Record
from workers.errors import GatewayTimeout, ServiceUnavailable, SwitchboardError
from workers.hooks.trace_context import FRONT_TRACE
from workers.log_format import REQUEST_ID
from workers.params import GatewayOptions
from workers.tenancy.admission import Ticket

# The worker enforces the deadline; the front door waits a little longer for its answer.
DEADLINE_SLACK_S = 2.0


# Told of a successful answer: (response body, or b"" for a stream; its chunks; its meta).
AnswerObserver = Callable[[bytes, list[bytes], Meta | None], None]


class Relay:
    """One forwarded request, from enqueue to its last byte."""

    def __init__(
        self,
        front: FrontDoor,
        *,
        kind: int,
        group: str,
        lane: str,
        body: bytes,
        stream: bool,
        options: GatewayOptions,
        caller: Caller,
        ticket: Ticket | None = None,
        ingress: int = INGRESS_CHAT,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.front = front
        self.ingress = ingress
        self.api_key_alias = caller.alias
        self.group = group
        self.lane = lane
        self.stream = stream
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        timeout_s = options.timeout or front.settings.request_timeout_s
        self.timeout_s = timeout_s
        self.request_id = caller.new_request_id()
        REQUEST_ID.set(self.request_id)  # this handler's log lines carry it (json logs)
        now_ms = int(time.time() * 1000)
        # The hooks' record of this request (issue #19): told when it is queued and how the
        # relay ended (the callbacks then log it from the worker; the relay has its span).
        self.trace = trace = FRONT_TRACE.get()
        self.envelope = Envelope(
            request_id=self.request_id,
            kind=kind,
            model_group=group,
            stream=stream,
            deadline_ms=now_ms + int(timeout_s * 1000),
            enqueued_ms=now_ms,
            reply_to=front.id,
            lane=lane,
            body=body,
            num_retries=options.num_retries,
            allowed_groups=front.scope_for(caller),
            scopes=None if ticket is None else ticket.scope_names,
            ingress=ingress,
            owner=caller.owner,
            headers=headers,
            traceparent=None if trace is None else trace.traceparent,
            trace_parent_span="" if trace is None else trace.parent_span,
            trace_start_ns=0 if trace is None else trace.start_ns,
        )
        # Admission (limits, budgets) happens with the enqueue, in one script (issue #17).
        self.ticket = ticket
        self.limit_headers: dict[str, str] = {}
        self.deadline = self.started + timeout_s + DEADLINE_SLACK_S
        self.is_finished = False
        self.status = 200
        self.overhead_s: float | None = None
        # The latest bookkeeping from the worker; the final record's carries usage and cost.
        self.meta: Meta | None = None
        # The response cache's part (issue #19, broker/response_cache.py): its header, and
        # what it is told of a successful answer (the body, or a stream's chunks).
        self.extra_headers: dict[str, str] = {}
        self.on_answer: AnswerObserver | None = None
        # Guardrails (issue #19, broker/guardrails.py): a check that runs beside the
        # provider call and must pass before any byte goes out, and one that may refuse or
        # rewrite a whole answer.
        self.gate: Awaitable[None] | None = None
        self.check_answer: Callable[[bytes], Awaitable[bytes]] | None = None
        # ... and the stream's form of the latter: each record, before it is framed.
        self.check_record: Callable[[Record], Awaitable[Record]] | None = None

    async def run(self, request: web.Request) -> web.StreamResponse:
        front = self.front
        waiter = front.hub.register(self.request_id)
        front.metrics.in_flight.inc()
        try:
            entry = await self._enqueue(envelopes.encode(self.envelope))
            waiter.queued = Queued(self.envelope, entry)
            if self.trace is not None:
                self.trace.queued()
            if self.gate is not None:
                await self._pass_gate(waiter)
            if self.stream:
                return await self._relay_stream(request, waiter)
            return await self._relay_response(waiter)
        except GatewayTimeout as exc:
            # No answer in time (no live worker?): drop the entry too, so nobody runs it later.
            self.status = exc.http_status
            if waiter.queued is not None:
                front.cancel_later(self.request_id, waiter.next_seq, waiter.queued)
            return error_response(exc, request_id=self.request_id)
        except ServiceUnavailable as exc:
            self.status = exc.http_status
            return error_response(exc, request_id=self.request_id)
        except (asyncio.CancelledError, ConnectionResetError):
            self.status = 499  # nginx's "client closed request", for metrics only
            if waiter.queued is not None and not self.is_finished:
                front.cancel_later(self.request_id, waiter.next_seq, waiter.queued)
            raise
        finally:
            if isinstance(self.gate, Coroutine):
                self.gate.close()  # never awaited when the enqueue failed
            front.hub.unregister(self.request_id)
            if self.is_finished and self.status != 499:
                front.delivered.delivered(self.request_id)
            front.metrics.in_flight.dec()
            front.memory.note_served()
            if self.trace is not None:
                self.trace.relayed(self.status)
            front.metrics.observe(
                self.group,
                self.api_key_alias,
                self.status,
                self.loop.time() - self.started,
                self.overhead_s,
                self.meta,
            )

    async def detach(self) -> str:
        """Enqueue without waiting for the answer (a background /v1/responses request: the
        worker stores it, the client polls the store); the request id."""
        try:
            await self._enqueue(envelopes.encode(self.envelope))
            self.status = 200
            if self.trace is not None:
                self.trace.queued(relays=False)
        except ServiceUnavailable as exc:
            self.status = exc.http_status
            raise
        finally:
            elapsed = self.loop.time() - self.started
            self.front.metrics.observe(self.group, self.api_key_alias, self.status, elapsed, None)
        return self.request_id

    async def _pass_gate(self, waiter: Waiter) -> None:
        """Wait for the during_call check (the provider call runs meanwhile); a block
        cancels the request, which stops the provider call, and is the answer."""
        assert self.gate is not None
        try:
            await self.gate
        except SwitchboardError as exc:
            self.status = exc.http_status
            self.is_finished = True
            self.front.cancel_later(self.request_id, waiter.next_seq, waiter.queued)
            raise

    async def _enqueue(self, envelope: bytes) -> bytes:
        front = self.front
        try:
            if self.ticket is not None:
                admitted = await front.tenancy.admit(
                    front.enqueuer,
                    self.lane,
                    envelope,
                    self.request_id,
                    self.ticket,
                    self.envelope.deadline_ms,
                )
                self.limit_headers = admitted.headers
                return admitted.entry
            return await front.enqueue(self.lane, envelope)
        except RedisError as exc:
            # Nothing was queued, so the client may simply try again.
            why = (
                "full (Redis reached its maxmemory)"
                if redis_streams.is_out_of_memory(exc)
                else f"unreachable ({type(exc).__name__})"
            )
            raise ServiceUnavailable(
                f"the request queue is {why}; retry shortly",
                code="queue_unavailable",
                retry_after_s=1.0,
            ) from exc

    def _headers(self, meta: Meta | None) -> dict[str, str]:
        headers = {"x-request-id": self.request_id, **self.limit_headers, **self.extra_headers}
        self.meta = meta or self.meta
        if meta is not None and meta.deployment:
            elapsed_ms = (self.loop.time() - self.started) * 1000
            overhead_ms = max(0.0, elapsed_ms - meta.upstream_ms)
            self.overhead_s = overhead_ms / 1000
            headers["x-switchboard-deployment"] = meta.deployment
            headers["x-switchboard-attempts"] = str(meta.attempts)
            headers["x-switchboard-takeovers"] = str(meta.takeovers)
            headers["x-switchboard-fallbacks"] = str(meta.fallbacks)
            headers["x-switchboard-overhead-ms"] = f"{overhead_ms:.2f}"
            headers["x-switchboard-worker"] = meta.worker
            if meta.cost_usd is not None:
                headers["x-switchboard-cost-usd"] = f"{meta.cost_usd:.10f}"
        return headers

    async def _first(self, waiter: Waiter) -> Record:
        """The next record by the request's deadline (the first, or a response's next part)."""
        try:
            return await waiter.next_record(self.deadline)
        except TimeoutError:
            raise GatewayTimeout(
                f"request {self.request_id} did not complete within {self.timeout_s:g}s"
            ) from None

    async def _relay_response(self, waiter: Waiter) -> web.Response:
        record = await self._first(waiter)
        # A large body comes in parts (workers.envelopes); an error after some parts (the
        # worker was lost, Redis refused a write) wins over them.
        parts: list[bytes] = []
        while record.end == envelopes.PART:
            parts.append(record.body)
            record = await self._first(waiter)
        self.is_finished = True
        headers = self._headers(record.meta)
        if record.end == envelopes.RESPONSE:
            body = envelopes.join_parts(parts, record).body
            if self.check_answer is not None:
                body = await self.check_answer(body)
            if self.on_answer is not None:
                self.on_answer(body, [], record.meta)
            return web.Response(body=body, content_type=JSON, headers=headers)
        self.status = record.status if record.end == envelopes.ERROR else 499
        return response_for_status(
            self.status, record.body, headers=headers, retry_after_s=record.retry_after_s
        )

    async def _relay_stream(self, request: web.Request, waiter: Waiter) -> web.StreamResponse:
        record = await self._first(waiter)
        if record.end == envelopes.ERROR and not record.chunks:
            self.is_finished = True
            self.status = record.status
            return response_for_status(
                record.status,
                record.body,
                headers=self._headers(record.meta),
                retry_after_s=record.retry_after_s,
            )
        response = web.StreamResponse(headers={**sse_frames.HEADERS, **self._headers(record.meta)})
        await response.prepare(request)
        self.front.metrics.observe_ttft(self.group, record.meta, self.loop.time() - self.started)
        self.front.metrics.open_streams.inc()
        # A stream's chunks, kept only for the response cache.
        kept: list[bytes] | None = [] if self.on_answer is not None else None
        check = self.check_record
        try:
            if check is not None:
                record = await check(record)
            # A post_call guardrail may end even the first record with an error event.
            await response.write(sse_frames.frame(self._in_api(record)))
            if kept is not None:
                kept.extend(record.chunks)
            while not record.is_final:
                try:
                    record = await waiter.next_record(self.loop.time() + self.timeout_s)
                except TimeoutError:
                    error = GatewayTimeout(f"stream {self.request_id} stalled")
                    record = envelopes.error_record(waiter.next_seq, error)
                    waiter.next_seq = record.next_seq
                if check is not None:
                    record = await check(record)
                await response.write(sse_frames.frame(self._in_api(record)))
                self.meta = record.meta or self.meta
                if kept is not None:
                    kept.extend(record.chunks)
            self.is_finished = True
            if record.end == envelopes.ERROR:
                self.status = record.status
            elif record.end == envelopes.DONE and kept is not None and self.on_answer:
                self.on_answer(b"", kept, self.meta)
        finally:
            self.front.metrics.open_streams.dec()
        return response

    def _in_api(self, record: Record) -> Record:
        """An in-stream error in the client's API: Anthropic's `event: error` on /v1/messages
        (other ingress APIs read the OpenAI error event)."""
        if record.end != envelopes.ERROR or self.ingress != INGRESS_MESSAGES:
            return record
        return msgspec.structs.replace(
            record, body=anthropic_error_event(record.status, record.body)
        )
