"""What crosses Redis between front doors and workers, as msgpack Structs.

- `Envelope`: one request on a request stream. The request body travels as the bytes the
  client sent; the worker decodes it, nobody re-encodes it.
- `Record`: one entry of a request's reply stream, also published live to the front door
  that waits for it. Chunk JSON travels as bytes and is framed as SSE without decoding.

Every client-visible event of a reply (a chunk, `[DONE]`, an error, a response body) has a
sequence number starting at 1; it is the SSE `id:`. A record holds consecutive events: its
chunks are events `seq .. seq+len(chunks)-1` and its terminal event, if any, comes next.
The record's stream entry id is `0-<seq>`: the writer chooses it, so a second writer racing
on the same reply (a worker presumed dead but alive) fails its XADD instead of interleaving.

A response body over a megabyte is written as PART records, each with a piece of it, then
the RESPONSE record with the last piece (issue #13: one 163 MB value strained Redis, its
pub/sub buffers and every reader). A PART takes a sequence number, so the fence holds for
it as for any record, but it is no event of its own: the body is one event, the RESPONSE's.
PARTs are stored and not published; the front door reads them when the RESPONSE arrives.
"""

from __future__ import annotations

from typing import Final

import msgspec

from workers.errors import SwitchboardError

KIND_CHAT: Final = 1
KIND_EMBEDDING: Final = 2
# A legacy text completion, queued as the chat request it became; answered in the text
# completion shape (workers/text_completions.py).
KIND_TEXT_COMPLETION: Final = 3

# Envelope.ingress: the API the client spoke, which decides how the worker translates the
# body into the wire model and formats the reply (issue #18; workers/ingress/).
INGRESS_CHAT: Final = 0  # OpenAI Chat Completions: the wire model itself
INGRESS_MESSAGES: Final = 1  # Anthropic Messages (/v1/messages)
INGRESS_RESPONSES: Final = 2  # OpenAI Responses (/v1/responses)

# Record.end values
MORE: Final = 0  # more records follow
DONE: Final = 1  # stream finished: the terminal event is `data: [DONE]`
RESPONSE: Final = 2  # a whole (non-stream) response body; terminal
ERROR: Final = 3  # an error body with an HTTP status; terminal
CANCELLED: Final = 4  # the client went away and the request was cancelled; terminal
PART: Final = 5  # a piece of a large response body; more pieces or the RESPONSE follow


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    request_id: str
    kind: int
    model_group: str
    stream: bool
    deadline_ms: int
    enqueued_ms: int
    # The front door waiting for the reply: its live channel carries the records.
    reply_to: str
    lane: str
    body: bytes
    # Gateway options from the request body (per-request timeout etc.), already validated.
    num_retries: int | None = None
    # Queued again by its front door after Redis lost its data: a first copy may be running.
    requeued: bool = False
    # The model groups the caller's key may reach (None: every group). A fallback outside
    # them is skipped (issue #13, item 6).
    allowed_groups: frozenset[str] | None = None
    # The tenancy scopes admission counted the request against (issue #17; None: admitted
    # without tenancy). The worker's final record settles them (workers/tenancy/settle.py).
    scopes: tuple[str, ...] | None = None
    # The API the client spoke (INGRESS_*): the body is in its shape, the reply goes out in it.
    ingress: int = INGRESS_CHAT
    # A hash of the caller's key: who owns what this request stores (a stored response).
    owner: str = ""
    # Client headers a native pass-through forwards (`anthropic-beta` on /v1/messages).
    headers: dict[str, str] | None = None
    # The W3C trace context of the front door's span (issue #19); None with tracing off.
    traceparent: str | None = None
    # A translated `background: true` /v1/responses request: the id the front door gave
    # the response (and stored as queued) before answering; the worker fills it in.
    response_id: str | None = None
    # The client's span the front door's continues ("" when the trace began at the front
    # door), and when the front door's span began (unix ns): the callbacks' consumer makes
    # the front door's span from them (workers/hooks/tracing.py), so no process builds a span
    # object on the request's path.
    trace_parent_span: str = ""
    trace_start_ns: int = 0


class Attempt(msgspec.Struct, array_like=True, omit_defaults=True):
    """One try at a deployment, as the request inspector shows it (issue #21): kept in the
    request's spend row, so it lives as long; never any message content."""

    deployment: str  # its label; "" when no deployment could take the request
    model_group: str
    # "ok", or why it failed: LiteLLM's exception name (RateLimitError, TimeoutError, ...);
    # "no_deployments_available" when every deployment was cooling down or at its limits.
    status: str = "ok"
    latency_ms: float = 0.0
    # Why this try was made: "" (the first), "retry" (the try before it failed), "fallback"
    # (the group before it failed: this is the fallback group's first try).
    reason: str = ""
    # Its failure put the deployment in cooldown (routing skips it for `cooldown_time`).
    cooled_down: bool = False
    # Why nothing could take it (ours: which limits or cooldowns), for a try without one.
    detail: str = ""


class Meta(msgspec.Struct, array_like=True, omit_defaults=True):
    """Bookkeeping for response headers and accounting; on the first and the last record."""

    deployment: str = ""
    provider: str = ""
    attempts: int = 0
    fallbacks: int = 0
    # Milliseconds spent waiting on the provider (to first byte for streams); the rest of
    # the request's wall time is the gateway's own overhead.
    upstream_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    worker: str = ""
    # The part of prompt_tokens the provider served from its prompt cache.
    cached_tokens: int = 0
    # Workers that died (or were presumed dead) holding the request before this one took
    # it over; `attempts` counts their attempts too (issue #15).
    takeovers: int = 0
    # The part of prompt_tokens + completion_tokens the gateway estimated: the usage of an
    # attempt that died with its worker, whose stream another worker continued.
    estimated_tokens: int = 0
    # Each try at a deployment, in order (retries, fallbacks): the request inspector's.
    tried: list[Attempt] = []
    # The lane it was queued on, and how long it waited there for a worker.
    lane: str = ""
    queue_wait_ms: int = 0


class Record(msgspec.Struct, array_like=True, omit_defaults=True):
    seq: int
    chunks: list[bytes] = []
    end: int = MORE
    # RESPONSE: the completion JSON (its last piece after PARTs); PART: a piece of it;
    # ERROR: the OpenAI error body JSON.
    body: bytes = b""
    status: int = 200
    meta: Meta | None = None
    # ERROR: the provider's Retry-After, relayed to the client.
    retry_after_s: float | None = None

    @property
    def is_final(self) -> bool:
        return self.end != MORE and self.end != PART

    @property
    def next_seq(self) -> int:
        return self.seq + len(self.chunks) + (1 if self.end != MORE else 0)


def error_record(seq: int, error: SwitchboardError, meta: Meta | None = None) -> Record:
    """The ERROR record that ends a reply with `error`: its body, status and Retry-After."""
    return Record(
        seq=seq,
        end=ERROR,
        body=error.to_json(),
        status=error.http_status,
        meta=meta,
        retry_after_s=error.retry_after_s,
    )


def join_parts(parts: list[bytes], record: Record) -> Record:
    """The RESPONSE record that ends a run of PARTs, holding the whole body."""
    if not parts or record.end != RESPONSE:
        return record
    return msgspec.structs.replace(record, body=b"".join((*parts, record.body)))


encode = msgspec.msgpack.Encoder().encode
decode_envelope = msgspec.msgpack.Decoder(Envelope).decode
decode_record = msgspec.msgpack.Decoder(Record).decode


def live_message(request_id: str, record: bytes) -> bytes:
    """A record as published to the waiting front door: `<request id>|<record>`."""
    return request_id.encode() + b"|" + record


def split_live_message(message: bytes) -> tuple[str, bytes]:
    request_id, _, record = message.partition(b"|")
    return request_id.decode(), record
