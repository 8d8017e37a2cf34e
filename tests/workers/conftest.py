from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from workers.http import close_shared_client
from workers.testing.server import FakeUpstream


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as upstream:
        yield upstream
    # The SDK keeps one HTTP session per event loop; each test has its own loop.
    await close_shared_client()
