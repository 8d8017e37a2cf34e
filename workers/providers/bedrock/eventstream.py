"""An incremental decoder for the AWS event-stream framing that ConverseStream replies in.

    frame = total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload | crc u32

All integers are big-endian; both CRCs are CRC-32 (zlib's polynomial), the first over the
eight length bytes, the second over every byte before it. Frames do not line up with network
reads, so bytes are buffered until a whole frame is present; each read yields the frames it
completed. Limits match botocore's decoder (128 KiB of headers, 24 MiB of payload).
"""

from __future__ import annotations

import struct
import uuid
import zlib
from typing import NamedTuple

PRELUDE_LENGTH = 12
CRC_LENGTH = 4
MIN_FRAME_LENGTH = PRELUDE_LENGTH + CRC_LENGTH
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024

_PRELUDE = struct.Struct(">III")
_CRC = struct.Struct(">I")
_U16 = struct.Struct(">H")
# Fixed-size header values by type code: 2 byte, 3 int16, 4 int32, 5 int64, 8 timestamp (ms).
_FIXED = {2: struct.Struct(">b"), 3: struct.Struct(">h"), 4: struct.Struct(">i"),
          5: struct.Struct(">q"), 8: struct.Struct(">q")}  # fmt: skip

HeaderValue = bool | int | bytes | str


class FrameError(ValueError):
    """The bytes are not a valid event-stream (bad CRC, impossible length, bad header)."""


class Frame(NamedTuple):
    headers: dict[str, HeaderValue]
    payload: bytes


class EventStreamDecoder:
    """Feed bytes as they arrive; get the frames each feed completed."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        offset = 0
        while len(buffer) - offset >= PRELUDE_LENGTH:
            total_length = _check_prelude(buffer, offset)
            if len(buffer) - offset < total_length:
                break
            frames.append(_parse_frame(memoryview(buffer)[offset : offset + total_length]))
            offset += total_length
        if offset:
            del buffer[:offset]
        return frames

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished frame; non-zero at the end of a body means truncation."""
        return len(self._buffer)


def _check_prelude(buffer: bytearray, offset: int) -> int:
    total_length, headers_length, prelude_crc = _PRELUDE.unpack_from(buffer, offset)
    if zlib.crc32(memoryview(buffer)[offset : offset + 8]) != prelude_crc:
        raise FrameError("event-stream prelude CRC mismatch")
    if headers_length > MAX_HEADERS_LENGTH:
        raise FrameError(f"event-stream headers of {headers_length} bytes exceed the limit")
    payload_length = total_length - headers_length - MIN_FRAME_LENGTH
    if payload_length < 0:
        raise FrameError(f"event-stream frame length {total_length} is too short")
    if payload_length > MAX_PAYLOAD_LENGTH:
        raise FrameError(f"event-stream payload of {payload_length} bytes exceeds the limit")
    return int(total_length)


def _parse_frame(frame: memoryview) -> Frame:
    (message_crc,) = _CRC.unpack_from(frame, len(frame) - CRC_LENGTH)
    if zlib.crc32(frame[: len(frame) - CRC_LENGTH]) != message_crc:
        raise FrameError("event-stream message CRC mismatch")
    (headers_length,) = _CRC.unpack_from(frame, 4)
    headers_end = PRELUDE_LENGTH + headers_length
    headers = _parse_headers(frame[PRELUDE_LENGTH:headers_end])
    return Frame(headers, bytes(frame[headers_end : len(frame) - CRC_LENGTH]))


def _parse_headers(data: memoryview) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    offset = 0
    try:
        while offset < len(data):
            name_length = data[offset]
            name = bytes(data[offset + 1 : offset + 1 + name_length]).decode()
            offset += 1 + name_length
            value, offset = _parse_value(data, data[offset], offset + 1)
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise FrameError(f"malformed event-stream header: {exc}") from exc
    return headers


def _parse_value(data: memoryview, type_code: int, offset: int) -> tuple[HeaderValue, int]:
    if type_code in (0, 1):  # the value is the type: 0 true, 1 false
        return type_code == 0, offset
    if type_code in _FIXED:
        unpacker = _FIXED[type_code]
        return unpacker.unpack_from(data, offset)[0], offset + unpacker.size
    if type_code in (6, 7):  # 6 bytes, 7 string: u16 length, then the bytes
        (length,) = _U16.unpack_from(data, offset)
        end = offset + 2 + length
        if end > len(data):
            raise IndexError("header value runs past the headers")
        raw = bytes(data[offset + 2 : end])
        return (raw.decode() if type_code == 7 else raw), end
    if type_code == 9:
        return str(uuid.UUID(bytes=bytes(data[offset : offset + 16]))), offset + 16
    raise FrameError(f"unknown event-stream header type {type_code}")
