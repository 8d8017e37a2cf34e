"""The app's batch state: the batch records' store and this process's runners, opened
after the front door and the files (they use both) and closed before them.

Where batches run (issue #20) is the process's role: a front door runs them beside its
interactive traffic (`beside`, the default), or leaves them to processes given to batches
alone (`none`: `serve --no-batches`, and `up`'s front doors when it starts batch workers),
which run them at a lower CPU priority (`alone`: `worker --batches`, broker/batch_process.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Literal

from aiohttp import web

from broker.batches.records import BatchStore
from broker.batches.runner import BatchRunner
from broker.files.registry import FILES
from broker.routes.keys import FRONT_DOOR

BatchRole = Literal["beside", "alone", "none"]

BATCHES = web.AppKey("batches", BatchStore)
BATCH_ROLE = web.AppKey("batch_role", str)


async def batches_ctx(app: web.Application) -> AsyncIterator[None]:
    files = app[FILES]
    batches = BatchStore(files.store)
    app[BATCHES] = batches
    role = app.get(BATCH_ROLE, "beside")
    if role == "none":
        yield
        return
    runner = BatchRunner(app[FRONT_DOOR], files, batches, is_alone=role == "alone")
    loop = asyncio.create_task(runner.run(), name="batch runners")
    try:
        yield
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await runner.aclose()
