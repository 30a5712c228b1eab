"""The search page's Duplicates view in a real browser (Debian's chromium driven by playwright)
against a real ``deeptag serve`` and Triton: a folder indexed with ``deeptag index`` holding an
exact copy (one photo at two paths) and a near duplicate (a photo and its half-size JPEG), shown
as two groups with the keeper marked; paging, the empty and error states, the API key; and
``GET /duplicates`` paging and validation over plain HTTP."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Route, expect

from orchestrator.triton.launcher import LocalTriton
from tests.conftest import ServerFactory
from tests.e2e.conftest import TIMEOUT_MS
from tests.e2e.test_browser import index_with_cli, sha256

pytestmark = pytest.mark.e2e

KEY = "open-sesame"
MOVE_LINE = "To move duplicates aside: deeptag duplicates FOLDER --move-to DIR (undoable)."
# What the page writes between width and height, and between the first and last group shown.
TIMES, DASH = "\N{MULTIPLICATION SIGN}", "\N{EN DASH}"


@dataclass
class Library:
    url: str
    folder: Path
    ids: dict[str, str]  # file name -> document id


@pytest.fixture(scope="module")
def library(
    start_deeptag: ServerFactory,
    triton: LocalTriton,
    samples: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Library:
    """Pictures/ with chelsea.png twice (backup/ holds the newer copy), coffee.png and its
    300x200 JPEG, and an unrelated photo; indexed with the CLI, then served."""
    base = tmp_path_factory.mktemp("duplicates")
    folder = base / "Pictures"
    (folder / "backup").mkdir(parents=True)
    shutil.copyfile(samples["chelsea"], folder / "chelsea.png")
    shutil.copyfile(samples["chelsea"], folder / "backup" / "chelsea.png")
    older = (folder / "chelsea.png").stat().st_mtime
    os.utime(folder / "backup" / "chelsea.png", (older + 3600, older + 3600))
    shutil.copyfile(samples["coffee"], folder / "coffee.png")
    with Image.open(samples["coffee"]) as coffee:
        small = coffee.convert("RGB").resize((coffee.width // 2, coffee.height // 2))
        small.save(folder / "coffee-small.jpg", "JPEG", quality=90)
    shutil.copyfile(samples["rocket"], folder / "rocket.jpg")
    data_dir = base / "data"
    index_with_cli(folder, data_dir, triton)
    server = start_deeptag({"DEEPTAG_DATA_DIR": str(data_dir)})
    ids = {
        name: sha256((folder / name).read_bytes())
        for name in ("chelsea.png", "coffee.png", "coffee-small.jpg")
    }
    return Library(server.url, folder, ids)


Params = dict[str, str | int]


def duplicates(url: str, params: Params | None = None, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{url}/duplicates", params=params, headers=headers, timeout=60)


# --- GET /duplicates over HTTP ----------------------------------------------------------------


def test_the_api_groups_the_exact_copy_and_the_resized_copy_keeper_first(library: Library) -> None:
    answer = duplicates(library.url)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["total"], body["unhashed"]) == (2, 0), body
    exact, near = body["groups"]  # as many members each: by the keeper's location
    assert exact["kind"] == "exact"
    assert [m["location"] for m in exact["members"]] == [
        str(library.folder / "chelsea.png"),
        str(library.folder / "backup" / "chelsea.png"),
    ]
    assert {m["id"] for m in exact["members"]} == {library.ids["chelsea.png"]}
    assert near["kind"] == "near"
    assert near["keeper"] == str(library.folder / "coffee.png")
    assert near["why"] == "most pixels (600x400)"
    keeper, small = near["members"]
    assert (keeper["keeper"], keeper["width"], keeper["height"]) == (True, 600, 400)
    assert (small["keeper"], small["width"], small["height"]) == (False, 300, 200)
    assert small["id"] == library.ids["coffee-small.jpg"]


def test_the_api_pages_with_from_and_size(library: Library) -> None:
    everything = duplicates(library.url).json()["groups"]
    pages = [duplicates(library.url, {"size": 1, "from": n}).json() for n in (0, 1, 2)]
    assert [p["total"] for p in pages] == [2, 2, 2]
    assert [p["groups"] for p in pages] == [everything[:1], everything[1:], []]
    assert duplicates(library.url, {"size": 0}).json()["groups"] == []


@pytest.mark.parametrize("params", [{"threshold": 2}, {"threshold": "high"}, {"size": -1}])
def test_the_api_refuses_bad_parameters_with_400(library: Library, params: Params) -> None:
    answer = duplicates(library.url, params)
    assert answer.status_code == 400, answer.text
    name = next(iter(params))
    assert name in answer.json()["status"]["dd_msg"]


# --- The page ---------------------------------------------------------------------------------


def wait_for_thumbnails(page: Page) -> None:
    page.wait_for_function(
        """() => [...document.querySelectorAll('#dup-groups img')].every(
                 (img) => img.complete && img.naturalWidth > 0)"""
    )


def test_the_duplicates_view_shows_both_groups_with_the_keeper_marked(
    page: Page, library: Library, tmp_path: Path
) -> None:
    page.goto(library.url)
    expect(page.locator("#summary")).to_contain_text("indexed")
    page.get_by_role("link", name="Duplicates", exact=True).click()
    expect(page).to_have_url(re.compile(r"/\?view=duplicates$"))
    expect(page.get_by_role("link", name="Duplicates", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.locator("#results")).to_be_hidden()
    groups = page.locator("#dup-groups > li.dup-group")
    expect(groups).to_have_count(2)
    expect(page.locator("#dup-summary")).to_have_text("2 groups of duplicates")

    exact = page.locator("#dup-groups > li.dup-group").filter(has_text="Exact copy")
    expect(exact.locator(".dup-title")).to_have_text("Exact copy the same file at 2 locations")
    members = exact.locator(".dup-member")
    expect(members).to_have_count(2)
    expect(members.nth(0)).to_contain_text(str(library.folder / "chelsea.png"))
    expect(members.nth(0).locator(".badge")).to_have_text("Keep")
    expect(members.nth(1)).to_contain_text(str(library.folder / "backup" / "chelsea.png"))
    expect(members.nth(1).locator(".badge")).to_have_count(0)

    near = page.locator("#dup-groups > li.dup-group").filter(has_text="Near duplicate")
    expect(near.locator(".dup-title")).to_have_text("Near duplicate 2 files of one picture")
    keeper, small = near.locator(".dup-member").nth(0), near.locator(".dup-member").nth(1)
    expect(keeper.locator(".keep")).to_have_text("Keep most pixels (600x400)")
    expect(keeper.locator(".location")).to_have_text(str(library.folder / "coffee.png"))
    expect(keeper.locator(".facts")).to_have_text(re.compile(rf"^600{TIMES}400 · [\d.]+ kB · PNG$"))
    expect(small.locator(".badge")).to_have_count(0)
    expect(small.locator(".location")).to_have_text(str(library.folder / "coffee-small.jpg"))
    expect(small.locator(".facts")).to_have_text(re.compile(rf"^300{TIMES}200 · [\d.]+ kB · JPEG$"))
    # The name opens the full image; the thumbnails come from /thumbnails like the results'.
    expect(small.locator(".location")).to_have_attribute(
        "href", f"./images/{library.ids['coffee-small.jpg']}"
    )
    expect(small.locator("img")).to_have_attribute(
        "src", f"./thumbnails/{library.ids['coffee-small.jpg']}"
    )
    wait_for_thumbnails(page)

    # What it says about moving, and nothing on the page moves or deletes a file.
    expect(page.locator("#dup-move")).to_have_text(MOVE_LINE)
    expect(page.locator("#duplicates").get_by_role("button")).to_have_count(0)
    expect(page.locator("#dup-unhashed")).to_be_hidden()
    expect(page.locator("#dup-empty")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "duplicates.png"), full_page=True)

    # Back to searching, and with the browser's back button to the duplicates again.
    page.get_by_role("link", name="Search", exact=True).click()
    expect(page.locator("#duplicates")).to_be_hidden()
    expect(page.locator("#results > li.card")).to_have_count(4)  # chelsea.png once
    expect(page.get_by_role("link", name="Search", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    page.go_back()
    expect(page.locator("#dup-groups > li.dup-group")).to_have_count(2)
    expect(page.locator("#results")).to_be_hidden()


def test_a_search_from_the_duplicates_view_shows_its_results(page: Page, library: Library) -> None:
    page.goto(f"{library.url}/?view=duplicates")
    expect(page.locator("#dup-groups > li.dup-group")).to_have_count(2)
    page.get_by_label("Search images").fill("espresso")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#summary")).to_contain_text("match “espresso”")
    expect(page.locator("#duplicates")).to_be_hidden()
    expect(page.locator("#results > li.card").first).to_be_visible()


def test_groups_are_paged_with_next_and_previous(page: Page, library: Library) -> None:
    # One group a page instead of twenty: the page pages by what it is given.
    asked: list[str] = []

    def one_per_page(route: Route) -> None:
        asked.append(route.request.url)
        route.continue_(url=route.request.url.replace("size=20", "size=1"))

    page.route("**/duplicates?*", one_per_page)
    page.goto(f"{library.url}/?view=duplicates")
    groups = page.locator("#dup-groups > li.dup-group")
    expect(groups).to_have_count(1)
    expect(groups).to_contain_text("Exact copy")
    expect(page.locator("#dup-summary")).to_have_text(f"2 groups of duplicates · 1{DASH}1 shown")
    previous = page.get_by_role("button", name="Previous")
    following = page.get_by_role("button", name="Next")
    expect(previous).to_be_hidden()
    following.click()
    expect(groups).to_contain_text("Near duplicate")
    expect(page.locator("#dup-summary")).to_have_text(f"2 groups of duplicates · 2{DASH}2 shown")
    expect(following).to_be_hidden()
    previous.click()
    expect(groups).to_contain_text("Exact copy")
    offsets = [re.findall(r"from=\d+", url) for url in asked]
    assert offsets == [["from=0"], ["from=1"], ["from=0"]]


def test_images_not_compared_are_counted_with_how_to_add_them(page: Page, library: Library) -> None:
    def three_unhashed(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "unhashed": 3})

    page.route("**/duplicates?*", three_unhashed)
    page.goto(f"{library.url}/?view=duplicates")
    expect(page.locator("#dup-unhashed")).to_have_text(
        "3 images indexed before perceptual hashes were not compared: "
        "deeptag index --refresh-metadata FOLDER adds them."
    )
    expect(page.locator("#dup-groups > li.dup-group")).to_have_count(2)


def test_a_server_error_is_shown_with_its_message(page: Page, library: Library) -> None:
    status = {
        "code": 503,
        "msg": "ServiceUnavailable",
        "dd_code": 1011,
        "dd_msg": "Service Unavailable: the search backend is unreachable",
    }
    page.route(
        "**/duplicates?*",
        lambda route: route.fulfill(
            status=503, content_type="application/json", body=json.dumps({"status": status})
        ),
    )
    page.goto(f"{library.url}/?view=duplicates")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("the search backend is unreachable (HTTP 503)")
    expect(page.locator("#dup-summary")).to_have_text("Duplicates could not be listed.")
    expect(page.locator("#dup-move")).to_be_visible()
    expect(page.locator("#dup-groups > li")).to_have_count(0)


def test_the_phone_layout_does_not_scroll_sideways(
    browser: Browser, library: Library, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{library.url}/?view=duplicates")
        expect(page.locator("#dup-groups > li.dup-group")).to_have_count(2)
        wait_for_thumbnails(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(tmp_path / "duplicates-phone.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture(scope="module")
def keyed_empty(start_deeptag: ServerFactory) -> str:
    return start_deeptag({"DEEPTAG_API_KEY": KEY}).url


def test_with_an_api_key_nothing_indexed_says_no_duplicates_found(
    page: Page, keyed_empty: str
) -> None:
    assert duplicates(keyed_empty).status_code == 401
    answer = duplicates(keyed_empty, key=KEY)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"total": 0, "groups": [], "unhashed": 0}

    page.goto(f"{keyed_empty}/?view=duplicates")
    key_input = page.get_by_label("This server needs an API key")
    expect(key_input).to_be_visible()
    key_input.fill(KEY)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#key-form")).to_be_hidden()
    expect(page.locator("#dup-empty")).to_have_text("No duplicates found.")
    expect(page.locator("#dup-groups > li")).to_have_count(0)
    expect(page.locator("#dup-move")).to_be_visible()
    expect(page.get_by_role("alert")).to_be_hidden()
