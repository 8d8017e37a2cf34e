"""An aiohttp app a test serves itself (a collector, a webhook, an upstream that misbehaves),
on a free port of 127.0.0.1 for the length of a `with` block."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """The app's base URL (`http://127.0.0.1:PORT`) while the block runs."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
