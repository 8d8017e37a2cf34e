"""Messages and Responses traffic is counted exactly as chat traffic (one counting path):
the same prompt through each API adds the same tokens and cost to the same group's metrics,
streamed or not."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.broker.ingress.setup import TIMEOUT_S, gateway
from tests.broker.providers_setup import no_ambient_aws  # noqa: F401 (autouse fixture)
from tests.scrape import Scrape, scrape_url

HELLO = [{"role": "user", "content": "Say hello"}]
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "openai", "messages": HELLO},
    "/v1/messages": {"model": "openai", "messages": HELLO, "max_tokens": 256},
    "/v1/responses": {"model": "openai", "input": "Say hello"},
}


def counted(scrape: Scrape) -> tuple[float, float, float]:
    def tokens(kind: str) -> float:
        return sum(
            v
            for (name, labels), v in scrape.values.items()
            if name == "switchboard_tokens_total"
            and ("model_group", "openai") in labels
            and ("kind", kind) in labels
        )

    cost = sum(
        v
        for (name, labels), v in scrape.values.items()
        if name == "switchboard_cost_usd_total" and ("model_group", "openai") in labels
    )
    return tokens("prompt"), tokens("completion"), cost


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_each_api_adds_the_same_tokens_and_cost(fake, namespace, stream: bool):
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            added = {}
            before = counted(await scrape_url(session, url + "/metrics"))
            for route, body in BODIES.items():
                async with session.post(url + route, json={**body, "stream": stream}) as reply:
                    assert reply.status == 200
                    await reply.read()
                after = counted(await scrape_url(session, url + "/metrics"))
                added[route] = tuple(a - b for a, b in zip(after, before, strict=True))
                before = after
    chat = added["/v1/chat/completions"]
    assert chat[0] > 0 and chat[1] > 0 and chat[2] > 0
    assert added["/v1/messages"] == pytest.approx(chat)
    assert added["/v1/responses"] == pytest.approx(chat)
