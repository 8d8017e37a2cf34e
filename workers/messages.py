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
"""

from __future__ import annotations

from typing import Final

import msgspec

KIND_CHAT: Final = 1
KIND_EMBEDDING: Final = 2

# Record.end values
MORE: Final = 0  # more records follow
DONE: Final = 1  # stream finished: the terminal event is `data: [DONE]`
RESPONSE: Final = 2  # a whole (non-stream) response body; terminal
ERROR: Final = 3  # an error body with an HTTP status; terminal
CANCELLED: Final = 4  # the client went away and the request was cancelled; terminal


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


class Record(msgspec.Struct, array_like=True, omit_defaults=True):
    seq: int
    chunks: list[bytes] = []
    end: int = MORE
    # RESPONSE: the completion JSON; ERROR: the OpenAI error body JSON.
    body: bytes = b""
    status: int = 200
    meta: Meta | None = None
    # ERROR: the provider's Retry-After, relayed to the client.
    retry_after_s: float | None = None

    @property
    def is_final(self) -> bool:
        return self.end != MORE

    @property
    def next_seq(self) -> int:
        return self.seq + len(self.chunks) + (1 if self.end != MORE else 0)


encode = msgspec.msgpack.Encoder().encode
decode_envelope = msgspec.msgpack.Decoder(Envelope).decode
decode_record = msgspec.msgpack.Decoder(Record).decode


def live_message(request_id: str, record: bytes) -> bytes:
    """A record as published to the waiting front door: `<request id>|<record>`."""
    return request_id.encode() + b"|" + record


def split_live_message(message: bytes) -> tuple[str, bytes]:
    request_id, _, record = message.partition(b"|")
    return request_id.decode(), record
