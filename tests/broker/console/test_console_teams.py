"""The Teams and Users pages in a real browser (issue #21: "members and roles, budgets, model
lists"): a proxy admin changes a team's budget and models, a member's role, a user's role,
budget and existence, each through the public API and seen on the page; the API's own
validation message is shown; a team admin's change beyond its role and a plain member's
call are refused with the API's 403."""

from __future__ import annotations

from typing import Any

import pytest

from tests.broker.console.browser import chromium, new_page, require_browser
from tests.broker.console.conftest import MASTER
from tests.broker.console.test_console_browser import shot, sign_in
from tests.broker.harness import RunningFrontDoor
from tests.broker.management.conftest import Api

pytestmark = pytest.mark.timeout(180)


async def seed(api: Api) -> dict[str, Any]:
    """Team `core` ($10, gpt-test only) led by `lead`, with `mo` a plain member; `gone` is a
    user with nothing to do with it."""
    await api.ok("POST", "/team/new", {"team_id": "core", "max_budget": 10, "models": ["gpt-test"]})
    lead = await api.ok("POST", "/user/new", {"user_id": "lead", "teams": ["core"]})
    mo = await api.ok("POST", "/user/new", {"user_id": "mo", "teams": ["core"]})
    await api.ok(
        "POST", "/team/member_update", {"team_id": "core", "user_id": "lead", "role": "admin"}
    )
    await api.ok("POST", "/user/new", {"user_id": "gone", "auto_create_key": False})
    return {"lead": lead["key"], "mo": mo["key"]}


async def members(api: Api) -> dict[str, str]:
    info = await api.ok("GET", "/team/info", team_id="core")
    return {m["user_id"]: m["role"] for m in info["team_info"]["members_with_roles"]}


async def console_post(page: Any, path: str, body: dict[str, Any]) -> int:
    """A call the page's own script could make, with the session's CSRF token."""
    status: int = await page.evaluate(
        """async ([path, body]) => {
            const session = await (await fetch('/ui/api/session')).json();
            const answer = await fetch('/ui/api/call' + path, {method: 'POST',
              headers: {'X-CSRF-Token': session.csrf_token, 'Content-Type': 'application/json'},
              body: JSON.stringify(body)});
            return answer.status;
        }""",
        [path, body],
    )
    return status


async def test_an_admin_edits_a_teams_budget_models_and_a_members_role(
    door: RunningFrontDoor, api: Api
) -> None:
    executable = require_browser()
    await seed(api)
    async with chromium(executable) as browser:
        page = await new_page(browser)
        await sign_in(page, door.url, MASTER)
        await page.get_by_role("link", name="Teams", exact=True).click()
        await page.get_by_role("button", name="core").click()
        summary = page.get_by_test_id("team-summary")
        await summary.get_by_text("/ $10.00").wait_for()

        # The budget and the model list, through /team/update.
        await page.locator("#edit-team-budget").fill("25")
        await page.locator("#edit-team-models").fill("gpt-test, groq-test")
        await page.get_by_role("button", name="Save team").click()
        await page.locator(".alert.ok").filter(has_text="Saved team").wait_for()
        await summary.get_by_text("/ $25.00").wait_for()
        await summary.get_by_text("models: gpt-test, groq-test").wait_for()
        listed = page.locator("tr", has_text="groq-test")
        await listed.get_by_text("/ $25.00").wait_for()
        info = (await api.ok("GET", "/team/info", team_id="core"))["team_info"]
        assert info["max_budget"] == 25 and info["models"] == ["gpt-test", "groq-test"]

        # The API's own validation message, as it comes.
        await page.locator("#edit-team-budget").fill("1e13")
        await page.get_by_role("button", name="Save team").click()
        await page.locator(".alert.error").filter(has_text="max_budget").wait_for()

        # A member's role, through /team/member_update.
        await page.get_by_label("Role of mo").select_option("admin")
        row = page.locator("tr", has_text="mo").filter(has=page.get_by_label("Role of mo"))
        await row.get_by_role("button", name="Set role").click()
        await page.locator(".alert.ok").filter(has_text="mo is now admin").wait_for()
        await page.locator("td[data-label=Role]", has_text="admin").nth(1).wait_for()
        assert await members(api) == {"lead": "admin", "mo": "admin"}
        await shot(page, "teams-edited")

        # Users: a role and a budget through /user/update, a user gone through /user/delete.
        await page.get_by_role("link", name="Users", exact=True).click()
        mo_row = page.locator("tr", has=page.get_by_text("mo", exact=True))
        await mo_row.get_by_role("button", name="Edit").click()
        await page.locator("#edit-user-role").select_option("internal_user_viewer")
        await page.locator("#edit-user-budget").fill("7")
        await page.get_by_role("button", name="Save user").click()
        await mo_row.get_by_text("/ $7.00").wait_for()
        await mo_row.get_by_text("internal_user_viewer").wait_for()
        gone_row = page.locator("tr", has=page.get_by_text("gone", exact=True))
        await gone_row.get_by_role("button", name="Delete").click()
        await gone_row.get_by_role("button", name="Confirm: delete with its keys").click()
        await page.locator(".alert.ok").filter(has_text="Deleted gone").wait_for()
        assert await page.get_by_text("gone", exact=True).count() == 0
        status, _ = await api.get("/user/info", user_id="gone")
        assert status == 404
        await page.context.close()


async def test_a_team_admin_is_refused_a_budget_and_a_member_any_change(
    door: RunningFrontDoor, api: Api
) -> None:
    executable = require_browser()
    seeded = await seed(api)
    async with chromium(executable) as browser:
        page = await new_page(browser)

        # The team's admin may manage its members, not lift its own cap: the API's 403.
        await sign_in(page, door.url, seeded["lead"])
        await page.get_by_role("link", name="Teams", exact=True).click()
        await page.get_by_role("button", name="core").click()
        await page.locator("#edit-team-budget").fill("1000")
        await page.get_by_role("button", name="Save team").click()
        await (
            page.locator(".alert.error")
            .filter(has_text="only a proxy admin may change a team's max_budget")
            .wait_for()
        )
        assert (
            await console_post(page, "/team/update", {"team_id": "core", "max_budget": 1e3}) == 403
        )
        assert await page.get_by_role("link", name="Users", exact=True).count() == 0
        await page.get_by_role("button", name="Sign out").click()

        # A plain member sees no Teams page, and its calls are refused.
        await sign_in(page, door.url, seeded["mo"])
        await page.get_by_role("heading", name="Keys").wait_for()
        assert await page.get_by_role("link", name="Teams", exact=True).count() == 0
        refused: list[tuple[str, dict[str, Any]]] = [
            ("/team/update", {"team_id": "core", "max_budget": 1e3}),
            ("/team/member_update", {"team_id": "core", "user_id": "mo", "role": "admin"}),
            ("/user/update", {"user_id": "mo", "max_budget": 1e3}),
            ("/user/delete", {"user_ids": ["lead"]}),
        ]
        for path, body in refused:
            assert await console_post(page, path, body) == 403, path
        await page.context.close()
    info = (await api.ok("GET", "/team/info", team_id="core"))["team_info"]
    assert info["max_budget"] == 10
    assert await members(api) == {"lead": "admin", "mo": "user"}
