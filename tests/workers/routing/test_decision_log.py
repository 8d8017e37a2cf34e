"""Every strategy explains each decision in one debug line: the strategy, the deployment it
chose, and each candidate with the figure it compared."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest

from broker import Router
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion

MESSAGES = [{"role": "user", "content": "hi"}]
DECISION = re.compile(r"routed (?P<group>\S+) to (?P<chosen>\S+) by (?P<strategy>\S+): (?P<why>.*)")


def entry(fake: FakeUpstream, name: str, model: str = "m", **params: Any) -> dict[str, Any]:
    return {
        "model_name": "g",
        "litellm_params": {
            "model": f"openai/{model}",
            "api_base": fake.base_url + "/v1",
            "api_key": "sk-fake",
            **params,
        },
        "model_info": {"id": name},
    }


@pytest.fixture
def decisions(caplog: pytest.LogCaptureFixture) -> Decisions:
    caplog.set_level(logging.DEBUG, logger="switchboard.routing")
    return Decisions(caplog)


class Decisions:
    """The routing decision lines logged so far."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    def __getitem__(self, index: int) -> re.Match[str]:
        found = [DECISION.match(record.getMessage()) for record in self.caplog.records]
        return [match for match in found if match is not None][index]


async def served_by(router: Router) -> str:
    response = await router.acompletion("g", MESSAGES)
    assert isinstance(response, ChatCompletion)
    deployment: str = response.hidden_params["deployment"]
    return deployment


def figures(why: str) -> dict[str, str]:
    """`a=3, b=1` pairs in a reason, name -> value (the first figure named for each)."""
    found: dict[str, str] = {}
    for name, value in re.findall(r"\b([ab])=([^,)\s]+)", why):
        found.setdefault(name, value)
    return found


def check(line: re.Match[str], strategy: str, chosen: str) -> dict[str, str]:
    assert (line["group"], line["strategy"], line["chosen"]) == ("g", strategy, chosen)
    shown = figures(line["why"])
    assert set(shown) == {"a", "b"}, line["why"]
    return shown


async def test_simple_shuffle_names_the_weights(
    fake: FakeUpstream, routers: list[Router], decisions: Decisions
) -> None:
    router = Router([entry(fake, "a", weight=3), entry(fake, "b", weight=1)])
    routers.append(router)
    chosen = await served_by(router)
    shown = check(decisions[-1], "simple-shuffle", chosen)
    assert "weighted by weight" in decisions[-1]["why"]
    assert shown == {"a": "3", "b": "1"}


async def test_round_robin_names_its_turn(
    fake: FakeUpstream, routers: list[Router], decisions: Decisions
) -> None:
    router = Router([entry(fake, "a"), entry(fake, "b")], routing_strategy="round-robin")
    routers.append(router)
    first, second = await served_by(router), await served_by(router)
    assert first != second
    for line, chosen in ((decisions[-2], first), (decisions[-1], second)):
        assert (line["strategy"], line["chosen"]) == ("round-robin", chosen)
        assert re.search(r"turn \d+ over a, b", line["why"]), line["why"]


async def test_least_busy_names_the_in_flight_counts(
    fake: FakeUpstream, routers: list[Router], decisions: Decisions
) -> None:
    slow = "m~latency=1"
    router = Router([entry(fake, "a", slow), entry(fake, "b", slow)], routing_strategy="least-busy")
    routers.append(router)
    busy = asyncio.create_task(served_by(router))
    await fake.wait_for_requests(1)  # the first request holds its slot until it is answered
    chosen = await served_by(router)
    first = await busy
    assert chosen != first
    shown = check(decisions[-1], "least-busy", chosen)
    assert "fewest in flight" in decisions[-1]["why"]
    assert (shown[chosen], shown[first]) == ("0", "1")


async def test_latency_based_names_each_measured_latency(
    fake: FakeUpstream, routers: list[Router], decisions: Decisions
) -> None:
    router = Router(
        [entry(fake, "a", "m~latency=0.05"), entry(fake, "b")],
        routing_strategy="latency-based-routing",
    )
    routers.append(router)
    # Unmeasured deployments go first, so two requests measure both.
    assert {await served_by(router), await served_by(router)} == {"a", "b"}
    assert "not measured yet" in decisions[-2]["why"]
    chosen = await served_by(router)
    shown = check(decisions[-1], "latency-based-routing", chosen)
    assert "ms/token" in decisions[-1]["why"]
    assert all(float(value) > 0 for value in shown.values()), shown


async def test_cost_based_names_each_price_and_the_load(
    fake: FakeUpstream, routers: list[Router], decisions: Decisions
) -> None:
    prices: dict[str, Any] = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    dearer: dict[str, Any] = {"input_cost_per_token": 1e-5, "output_cost_per_token": 1e-5}
    router = Router(
        [entry(fake, "a", **dearer), entry(fake, "b", **prices)],
        routing_strategy="cost-based-routing",
    )
    routers.append(router)
    assert await served_by(router) == "b"
    shown = check(decisions[-1], "cost-based-routing", "b")
    assert "USD/token" in decisions[-1]["why"]
    assert (float(shown["a"]), float(shown["b"])) == (2e-5, 3e-6)
    assert decisions[-1]["why"].endswith("then fewest in flight (b=0); skipped none")


async def test_usage_based_names_each_minute_usage(
    fake: FakeUpstream, routers: list[Router], decisions: Decisions
) -> None:
    router = Router(
        [entry(fake, "a", rpm=100), entry(fake, "b", rpm=100)],
        routing_strategy="usage-based-routing-v2",
    )
    routers.append(router)
    first = await served_by(router)
    second = await served_by(router)
    assert second != first
    shown = check(decisions[-1], "usage-based-routing-v2", second)
    assert "least used this minute" in decisions[-1]["why"]
    assert shown[second] == "0/0"
    tokens, requests = shown[first].split("/")
    assert int(tokens) > 0 and requests == "1"
