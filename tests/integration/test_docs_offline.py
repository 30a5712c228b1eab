"""``/docs`` on a real `deeptag serve` works with no network: every asset comes from it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import DeeptagServer, ServerFactory

pytestmark = pytest.mark.integration

API_KEY = "docs-test-key"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def server(start_deeptag: ServerFactory) -> DeeptagServer:
    # With an API key: the page and its assets stay public, as the schema they read is.
    return start_deeptag({"DEEPTAG_API_KEY": API_KEY, "DEEPTAG_SEARCH_BACKEND": "embedded"})


def referenced_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*'([^']+)'""", html)


def test_docs_reference_only_this_server(server: DeeptagServer) -> None:
    answer = httpx.get(f"{server.url}/docs", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    urls = [src or url for src, url in referenced_urls(answer.text)]
    assert sorted(urls) == [
        "/docs/assets/favicon.png",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/openapi.json",
    ]
    assert "cdn" not in answer.text.lower()
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert re.search(r"script-src 'self' 'sha256-[A-Za-z0-9+/=]+'", policy)


@pytest.mark.parametrize(
    ("path", "content_type", "starts"),
    [
        ("/docs/assets/swagger-ui-bundle.js", "text/javascript", b"/*! For license"),
        ("/docs/assets/swagger-ui.css", "text/css", b".swagger-ui"),
        ("/docs/assets/favicon.png", "image/png", b"\x89PNG"),
        ("/openapi.json", "application/json", b'{"openapi":"3.1'),
    ],
)
def test_each_asset_answers_with_its_type(
    server: DeeptagServer, path: str, content_type: str, starts: bytes
) -> None:
    answer = httpx.get(f"{server.url}{path}", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(content_type)
    assert answer.content.startswith(starts)


def test_only_the_known_assets_are_served(server: DeeptagServer) -> None:
    for name in ("index.html", "redoc.standalone.js", "..%2F..%2Fcore.py", "core.py"):
        answer = httpx.get(f"{server.url}/docs/assets/{name}", timeout=30)
        assert answer.status_code == 404, name
    # The API itself still wants the key.
    assert httpx.get(f"{server.url}/search", timeout=30).status_code == 401


@pytest.mark.e2e
def test_swagger_ui_renders_the_api_in_a_browser_without_network(server: DeeptagServer) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium): no browser to drive")
    from playwright.sync_api import Route, expect, sync_playwright

    elsewhere: list[str] = []
    problems: list[str] = []

    def only_this_server(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_this_server)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{server.url}/docs")
            # The operations are drawn from the schema: Swagger UI ran and read it.
            expect(page.locator(".opblock-summary-path", has_text="/search").first).to_be_visible(
                timeout=30_000
            )
            expect(page.locator(".title").first).to_contain_text("deeptag")
        finally:
            browser.close()
    assert elsewhere == []
    assert problems == []
