"""The console in a real browser (issue #21): sign in, create a key with a budget, see it
listed, block it, chat in the playground, open each page, sign out; the cookie's flags and a
call without the CSRF token, as the browser sees them. A screenshot of each page is written to
`build/console-screenshots/` (or $SWITCHBOARD_SCREENSHOTS)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.broker.console.browser import SCREENSHOTS, chromium, require_browser
from tests.broker.console.conftest import MASTER
from tests.broker.harness import RunningFrontDoor

pytestmark = pytest.mark.timeout(180)
WAIT_MS = 15_000


async def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def sign_in(page: Any, url: str, key: str) -> None:
    await page.goto(url + "/ui")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


async def test_sign_in_create_block_chat_and_sign_out_in_chromium(door: RunningFrontDoor) -> None:
    executable = require_browser()
    async with chromium(executable) as browser:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)
        await page.goto(door.url + "/ui")
        await shot(page, "signin")
        await sign_in(page, door.url, MASTER)
        await page.get_by_role("heading", name="Keys").wait_for()

        # The cookie: HttpOnly, SameSite=Strict, and no key in it or in the page's storage.
        cookies = {c["name"]: c for c in await context.cookies()}
        assert cookies["sb_console"]["httpOnly"] is True
        assert cookies["sb_console"]["sameSite"] == "Strict"
        assert MASTER not in cookies["sb_console"]["value"]
        assert await page.evaluate("document.cookie") == ""
        stored = await page.evaluate(
            "JSON.stringify(localStorage) + JSON.stringify(sessionStorage)"
        )
        assert MASTER not in stored

        # Create a key with a budget: shown once, then listed with its budget.
        await page.locator("#new-alias").fill("browser-key")
        await page.locator("#new-max_budget").fill("5")
        await page.get_by_role("button", name="Create key").click()
        new_key = await page.get_by_test_id("new-key").text_content()
        assert new_key is not None and new_key.startswith("sk-")
        row = page.locator("tr", has_text="browser-key")
        await row.get_by_text("/ $5.00").wait_for()
        await shot(page, "keys")

        # The API's own validation message, as it comes (the alias is taken).
        await page.locator("#new-alias").fill("browser-key")
        await page.get_by_role("button", name="Create key").click()
        await page.locator(".alert.error").filter(has_text="is taken").wait_for()

        # Block it.
        await row.get_by_role("button", name="Block").click()
        await row.locator(".badge.blocked").wait_for()

        # A call without the CSRF token is refused, even from the console's own origin.
        status = await page.evaluate(
            "fetch('/ui/api/call/key/list', {credentials: 'same-origin'}).then(r => r.status)"
        )
        assert status == 403

        # The playground: a streamed answer and the gateway's headers beside it.
        await page.get_by_role("link", name="Playground").click()
        await page.locator("#play-model").select_option("gpt-test")
        await page.locator("#play-prompt").fill("hello from the browser")
        await page.get_by_role("button", name="Send").click()
        await page.get_by_test_id("facts").get_by_text("deployment").wait_for()
        await page.wait_for_function(
            "document.querySelector('[data-testid=answer]').textContent.length > 0"
        )
        await shot(page, "playground")

        # The request inspector opens on that request's id.
        await page.get_by_role("link", name="Inspect this request").click()
        await page.get_by_role("heading", name="Request inspector").wait_for()
        assert (await page.locator("#inspect-id").input_value()).startswith("req_")

        for link, heading in [
            ("Teams", "Teams"),
            ("Users", "Users"),
            ("Spend", "Spend"),
            ("Live", "Live"),
            ("Models", "Models"),
            ("Request inspector", "Request inspector"),
        ]:
            await page.get_by_role("link", name=link, exact=True).click()
            await page.get_by_role("heading", name=heading, exact=True).wait_for()
            await page.wait_for_load_state("networkidle")
            await shot(page, link.lower().replace(" ", "-"))
            if link in ("Spend", "Live"):  # Chart.js drew its chart
                assert await page.locator("canvas").count() == 1

        # Sign out: back to the form, and the session is gone server-side.
        await page.get_by_role("button", name="Sign out").click()
        await page.get_by_label("API key").wait_for()
        status = await page.evaluate(
            "fetch('/ui/api/session').then(r => r.json()).then(d => d.signed_in)"
        )
        assert status is False
        await context.close()


async def test_the_console_works_on_a_phone_sized_screen(door: RunningFrontDoor) -> None:
    executable = require_browser()
    async with chromium(executable) as browser:
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)
        await sign_in(page, door.url, MASTER)
        await page.get_by_role("heading", name="Keys").wait_for()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, "the page scrolls sideways on a phone"
        await shot(page, "keys-phone")
        await context.close()
