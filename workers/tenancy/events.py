"""The event of one finished request on the ledger stream. The spend event comes in two
halves: what the front door knew at admission (who, which model) and what the worker learnt
(tokens, cost, status). The settlement script joins them on the ledger stream; the ledger
writer makes a spend row.

When the config names callbacks, the same stream entry carries a third field, the
`FinishedCall`: what the callbacks and the trace need that the spend row does not (the
request body, the answer, the times, the trace context). The callbacks' consumer group
reads it (workers/hooks/consumer.py); the ledger writer never decodes it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from workers.db.plain import SpendRecord
from workers.envelopes import Attempt, Meta

SUCCESS = "success"
FAILURE = "failure"


class FrontEvent(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    call_type: str
    api_key: str  # the key's hash
    model: str
    model_group: str
    start_ms: int
    key_alias: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    end_user: str | None = None
    tags: tuple[str, ...] = ()


class WorkerEvent(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    end_ms: int
    status: str = SUCCESS
    deployment: str | None = None
    provider: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    spend: float = 0.0
    # What the request inspector shows of the request's life (issue #21): its lane, the
    # wait there, each try at a deployment. Kept in the spend row's metadata.
    lane: str = ""
    queue_wait_ms: int = 0
    attempts: tuple[Attempt, ...] = ()
    # The worker that ran it (its id, as `x-switchboard-worker` names it); "" in events
    # from before it was kept, and for a request no worker ran.
    worker: str = ""


class AttemptTrace(msgspec.Struct, array_like=True, frozen=True):
    """A provider attempt that got a span of its own (after an earlier one failed)."""

    span_id: str  # 16 hex digits: the traceparent its upstream request carried
    deployment: str
    group: str
    start_ns: int
    end_ns: int
    error: str = ""  # the error class of a failed attempt


class CallTrace(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    """A request's trace as the worker recorded it (issue #19): ids and times, no span
    objects; the consumer makes the spans from them."""

    traceparent: str  # the front door's span: 00-<trace id>-<span id>-<flags>
    parent_span: str = ""  # the client's span, parent of the front door's
    front_start_ns: int = 0
    call_span: str = ""  # the provider call's span id, as the upstream request carried it
    attempts: tuple[AttemptTrace, ...] = ()


class FinishedCall(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    """What the callbacks need of a finished request beyond its spend event. Bytes stay
    bytes (the body as the client sent it, the answer as written): decoding them is the
    consumer's work, off the request's path."""

    kind: int
    ingress: int
    model_group: str
    stream: bool
    lane: str
    enqueued_ms: int
    started_ms: int
    ended_ms: int
    end: int  # the final record's end (envelopes.DONE, RESPONSE, ERROR, CANCELLED)
    status: int = 200
    # The request body; without its messages or input when message logging is off.
    body: bytes = b""
    # A RESPONSE's body or an ERROR's; empty for an answer when message logging is off.
    response: bytes = b""
    # A stream's chunks, as relayed (message logging on).
    chunks: list[bytes] = []
    meta: Meta | None = None
    trace: CallTrace | None = None
    # Who called, when the request was admitted without tenancy (the spend event says it
    # otherwise).
    key_alias: str | None = None
    # A front door's answer from the response cache (no worker, no cost).
    cache_hit: bool = False
    # The key's team, for what a front door answered itself (a worker's event has the
    # spend event's): the consumer delivers it to that team's callbacks too.
    team_id: str | None = None


class FrontSpan(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    """A span the front door saw end (issue #19), as ids and times: the relay of a worker's
    answer to the client (`route` empty), or the server span of a request it answered
    itself (a cache hit, a refusal; `route` set). Front doors put a batch of these on the
    stream now and then; the callbacks' consumer makes and exports the spans, so no process
    that serves requests encodes protobuf."""

    traceparent: str  # the front door's span: 00-<trace id>-<span id>-<flags>
    start_ns: int
    end_ns: int
    status: int
    route: str = ""  # a server span's route; "" for a relay
    parent_span: str = ""  # a server span's parent (the client's span)
    span_id: str = ""  # a relay's own span id (picked once: a redelivery repeats it)
    sent_bytes: int | None = None  # a relay's bytes; None: the client left before the end
    # A relay's time from the request's arrival to its first byte out (0: none went out).
    ttfb_ns: int = 0
    team_id: str | None = None  # the key's team: its own span exports, if it has any


encode = msgspec.msgpack.Encoder().encode
decode_front = msgspec.msgpack.Decoder(FrontEvent).decode
decode_worker = msgspec.msgpack.Decoder(WorkerEvent).decode
decode_call = msgspec.msgpack.Decoder(FinishedCall).decode
decode_front_spans = msgspec.msgpack.Decoder(list[FrontSpan]).decode


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def spend_record(request_id: str, front: FrontEvent, worker: WorkerEvent) -> SpendRecord:
    return SpendRecord(
        request_id=request_id,
        call_type=front.call_type,
        api_key=front.api_key,
        model=front.model,
        model_group=front.model_group,
        start_time=_time(front.start_ms),
        end_time=_time(worker.end_ms),
        key_alias=front.key_alias,
        user_id=front.user_id,
        team_id=front.team_id,
        organization_id=front.organization_id,
        end_user=front.end_user,
        deployment=worker.deployment,
        provider=worker.provider,
        prompt_tokens=worker.prompt_tokens,
        completion_tokens=worker.completion_tokens,
        spend=worker.spend,
        status=worker.status,
        tags=front.tags,
        metadata=inspector_metadata(worker),
    )


def inspector_metadata(worker: WorkerEvent) -> dict[str, Any]:
    """The request's life as the inspector shows it, for the spend row's metadata; empty
    when the worker told nothing (an event from before issue #21, a request never run).
    The row's start and end are the life's ends: admitted by the front door, and the
    worker's final record, which the front door relays as it arrives."""
    if not worker.lane and not worker.attempts:
        return {}
    life: dict[str, Any] = {
        "queue": {"lane": worker.lane, "waited_ms": worker.queue_wait_ms},
        "attempts": [msgspec.structs.asdict(attempt) for attempt in worker.attempts],
    }
    if worker.worker:
        life["worker"] = worker.worker
    return life
