"""File records: OpenAI's file object, who owns it, and where its bytes are.

A file is `<id>` (its bytes) and `<id>.meta` (its record) in the store; it exists once its
record does, so a half-written upload or a batch output still growing is never listed.
Another key's file is a 404, the answer for a file that does not exist: an id says
nothing of whether someone else has it.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Literal

import msgspec
from aiohttp import web

from broker.files.storage import BlobStore
from workers.errors import NotFound

META_SUFFIX = ".meta"
FILE_ID_PREFIX = "file-"
# What a client may upload for; `batch_output` only Switchboard writes.
UPLOAD_PURPOSES = frozenset({"batch", "fine-tune", "assistants", "vision", "user_data", "evals"})
BATCH_OUTPUT = "batch_output"


class FileObject(msgspec.Struct, kw_only=True):
    """OpenAI's file object, as the official SDK parses it."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class FileRecord(msgspec.Struct, kw_only=True):
    file: FileObject
    owner: str


encode_record = msgspec.json.Encoder().encode
decode_record = msgspec.json.Decoder(FileRecord).decode


def new_file_id() -> str:
    return FILE_ID_PREFIX + os.urandom(12).hex()


def is_file_id(text: str) -> bool:
    body = text.removeprefix(FILE_ID_PREFIX)
    return text.startswith(FILE_ID_PREFIX) and len(body) == 24 and body.isalnum()


class FileRegistry:
    def __init__(self, store: BlobStore) -> None:
        self.store = store

    async def save(self, file_id: str, owner: str, *, filename: str, purpose: str) -> FileObject:
        """Record a file whose bytes are already stored under `file_id`."""
        size = await self.store.size(file_id) or 0
        record = FileRecord(
            file=FileObject(
                id=file_id,
                bytes=size,
                created_at=int(time.time()),
                filename=filename,
                purpose=purpose,
            ),
            owner=owner,
        )
        await self.store.put_small(file_id + META_SUFFIX, encode_record(record))
        return record.file

    async def get(self, owner: str, file_id: str) -> FileObject:
        """The caller's file; NotFound for anyone else's or none."""
        raw = await self.store.get_small(file_id + META_SUFFIX) if is_file_id(file_id) else None
        record = decode_record(raw) if raw else None
        if record is None or record.owner != owner:
            raise NotFound(f"No such File object: {_shown(file_id)}", param="file_id")
        return record.file

    async def list(self, owner: str, purpose: str | None = None) -> list[FileObject]:
        """The caller's files, newest first."""
        found: list[FileObject] = []
        for key in await self.store.keys(META_SUFFIX):
            raw = await self.store.get_small(key)
            if not raw:
                continue
            record = decode_record(raw)
            if record.owner == owner and (purpose is None or record.file.purpose == purpose):
                found.append(record.file)
        found.sort(key=lambda f: (f.created_at, f.id), reverse=True)
        return found

    async def content(self, owner: str, file_id: str) -> AsyncIterator[bytes]:
        await self.get(owner, file_id)
        return self.store.read_stream(file_id)

    async def delete(self, owner: str, file_id: str) -> None:
        await self.get(owner, file_id)
        # The record first: once it is gone the file is, whatever happens to the bytes.
        await self.store.delete(file_id + META_SUFFIX)
        await self.store.delete(file_id)


FILES = web.AppKey("files", FileRegistry)


def _shown(file_id: str) -> str:
    return ascii(file_id[:64])
