"""Where uploaded and generated files' bytes live: a small interface, and a directory.

The interface is what an S3-compatible store would implement too: bytes written as a
stream under a key (never whole in memory), read back as a stream, appended to (a
batch's output grows line by line), deleted. Metadata (`put_small`/`get_small`) is tiny
JSON beside the bytes. Keys are ids this process made (`file-<hex>`), never client text.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

# Keys are ids we generate; anything else is refused before it can name a path.
SAFE_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
READ_CHUNK_BYTES = 256 * 1024


class TooLarge(Exception):
    """A stream passed the size it may reach; nothing was kept."""


class BlobStore(Protocol):
    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], max_bytes: int) -> int:
        """Store `chunks` under `key`; the bytes stored. TooLarge past `max_bytes`."""
        ...

    def read_stream(self, key: str) -> AsyncIterator[bytes]: ...

    async def append(self, key: str, data: bytes) -> None: ...

    async def size(self, key: str) -> int | None: ...

    async def truncate(self, key: str, size: int) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def put_small(self, key: str, data: bytes) -> None:
        """Replace `key` with `data` at once: a reader sees the old or the new, never half."""
        ...

    async def get_small(self, key: str) -> bytes | None: ...

    async def keys(self, suffix: str) -> list[str]: ...


class DirectoryStore:
    """A BlobStore on a local directory. Blocking file calls run in a thread, so a large
    upload or download never stalls the event loop."""

    def __init__(self, root: Path) -> None:
        # Made on the first write: a front door nobody uploads to leaves no directory.
        self.root = root

    def path(self, key: str) -> Path:
        if not SAFE_KEY.match(key):
            raise ValueError(f"unsafe storage key {key!r}")
        return self.root / key

    def _made(self, key: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.path(key)

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], max_bytes: int) -> int:
        target = self._made(key)
        partial = target.with_name(target.name + ".partial")
        handle = await asyncio.to_thread(partial.open, "wb")
        written = 0
        try:
            async for chunk in chunks:
                written += len(chunk)
                if written > max_bytes:
                    raise TooLarge(f"more than {max_bytes} bytes")
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(_close_synced, handle)
            await asyncio.to_thread(os.replace, partial, target)
        except BaseException:
            handle.close()
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        return written

    async def read_stream(self, key: str) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(self.path(key).open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, READ_CHUNK_BYTES):
                yield chunk
        finally:
            handle.close()

    async def append(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(_append_synced, self._made(key), data)

    async def size(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(self.path(key).stat)).st_size
        except FileNotFoundError:
            return None

    async def truncate(self, key: str, size: int) -> None:
        await asyncio.to_thread(os.truncate, self.path(key), size)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self.path(key).unlink)

    async def put_small(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(_replace_atomically, self._made(key), data)

    async def get_small(self, key: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self.path(key).read_bytes)
        except FileNotFoundError:
            return None

    async def keys(self, suffix: str) -> list[str]:
        try:
            names = await asyncio.to_thread(os.listdir, self.root)
        except FileNotFoundError:
            return []
        return [name for name in names if name.endswith(suffix)]


def _close_synced(handle: _Writable) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _append_synced(path: Path, data: bytes) -> None:
    # fsync: a line the runner counted as written must survive a crash of the host too.
    with path.open("ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _replace_atomically(path: Path, data: bytes) -> None:
    # A name of its own: two writers never share (and tear) one temporary file.
    temporary = path.with_name(f"{path.name}.{os.urandom(6).hex()}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class _Writable(Protocol):
    def flush(self) -> None: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
