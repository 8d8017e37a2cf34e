"""The app's batch state: the batch records' store and this front door's runners, opened
after the front door and the files (they use both) and closed before them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from broker.batches.records import BatchStore
from broker.batches.runner import BatchRunner
from broker.files.registry import FILES
from broker.routes.keys import FRONT_DOOR

BATCHES = web.AppKey("batches", BatchStore)


async def batches_ctx(app: web.Application) -> AsyncIterator[None]:
    files = app[FILES]
    batches = BatchStore(files.store)
    app[BATCHES] = batches
    runner = BatchRunner(app[FRONT_DOOR], files, batches)
    loop = asyncio.create_task(runner.run(), name="batch runners")
    try:
        yield
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await runner.aclose()
