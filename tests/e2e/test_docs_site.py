"""The documentation site builds strictly with no network and works from disk, search included.

``mkdocs build --strict`` runs with every proxy variable pointing at a closed port, so a plugin
that tried to download something (fonts, a CDN script) would fail the build. The built HTML
must load nothing from another host; search must work from ``file://`` in a real browser
(Debian's chromium) with every request that is not a local file refused.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Route, expect

from orchestrator.settings import Settings
from tests.conftest import REPO_ROOT
from tests.unit.test_reference_docs import cli_commands

pytestmark = pytest.mark.e2e

CLOSED = "http://127.0.0.1:9"
#: Attributes that make a browser fetch something as the page loads.
LOADED = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "iframe": ("src",),
    "audio": ("src",),
    "video": ("src", "poster"),
}
#: <link rel=...> kinds that are only links to follow, not resources.
NAVIGATION_RELS = {"next", "prev", "canonical", "alternate", "author", "license"}
EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
CSS_EXTERNAL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])(?:https?:)?//""", re.IGNORECASE)


class LoadedResources(HTMLParser):
    """Collects what a page would load: script/style/font/image URLs, inline CSS urls."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "link" and set(values.get("rel", "").split()) <= NAVIGATION_RELS:
            return
        self.urls += [values[name] for name in LOADED.get(tag, ()) if name in values]
        if "style" in values:
            self.styles.append(values["style"])
        self._in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",
        **{name: CLOSED for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
        **{name.lower(): CLOSED for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
        "NO_PROXY": "",
        "no_proxy": "",
    }
    mkdocs = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    result = subprocess.run(
        [*mkdocs, "--config-file", str(REPO_ROOT / "mkdocs.yml")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def html_pages(site: Path) -> Iterator[Path]:
    return site.rglob("*.html")


def test_pages_load_nothing_from_another_host(site: Path) -> None:
    external: list[str] = []
    for page in html_pages(site):
        parser = LoadedResources()
        parser.feed(page.read_text(encoding="utf-8"))
        external += [f"{page.name}: {url}" for url in parser.urls if EXTERNAL.match(url)]
        external += [f"{page.name}: {css}" for css in parser.styles if CSS_EXTERNAL.search(css)]
    for sheet in site.rglob("*.css"):
        if CSS_EXTERNAL.search(sheet.read_text(encoding="utf-8")):
            external.append(sheet.name)
    assert external == []
    # No web font at all: the theme uses the system's fonts.
    settings = (site / "reference" / "settings.html").read_text(encoding="utf-8")
    assert "fonts.googleapis" not in settings
    assert "fonts.gstatic" not in settings


def test_search_index_is_built_for_reading_from_disk(site: Path) -> None:
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    locations = {doc["location"] for doc in index["docs"]}
    assert "reference/settings.html#deeptag_retry_window_s" in locations
    # From file:// the browser cannot fetch JSON; the offline plugin inlines it as a script.
    inlined = (site / "search" / "search_index.js").read_text(encoding="utf-8")
    assert inlined.startswith("var __index = ")


def test_reference_pages_are_in_the_site(site: Path) -> None:
    settings = (site / "reference" / "settings.html").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f'id="deeptag_{name}"' not in settings]
    assert missing == []
    cli = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    for command in cli_commands():
        assert f'id="{command.replace(" ", "-")}"' in cli
    http = (site / "reference" / "http-api.html").read_text(encoding="utf-8")
    assert 'id="post-predict"' in http
    assert 'href="deepdetect.html"' in http


def test_search_works_from_disk_with_no_network(site: Path, browser: Browser) -> None:
    refused: list[str] = []

    def only_files(route: Route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context = browser.new_context()
    try:
        context.route("**/*", only_files)
        page = context.new_page()
        page.goto((site / "index.html").as_uri())
        search = page.locator("input.md-search__input")
        search.click()
        search.press_sequentially("retry window", delay=30)
        hit = page.locator(".md-search-result__item a[href*='deeptag_retry_window_s']")
        expect(hit.first).to_be_visible(timeout=30_000)
    finally:
        context.close()
    assert refused == []
