"""/v1/messages and /v1/responses count against a database key exactly as chat does
(issue #18: "spend, limits, budgets ... count Responses and Messages traffic exactly as chat
traffic", LiteLLM #38176): each request writes one spend row under its own call type, a
budget spent through one API refuses the others, and an rpm limit counts the three APIs
together. Refusals come in each API's own shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.broker.harness import wait_until
from tests.broker.tenancy import conftest as tenancy
from tests.broker.tenancy.conftest import Gateway
from tests.db_fixtures import *  # noqa: F403  (database_url, database: both backends)

HELLO = [{"role": "user", "content": "hi"}]
# Two front doors and a worker on one Redis and a database (each backend), as the key tests
# use them.
gateway = tenancy.gateway


async def post(
    gateway: Gateway, route: str, key: str, body: dict[str, Any], door: int = 0
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    """Messages by `x-api-key` (as the Anthropic SDK sends it), the others by bearer."""
    headers = (
        {"x-api-key": key, "anthropic-version": "2023-06-01"}
        if route == "/v1/messages"
        else {"Authorization": f"Bearer {key}"}
    )
    async with gateway.http.post(
        gateway.doors[door].url + route, json=body, headers=headers
    ) as reply:
        return reply.status, await reply.json(content_type=None), reply.headers.copy()


def messages(key: str) -> tuple[str, str, dict[str, Any]]:
    return "/v1/messages", key, {"model": "gpt-test", "max_tokens": 16, "messages": HELLO}


def responses(key: str) -> tuple[str, str, dict[str, Any]]:
    return "/v1/responses", key, {"model": "gpt-test", "input": "hi"}


async def test_each_api_writes_its_spend_row(gateway: Gateway) -> None:
    key = await gateway.new_key(key_alias="ingress")
    ids = {}
    for route, _, body in (messages(key), responses(key)):
        status, answer, headers = await post(gateway, route, key, body)
        assert status == 200, answer
        assert float(headers["x-switchboard-cost-usd"]) > 0
        ids[route] = headers["x-request-id"]
    rows: list[dict[str, Any]] = []

    async def written() -> bool:
        rows[:] = await gateway.api.ok("GET", "/spend/logs", api_key=key)
        return len(rows) == 2

    await wait_until(written, timeout_s=10.0)
    by_id = {row["request_id"]: row for row in rows}
    assert by_id[ids["/v1/messages"]]["call_type"] == "messages"
    assert by_id[ids["/v1/responses"]]["call_type"] == "responses"
    for row in rows:
        assert row["key_alias"] == "ingress" and row["status"] == "success"
        assert float(row["spend"]) > 0


async def test_a_budget_spent_through_messages_refuses_every_api(gateway: Gateway) -> None:
    key = await gateway.new_key(max_budget=0.0000001, budget_duration="1d")
    status, answer, _ = await post(gateway, *messages(key))
    assert status == 200, answer

    async def over_budget() -> bool:
        status, answer, _ = await post(gateway, *responses(key), door=1)
        return status == 422 and answer["error"]["code"] == "budget_exceeded"

    await wait_until(over_budget, timeout_s=2.0)
    status, answer, _ = await gateway.chat(key)
    assert status == 422 and answer["error"]["code"] == "budget_exceeded"
    status, answer, _ = await post(gateway, *messages(key))
    assert status == 422, answer
    assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    assert "Budget has been exceeded" in answer["error"]["message"]


async def test_an_rpm_limit_counts_the_three_apis_together(gateway: Gateway) -> None:
    key = await gateway.new_key(rpm_limit=3)
    assert (await gateway.chat(key))[0] == 200
    assert (await post(gateway, *messages(key), door=1))[0] == 200
    assert (await post(gateway, *responses(key)))[0] == 200
    status, answer, headers = await post(gateway, *messages(key), door=1)
    assert status == 429 and answer["type"] == "error", answer
    assert answer["error"]["type"] == "rate_limit_error"
    assert int(headers["Retry-After"]) >= 1
    status, answer, _ = await post(gateway, *responses(key))
    assert status == 429 and answer["error"]["code"] == "rate_limit_exceeded", answer
