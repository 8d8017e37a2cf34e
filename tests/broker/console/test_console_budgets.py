"""Budgets near their limit, for any number of keys (issue #21): the database picks the keys
at or over a share of their budget (`/key/list?min_budget_percent=`), the most used first, a
page at a time; the Spend page shows them so, past the first hundred keys."""

from __future__ import annotations

import pytest

from tests.broker.console.browser import chromium, new_page, require_browser
from tests.broker.console.conftest import MASTER
from tests.broker.console.test_console_browser import shot, sign_in
from tests.broker.harness import RunningFrontDoor
from tests.broker.management.conftest import Api
from workers.db import keys
from workers.db.engine import Database
from workers.db.rows import now

pytestmark = pytest.mark.timeout(180)

NEAR = 105  # more than a page (100)
FAR = 150  # keys under 80 %, or with no budget, made first: the oldest keys


async def seed_keys(database: Database) -> None:
    """FAR keys that are not near their budget, then NEAR keys at 80 % to 100.8 % of it
    (near-000 the least used): the near ones are not among the first hundred keys."""
    stamp = now()
    rows = [
        {"key_alias": f"far-{i:03d}", "spend": 0.5 * (i % 2), "max_budget": 1.0 if i % 3 else None}
        for i in range(FAR)
    ]
    rows += [
        {"key_alias": f"near-{i:03d}", "spend": 8.0 + 0.02 * i, "max_budget": 10.0}
        for i in range(NEAR)
    ]
    async with database.transaction() as conn:
        for values in rows:
            key = keys.new_key()
            await keys.insert(
                conn,
                {
                    "token": keys.hash_token(key),
                    "key_name": keys.display_name(key),
                    "created_at": stamp,
                    "updated_at": stamp,
                    **values,
                },
            )


async def test_the_api_lists_keys_near_their_budget_most_used_first(
    api: Api, console_database: Database
) -> None:
    await seed_keys(console_database)
    near = {"return_full_object": "true", "min_budget_percent": 80, "size": 100}
    first = await api.ok("GET", "/key/list", **near)
    assert first["total_count"] == NEAR and first["total_pages"] == 2
    second = await api.ok("GET", "/key/list", page=2, **near)
    listed = [k["key_alias"] for k in first["keys"] + second["keys"]]
    assert listed == [f"near-{i:03d}" for i in reversed(range(NEAR))]
    # The filter is the database's: 100 % finds the five keys at or over their budget.
    over = await api.ok("GET", "/key/list", min_budget_percent=100, size=100)
    assert over["total_count"] == 5
    for bad in ("lots", "-1", "1001"):
        status, answer = await api.get("/key/list", min_budget_percent=bad)
        assert status == 400 and answer["error"]["param"] == "min_budget_percent", answer


async def test_the_spend_page_pages_through_keys_near_their_budget(
    door: RunningFrontDoor, console_database: Database
) -> None:
    executable = require_browser()
    await seed_keys(console_database)
    async with chromium(executable) as browser:
        page = await new_page(browser)
        await sign_in(page, door.url, MASTER)
        await page.get_by_role("link", name="Spend", exact=True).click()
        near = page.locator("section", has_text="Budgets near their limit")
        await near.get_by_text(f"{NEAR} keys at 80 % of their budget or more").wait_for()
        await near.get_by_text("page 1 of 2").wait_for()
        first = near.locator("tbody tr").first
        assert await first.locator("td").first.text_content() == f"near-{NEAR - 1:03d}"
        assert "101 %" in (await first.text_content() or "")
        assert await near.locator("tbody tr").count() == 100
        await shot(page, "spend-near-budget")
        await near.get_by_role("button", name="Next").click()
        await near.get_by_text("page 2 of 2").wait_for()
        assert await near.locator("tbody tr").count() == 5
        assert await near.get_by_text("near-000", exact=True).count() == 1
        await page.context.close()
