from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.client import Pipeline


class RoundTrips:
    """How many pipelines were sent to Redis (each is one round trip)."""

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    counted = RoundTrips()
    original = Pipeline.execute

    async def counting(self: Pipeline, raise_on_error: bool = True) -> Any:
        counted.count += 1
        return await original(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", counting)
    return counted
