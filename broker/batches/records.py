"""Batch records: OpenAI's batch object, who owns it, and its bookkeeping, kept as small
JSON values in the file store (`<batch id>.batch`) beside the files they name.

One writer at a time: the create handler writes a batch once, then only its runner (the
holder of its lease) does. A cancel is asked for in Redis (redis_streams'
request_batch_cancel) and shown by the reader until the runner records it.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

import msgspec

from broker.files.storage import BlobStore
from workers.errors import NotFound

BATCH_SUFFIX = ".batch"
BATCH_ID_PREFIX = "batch_"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


class RequestCounts(msgspec.Struct):
    total: int = 0
    completed: int = 0
    failed: int = 0


class BatchError(msgspec.Struct, kw_only=True):
    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(msgspec.Struct):
    data: list[BatchError]
    object: Literal["list"] = "list"


class Batch(msgspec.Struct, kw_only=True):
    """OpenAI's batch object, as the official SDK parses it; `cost_usd` is Switchboard's
    own (the running cost of the lines finished so far)."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts = msgspec.field(default_factory=RequestCounts)
    metadata: dict[str, str] | None = None
    cost_usd: float = 0.0


class NativeState(msgspec.Struct, kw_only=True):
    """A batch sent to its provider's own batch API (broker/batches/native_poll.py): which
    deployment, and how far the hand-over went. Each step is recorded before the next
    starts, so a runner that starts again goes on instead of submitting twice."""

    provider: str  # "openai" or "anthropic"
    group: str
    deployment: str  # the deployment's label, found again in the config
    model: str  # the model the lines named (the spend rows say it)
    # When the provider's create call went out: a runner that finds it set without a
    # batch_id looks for the batch before it submits again.
    submitted_at: int | None = None
    # How many lines that call handed over (the size a provider batch is known by when it
    # carries nothing of ours: Anthropic's).
    submitted_lines: int | None = None
    batch_id: str | None = None  # the provider's batch
    cancel_sent: bool = False
    # The provider said its batch ended: the results are being (or were) copied.
    ended: bool = False


class BatchRecord(msgspec.Struct, kw_only=True):
    batch: Batch
    owner: str
    # A database key's hash (issue #17): how the runner finds the key again; None for the
    # master key and config keys, which the owner id finds.
    token: str | None = None
    # Reserved at creation, so a runner that restarts appends to the same files; they become
    # file objects (listed, readable) when the batch ends.
    output_key: str
    error_key: str
    # Set when the lines go to the provider's batch API rather than the batch lane.
    native: NativeState | None = None
    # A batch split by model group (broker/batches/split.py): its parts, each a batch of
    # its own; and, on a part, the batch it is part of (parts are left out of the list).
    parts: list[str] = []
    parent: str | None = None


class CreateBatch(msgspec.Struct):
    """The body of POST /v1/batches."""

    input_file_id: Annotated[str, msgspec.Meta(max_length=64)]
    endpoint: Annotated[str, msgspec.Meta(max_length=64)]
    completion_window: Annotated[str, msgspec.Meta(max_length=16)] = "24h"
    # OpenAI's metadata: up to 16 pairs, keys to 64 characters, values to 512.
    metadata: (
        Annotated[
            dict[
                Annotated[str, msgspec.Meta(max_length=64)],
                Annotated[str, msgspec.Meta(max_length=512)],
            ],
            msgspec.Meta(max_length=16),
        ]
        | None
    ) = None


encode_record = msgspec.json.Encoder().encode
decode_record = msgspec.json.Decoder(BatchRecord).decode


def new_batch_id() -> str:
    return BATCH_ID_PREFIX + os.urandom(12).hex()


def is_batch_id(text: str) -> bool:
    body = text.removeprefix(BATCH_ID_PREFIX)
    return text.startswith(BATCH_ID_PREFIX) and len(body) == 24 and body.isalnum()


class BatchStore:
    def __init__(self, store: BlobStore) -> None:
        self.store = store

    async def put(self, record: BatchRecord) -> None:
        await self.store.put_small(record.batch.id + BATCH_SUFFIX, encode_record(record))

    async def load(self, batch_id: str) -> BatchRecord | None:
        if not is_batch_id(batch_id):
            return None
        raw = await self.store.get_small(batch_id + BATCH_SUFFIX)
        return decode_record(raw) if raw else None

    async def get(self, owner: str, batch_id: str) -> BatchRecord:
        """The caller's batch; NotFound for anyone else's or none."""
        record = await self.load(batch_id)
        if record is None or record.owner != owner:
            raise NotFound(f"No batch found with id {ascii(batch_id[:64])}", param="batch_id")
        return record

    async def unfinished(self) -> list[str]:
        found: list[str] = []
        for key in await self.store.keys(BATCH_SUFFIX):
            raw = await self.store.get_small(key)
            if raw and decode_record(raw).batch.status not in TERMINAL:
                found.append(key.removesuffix(BATCH_SUFFIX))
        return found

    async def list(self, owner: str) -> list[Batch]:
        """The caller's batches, newest first."""
        found: list[Batch] = []
        for key in await self.store.keys(BATCH_SUFFIX):
            raw = await self.store.get_small(key)
            if raw:
                record = decode_record(raw)
                if record.owner == owner and record.parent is None:
                    found.append(record.batch)
        found.sort(key=lambda b: (b.created_at, b.id), reverse=True)
        return found
