"""Files (/v1/files, issue #20): their bytes in a `BlobStore`, their records beside them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from broker.config.loader import Config
from broker.files.registry import FILES, FileRegistry
from broker.files.storage import DirectoryStore


def files_ctx(config: Config) -> Callable[[web.Application], AsyncIterator[None]]:
    """The app's file registry, on the directory the config names (the loader fills in
    the data directory's `files/` when it names none)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        storage_dir = config.switchboard_settings.files.storage_dir or "switchboard-data/files"
        app[FILES] = FileRegistry(DirectoryStore(Path(storage_dir)))
        yield

    return context
