"""A batch's output and error files: OpenAI's line format, and what a runner that starts
again learns from them (which lines are done, so that none is written twice).

Each finished line is one JSON line: `{"id", "custom_id", "response": {"status_code",
"request_id", "body"}, "error"}`; a 200 goes to the output file, anything else to the error
file, and a line that never ran (the window passed) has `response: null` and an `error`.
The files are appended to and synced before a line counts as done, so they are the truth:
after a crash a line is done exactly when its custom_id is in one of them.

Beside them, `<batch id>.cost` holds each line's cost (`{"custom_id", "cost_usd"}` lines),
appended before the line's output: a runner that starts again sums it over the lines
done, so the batch's running cost loses nothing to a crash between two checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import msgspec

from broker.batches.lines import split_lines
from broker.batches.records import BatchRecord
from broker.files.registry import BATCH_OUTPUT, FileRegistry
from broker.files.storage import BlobStore
from workers.envelopes import ERROR, RESPONSE, Record

BATCH_REQUEST_PREFIX = "batch_req_"
# An output line holds one response (the reply cap) plus its wrapping.
MAX_OUTPUT_LINE_BYTES = 1 << 30


class LineResponse(msgspec.Struct):
    status_code: int
    request_id: str
    body: msgspec.Raw


class LineError(msgspec.Struct):
    code: str
    message: str


class OutputLine(msgspec.Struct):
    id: str
    custom_id: str
    response: LineResponse | None
    error: LineError | None


class DoneLine(msgspec.Struct):
    custom_id: str


class LineCost(msgspec.Struct):
    custom_id: str
    cost_usd: float


COST_SUFFIX = ".cost"
encode = msgspec.json.Encoder().encode
decode_done = msgspec.json.Decoder(DoneLine).decode
decode_cost = msgspec.json.Decoder(LineCost).decode


def _compact(body: bytes) -> msgspec.Raw:
    """A reply body on one line (an upstream may pretty-print), as JSON in any case."""
    try:
        return msgspec.Raw(msgspec.json.format(body, indent=-1))
    except msgspec.DecodeError:
        return msgspec.Raw(encode(body.decode(errors="replace")))


def result_line(custom_id: str, request_id: str, record: Record) -> tuple[bool, bytes]:
    """(is_success, the output line) for a finished RESPONSE or ERROR record."""
    status = 200 if record.end == RESPONSE else record.status
    response = LineResponse(status, request_id, _compact(record.body))
    line = OutputLine(_line_id(), custom_id, response, None)
    return record.end == RESPONSE and status == 200, encode(line) + b"\n"


def error_line(custom_id: str, code: str, message: str) -> bytes:
    """A line that never got a response (the batch's window passed)."""
    return encode(OutputLine(_line_id(), custom_id, None, LineError(code, message))) + b"\n"


def failed_line(custom_id: str, request_id: str, status: int, body: bytes) -> bytes:
    """A line refused before it was queued (its model no longer reachable by the key)."""
    record = Record(seq=1, end=ERROR, body=body, status=status)
    return result_line(custom_id, request_id, record)[1]


def _line_id() -> str:
    return BATCH_REQUEST_PREFIX + os.urandom(12).hex()


def cost_key(batch_id: str) -> str:
    return batch_id + COST_SUFFIX


def cost_lines(costs: list[tuple[str, float]]) -> bytes:
    return b"".join(encode(LineCost(custom_id, cost)) + b"\n" for custom_id, cost in costs)


async def publish_files(files: FileRegistry, record: BatchRecord) -> None:
    """A finished batch's output and error files (those with lines) become file objects
    of its owner, named on the batch, and the batch points at them."""
    batch = record.batch
    filename = f"{batch.id}_{{}}.jsonl"
    for key, kind in ((record.output_key, "output"), (record.error_key, "error")):
        if await files.store.size(key):
            await files.save(
                key, record.owner, filename=filename.format(kind), purpose=BATCH_OUTPUT
            )
            setattr(batch, f"{kind}_file_id", key)


async def done_lines(store: BlobStore, key: str) -> set[str]:
    """The custom_ids a file holds; a torn last line (a crash mid-append) is cut off first."""
    return {decode_done(line).custom_id async for line in whole_lines(store, key)}


async def line_costs(store: BlobStore, key: str) -> dict[str, float]:
    """Each line's cost from a batch's cost file (the last one written, if a line's reply
    was read twice: its runner died between the cost and the output)."""
    costs: dict[str, float] = {}
    async for line in whole_lines(store, key):
        cost = decode_cost(line)
        costs[cost.custom_id] = cost.cost_usd
    return costs


async def whole_lines(store: BlobStore, key: str) -> AsyncIterator[bytes]:
    """A file's complete lines; a torn last line (a crash mid-append) is cut off after."""
    size = await store.size(key)
    if not size:
        return
    kept = 0
    async for line in split_lines(store.read_stream(key), MAX_OUTPUT_LINE_BYTES):
        if kept + len(line) + 1 > size:
            break  # the last line has no newline: torn
        kept += len(line) + 1
        if line:
            yield line
    if kept < size:
        await store.truncate(key, kept)
