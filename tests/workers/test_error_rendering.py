"""An error's body is rendered in one place (SwitchboardError.to_json, issue #14, item 5),
whichever way it travels: an HTTP body, an SSE event, a reply record."""

from __future__ import annotations

import orjson

from broker import sse_frames
from workers import envelopes
from workers.envelopes import Meta, Record
from workers.errors import RateLimited, RequestCancelled, SwitchboardError

# What broker/sse_frames.py wrote by hand before the cancellation had a class in the tree.
CANCELLED_EVENT_BEFORE = (
    b'id: 7\ndata: {"error":{"message":"the request was cancelled after its '
    b'client disconnected","type":"cancelled","param":null,"code":"cancelled"}}\n\n'
)


def test_the_cancelled_event_is_the_trees_rendering_with_the_same_bytes() -> None:
    assert sse_frames.frame(Record(seq=7, end=envelopes.CANCELLED)) == CANCELLED_EVENT_BEFORE
    cancelled = RequestCancelled()
    assert isinstance(cancelled, SwitchboardError)
    assert cancelled.http_status == 499
    assert orjson.loads(cancelled.to_json())["error"]["type"] == "cancelled"


def test_an_error_record_carries_the_body_status_and_retry_after() -> None:
    error = RateLimited("slow down", retry_after_s=2.5)
    record = envelopes.error_record(4, error, Meta(worker="w"))
    assert (record.seq, record.end, record.status) == (4, envelopes.ERROR, 429)
    assert record.retry_after_s == 2.5
    assert record.body == error.to_json()
    assert orjson.loads(record.body) == {
        "error": {
            "message": "slow down",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    # What the stream framing sends after the first byte is that same body.
    assert sse_frames.frame(record) == b"id: 4\ndata: " + error.to_json() + b"\n\n"


def test_text_that_is_not_utf8_is_sent_escaped() -> None:
    error = SwitchboardError("bad header \udcff", param="x-\udcfe")
    assert orjson.loads(error.to_json())["error"] == {
        "message": "bad header \\udcff",
        "type": "api_error",
        "param": "x-\\udcfe",
        "code": None,
    }
