"""Playwright (Python) on the machine's Chromium: Debian's `chromium` package, which tests/run
installs when missing. Playwright never downloads a browser here; without one the browser
tests skip and say why."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

ROOT = Path(__file__).resolve().parents[3]
# Where the run writes a screenshot of each page (README shows two, from docs/screenshots/).
SCREENSHOTS = Path(
    os.environ.get("SWITCHBOARD_SCREENSHOTS", ROOT / "build" / "console-screenshots")
)
CANDIDATES = ("chromium", "chromium-browser")
# How long a page's step may take before the test fails (Playwright's default is 30 s).
WAIT_MS = 15_000


def chromium_path() -> str | None:
    named = os.environ.get("SWITCHBOARD_CHROMIUM")
    if named:
        return named if Path(named).exists() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> str:
    try:
        import playwright.async_api  # noqa: F401  (only whether it is installed)
    except ImportError:
        pytest.skip("the Python `playwright` package is not installed (pip install -e '.[dev]')")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium on this machine: tests/run installs Debian's `chromium`")
    return path


@asynccontextmanager
async def chromium(executable: str) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # As root in a container Chromium's sandbox cannot start; the pages are our own.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(
    browser: Browser, *, width: int = 1280, height: int = 900, accept_downloads: bool = False
) -> Page:
    """A page in a context of its own (its own cookies: a fresh sign-in) at `width` x
    `height`. The caller closes `page.context`."""
    context = await browser.new_context(
        viewport={"width": width, "height": height}, accept_downloads=accept_downloads
    )
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    return page
