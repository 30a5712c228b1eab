"""What the end-to-end tests share: Debian's chromium driven by playwright, a page per test;
`deeptag` commands with a lingering Triton."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from orchestrator.triton.lingering import stop_current
from tests.lingering_support import Lingering

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium): no browser to drive")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    crashes: list[str] = []
    page.on("pageerror", lambda error: crashes.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert crashes == [], f"uncaught errors in the page: {crashes}"


@pytest.fixture
def lingering(exported_model: Path, tmp_path: Path) -> Iterator[Lingering]:
    """deeptag commands in a fresh data directory, lingering on; what they leave is stopped."""
    world = Lingering(tmp_path / "data", idle_s=120)
    yield world
    # Whatever a failed test left running is stopped here, by the pid in its state file.
    stop_current(world.paths.state.parent)
