"""What the Models page and the playground's picker read (issue #21): /v1/models lists the
model groups a database key may call (its own list, else its team's; `*` entries resolved
against the config's groups and aliases; every group when unrestricted) in OpenAI's list
shape, and /model/info says how each of those groups is routed, which the Models page shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI, PermissionDeniedError
from openai.types.chat import ChatCompletionMessageParam

from tests.broker.console.browser import chromium, new_page, require_browser
from tests.broker.console.conftest import MASTER
from tests.broker.console.test_console_browser import shot, sign_in
from tests.broker.harness import RunningFrontDoor, make_config, service
from tests.broker.management.conftest import Api, general
from workers import pricing
from workers.db.engine import Database
from workers.testing.server import FakeUpstream

pytestmark = pytest.mark.timeout(180)

GROUPS = ["gpt-test", "slow", "groq-test", "embed-test"]
# Appended to the harness's `router_settings:` (it sets num_retries: 0 first).
ROUTING = """\
  routing_strategy: latency-based-routing
  routing_strategy_args:
    lowest_latency_buffer: 0.1
  fallbacks:
    - gpt-test: [slow]
  context_window_fallbacks:
    - "*": [groq-test]
  cooldown_time: 30
  model_group_alias:
    gpt-alias: gpt-test
"""


@pytest.fixture
async def routed(
    console_database: Database, console_database_url: str, namespace: str, fake: FakeUpstream
) -> AsyncIterator[RunningFrontDoor]:
    config = make_config(
        fake.base_url + "/v1", namespace, general=ROUTING + general(console_database_url)
    )
    async with service(config, workers=1) as ([front], _):
        yield front


@pytest.fixture
async def admin(routed: RunningFrontDoor) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(http, routed.url)


async def listed(door: RunningFrontDoor, key: str) -> list[str]:
    """/v1/models as the official SDK reads it."""
    client = AsyncOpenAI(base_url=door.url + "/v1", api_key=key, max_retries=0)
    try:
        return [model.id async for model in client.models.list()]
    finally:
        await client.close()


async def new_key(admin: Api, **body: Any) -> str:
    key: str = (await admin.ok("POST", "/key/generate", body))["key"]
    return key


async def test_v1_models_lists_what_a_database_key_may_call(
    routed: RunningFrontDoor, admin: Api
) -> None:
    everything = [*GROUPS, "gpt-alias"]
    assert sorted(await listed(routed, await new_key(admin))) == sorted(everything)
    key = await new_key(admin, models=["all-proxy-models"])
    assert sorted(await listed(routed, key)) == sorted(everything)
    assert await listed(routed, await new_key(admin, models=["slow"])) == ["slow"]
    # A `*` entry is resolved against the config's groups and aliases.
    assert sorted(await listed(routed, await new_key(admin, models=["gpt-*"]))) == [
        "gpt-alias",
        "gpt-test",
    ]
    # A key without a list of its own has its team's.
    await admin.ok("POST", "/team/new", {"team_id": "groq-team", "models": ["groq-*", "slow"]})
    team_key = await new_key(admin, team_id="groq-team")
    assert sorted(await listed(routed, team_key)) == ["groq-test", "slow"]


async def test_a_wildcard_key_calls_what_it_lists_and_nothing_else(
    routed: RunningFrontDoor, admin: Api
) -> None:
    key = await new_key(admin, models=["gpt-*"])
    client = AsyncOpenAI(base_url=routed.url + "/v1", api_key=key, max_retries=0)
    try:
        hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
        for model in ("gpt-test", "gpt-alias"):
            answer = await client.chat.completions.create(model=model, messages=hello)
            assert answer.choices[0].message.content
        with pytest.raises(PermissionDeniedError):
            await client.chat.completions.create(model="slow", messages=hello)
        retrieved = await client.models.retrieve("gpt-test")
        assert retrieved.id == "gpt-test"
    finally:
        await client.close()


async def test_model_info_says_how_each_group_the_key_may_call_is_routed(
    routed: RunningFrontDoor, admin: Api
) -> None:
    info = await admin.ok("GET", "/model/info")
    groups = {g["model_group"]: g for g in info["model_groups"]}
    assert sorted(groups) == sorted(GROUPS)
    gpt = groups["gpt-test"]
    assert gpt["routing_strategy"] == "latency-based-routing"
    assert gpt["routing_strategy_args"]["lowest_latency_buffer"] == 0.1
    assert gpt["num_retries"] == 0 and gpt["cooldown_time"] == 30
    assert gpt["fallbacks"] == ["slow"] and groups["slow"]["fallbacks"] == []
    assert gpt["context_window_fallbacks"] == ["groq-test"]
    assert groups["groq-test"]["context_window_fallbacks"] == []  # never itself
    status, mine = await admin.get("/model/info", as_key=await new_key(admin, models=["slow"]))
    assert status == 200 and [g["model_group"] for g in mine["model_groups"]] == ["slow"]
    assert "sk-fake" not in str(info)


async def test_the_models_page_shows_each_groups_routing_and_the_playground_lists_models(
    routed: RunningFrontDoor, admin: Api
) -> None:
    executable = require_browser()
    limited = await new_key(admin, key_alias="gpt-only", models=["gpt-*"])
    async with chromium(executable) as browser:
        page = await new_page(browser)
        await sign_in(page, routed.url, MASTER)
        await page.get_by_role("link", name="Models", exact=True).click()
        routing = page.locator("section", has_text="How each model group is routed")
        row = routing.locator("tr", has=page.get_by_role("cell", name="gpt-test", exact=True))
        await row.get_by_text("latency-based-routing").wait_for()
        text = await row.text_content() or ""
        assert "within 10 % of the fastest count as tied" in text
        assert "0 retries" in text and "cooldown 30 s after 3 failures a minute" in text
        assert "slow" in text and "groq-test" in text
        assert await routing.locator("tbody tr").count() == len(GROUPS)
        # The config gives gpt-test no price: the price table's, marked as the table's.
        mini = pricing.lookup_price("openai", "gpt-4o-mini")
        assert mini is not None and mini.output_cost_per_token and mini.max_input_tokens
        deployments = page.locator("table", has_text="deployments")
        gpt = deployments.locator("tr", has=page.get_by_role("cell", name="gpt-test", exact=True))
        for column, text in [
            ("Input / 1M tokens", f"${mini.input_cost_per_token * 1e6:.2f} (table)"),
            ("Output / 1M tokens", f"${mini.output_cost_per_token * 1e6:.2f} (table)"),
            ("Context window", f"{mini.max_input_tokens:,} (table)"),
        ]:
            assert await gpt.locator(f'td[data-label="{column}"]').text_content() == text
        await page.get_by_text("(table): the built-in price table's figure").wait_for()
        await shot(page, "models-routing")
        await page.get_by_role("button", name="Sign out").click()

        # A database key limited to `gpt-*`: its picker offers what /v1/models lists for it.
        await sign_in(page, routed.url, limited)
        await page.get_by_role("link", name="Playground").click()
        await page.locator("#play-model").wait_for()
        options = await page.locator("#play-models option").evaluate_all(
            "options => options.map(o => o.value)"
        )
        assert sorted(options) == ["gpt-alias", "gpt-test"]
        await page.get_by_role("link", name="Models", exact=True).click()
        routing = page.locator("section", has_text="How each model group is routed")
        await routing.get_by_role("cell", name="gpt-test", exact=True).wait_for()
        assert await routing.locator("tbody tr").count() == 1
        await page.context.close()
