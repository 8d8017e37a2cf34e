"""One /metrics page read into samples, for tests that check what a process exports."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]


class Scrape:
    """One /metrics page: (sample name, labels) -> value."""

    def __init__(self, text: str) -> None:
        self.values: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.values[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def get(self, name: str, **labels: str) -> float | None:
        return self.values.get((name, frozenset(labels.items())))

    def value(self, name: str, **labels: str) -> float:
        found = self.get(name, **labels)
        assert found is not None, f"no {name}{labels} on this /metrics"
        return found


async def scrape_url(session: aiohttp.ClientSession, url: str) -> Scrape:
    async with session.get(url) as response:
        assert response.status == 200
        return Scrape(await response.text())
