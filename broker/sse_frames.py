"""Reply records -> Server-Sent Events bytes. Chunk JSON is framed as it came from the
worker, never decoded. Every event carries `id: <sequence number>` so a client can resume
with `Last-Event-ID`."""

from __future__ import annotations

from workers import envelopes
from workers.envelopes import Record
from workers.errors import RequestCancelled

HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    # Proxies such as nginx would otherwise buffer the stream.
    "X-Accel-Buffering": "no",
}
DONE = b"[DONE]"
# A chunk that names its event (the Anthropic and Responses ingress APIs, workers/ingress/)
# comes pre-framed as `event: <type>\ndata: <json>`; a chat chunk is bare JSON.
EVENT_PREFIX = b"event: "
FAILED_PREFIX = b"event: response.failed\n"
# The last event of a stream whose request was cancelled (a resuming client reads it).
CANCELLED = RequestCancelled().to_json()


def frame(record: Record, after_seq: int = 0) -> bytes:
    """The record's events with sequence numbers above `after_seq`."""
    parts: list[bytes] = []
    seq = record.seq
    for chunk in record.chunks:
        if seq > after_seq:
            parts.append(_event(seq, chunk))
        seq += 1
    if record.end != envelopes.MORE and seq > after_seq:
        if record.end == envelopes.DONE:
            parts.append(b"id: %d\ndata: [DONE]\n\n" % seq)
        elif record.end == envelopes.ERROR and not _tells_failure(record):
            parts.append(_event(seq, record.body))
        elif record.end == envelopes.CANCELLED:
            parts.append(b"id: %d\ndata: %s\n\n" % (seq, CANCELLED))
        elif record.end == envelopes.RESPONSE:
            # A non-stream answer read through the stream endpoint: one event, then done.
            # (Its PART records, if any, frame nothing: the reader joins them first.)
            parts.append(b"id: %d\ndata: %s\n\n" % (seq, record.body))
    return b"".join(parts)


def _tells_failure(record: Record) -> bool:
    """Whether the record's last event already tells its error: a Responses stream ends
    with `response.failed` (workers/ingress/responses_failure.py), which the SDKs read as
    the end, so the error body is not framed after it."""
    return bool(record.chunks) and record.chunks[-1].startswith(FAILED_PREFIX)


def _event(seq: int, payload: bytes) -> bytes:
    if payload.startswith(EVENT_PREFIX):
        return b"id: %d\n%s\n\n" % (seq, payload)
    return b"id: %d\ndata: %s\n\n" % (seq, payload)
