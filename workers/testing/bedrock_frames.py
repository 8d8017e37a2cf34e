"""The AWS event-stream framing ConverseStream replies in, encoded for the Bedrock fake.

    frame = total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload | crc u32

Integers are big-endian; CRC-32 (zlib) covers the 8 length bytes, then everything before the
final CRC. Headers are string-typed (type 7) and in the order Bedrock sends them:
`:event-type` (or `:exception-type`), `:content-type`, `:message-type`. Payloads carry the
`p` padding member Bedrock adds to blur lengths; SDKs drop it.
"""

from __future__ import annotations

import functools
import struct
import zlib
from typing import Any

import msgspec

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_LENGTHS = struct.Struct(">II")
_U32 = struct.Struct(">I")
_encode_json = msgspec.json.Encoder().encode


def encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += bytes((len(raw_name),)) + raw_name + b"\x07" + len(raw_value).to_bytes(2, "big")
        out += raw_value
    return bytes(out)


def encode_frame(headers: bytes, payload: bytes) -> bytes:
    """One frame from already encoded headers and a payload."""
    prelude = _LENGTHS.pack(len(headers) + len(payload) + 16, len(headers))
    head = prelude + _U32.pack(zlib.crc32(prelude)) + headers + payload
    return head + _U32.pack(zlib.crc32(head))


@functools.cache
def event_headers(event_type: str) -> bytes:
    return encode_headers(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        }
    )


@functools.cache
def exception_headers(exception_type: str) -> bytes:
    return encode_headers(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        }
    )


def padding(ordinal: int) -> str:
    """A padding value whose length varies from frame to frame, deterministically."""
    return _PAD[: 1 + (ordinal * 7) % 41]


def event_frame(event_type: str, payload: dict[str, Any], ordinal: int) -> bytes:
    body = _encode_json({**payload, "p": padding(ordinal)})
    return encode_frame(event_headers(event_type), body)


def exception_frame(exception_type: str, payload: dict[str, Any]) -> bytes:
    return encode_frame(exception_headers(exception_type), _encode_json(payload))
