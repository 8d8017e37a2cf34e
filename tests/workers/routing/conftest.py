from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from broker import Router


@pytest.fixture
async def routers() -> AsyncIterator[list[Router]]:
    """Routers a test makes; closed when it ends."""
    made: list[Router] = []
    yield made
    for router in made:
        await router.aclose()
