"""The search page in a real browser (Debian's chromium driven by playwright) against a real
``deeptag serve`` and Triton: photos indexed with ``deeptag index`` shown with no setting,
search, more like this, search by example, add images, API key, phone layout, and the README's
screenshot."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageOps
from playwright.sync_api import Browser, Page, expect

from orchestrator.samples import sample_dir
from orchestrator.triton.launcher import LocalTriton
from tests.conftest import REPO_ROOT, DeeptagServer, ServerFactory, jpeg_bytes
from tests.e2e.conftest import TIMEOUT_MS

pytestmark = pytest.mark.e2e

SCREENSHOT = REPO_ROOT / "docs" / "search.png"
# The sample photos, and a few more of scikit-image's, so the grid of the screenshot is full.
EXTRA_PHOTOS = ("motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "camera.png")
DEEPTAG = [sys.executable, "-m", "orchestrator"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Site:
    server: DeeptagServer
    ids: dict[str, str]  # sample name -> document id
    photos: dict[str, Path]

    def total(self) -> int:
        answer = httpx.get(f"{self.server.url}/search", params={"q": "*"}, timeout=30)
        total: int = answer.json()["total"]
        return total


def index_by_path(server: DeeptagServer, paths: list[Path], key: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = httpx.post(
        f"{server.url}/index",
        json={"data": [str(p) for p in paths]},
        headers=headers,
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["indexed"], body["failed"]) == (len(paths), []), body


def index_with_cli(folder: Path, data_dir: Path, triton: LocalTriton) -> None:
    """``deeptag index FOLDER`` into the embedded index under ``data_dir``, as a user runs it."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")},
        "DEEPTAG_TRITON_URL": triton.http_url,
        "DEEPTAG_DATA_DIR": str(data_dir),
        "DEEPTAG_SEARCH_BACKEND": "embedded",
    }
    result = subprocess.run(
        [*DEEPTAG, "index", str(folder), "--failures", str(data_dir / "failures.jsonl")],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert " 0 failed" in result.stderr, result.stderr


@pytest.fixture(scope="module")
def site(
    browser: Browser,
    start_deeptag: ServerFactory,
    triton: LocalTriton,
    samples: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Site:
    """A user's folder of photos indexed with the CLI, then served with no DEEPTAG_IMAGE_ROOTS."""
    base = tmp_path_factory.mktemp("home")
    folder = base / "Pictures"
    folder.mkdir()
    originals = dict(samples)
    for name in EXTRA_PHOTOS:
        originals[name.split(".")[0]] = sample_dir() / name
    photos = {}
    for name, original in originals.items():
        photos[name] = folder / original.name
        shutil.copyfile(original, photos[name])
    data_dir = base / "data"
    index_with_cli(folder, data_dir, triton)
    server = start_deeptag({"DEEPTAG_DATA_DIR": str(data_dir)})
    ids = {name: sha256(path.read_bytes()) for name, path in photos.items()}
    return Site(server, ids, photos)


def search(page: Page, query: str) -> None:
    page.get_by_label("Search images").fill(query)
    page.get_by_role("button", name="Search", exact=True).click()


def first_card_id(page: Page) -> str:
    card = page.locator("#results > li.card").first
    expect(card).to_be_visible()
    value = card.get_attribute("data-id")
    assert value is not None
    return value


def wait_for_images(page: Page) -> None:
    """Every thumbnail of the grid has loaded and has pixels."""
    page.wait_for_function(
        """() => [...document.querySelectorAll('#results img')].every(
                 (img) => img.complete && img.naturalWidth > 0)"""
    )


def test_photos_indexed_with_the_cli_show_with_their_names_and_open_full_size(
    page: Page, site: Site
) -> None:
    page.goto(site.server.url)
    expect(page.locator("#summary")).to_contain_text("indexed")
    search(page, "*")
    cards = page.locator("#results > li.card")
    expect(cards.first).to_be_visible()
    wait_for_images(page)
    widths = cards.evaluate_all(
        """(cards) => Object.fromEntries(
               cards.map((c) => [c.dataset.id, c.querySelector('img').naturalWidth]))"""
    )
    for name, doc_id in site.ids.items():
        assert widths.get(doc_id, 0) > 0, f"{name}: the thumbnail did not load"
    coffee = page.locator(f'#results > li.card[data-id="{site.ids["coffee"]}"]')
    name = coffee.get_by_role("link", name="coffee.png")
    expect(name).to_be_visible()
    href = name.get_attribute("href")
    assert href is not None
    full = page.request.get(f"{site.server.url}/{href.removeprefix('./')}")
    assert full.status == 200
    assert full.headers["content-type"] == "image/png"
    assert sha256(full.body()) == site.ids["coffee"]
    # Clicking the name opens the full image in a new tab.
    with page.expect_popup() as popup_info:
        name.click()
    popup = popup_info.value
    popup.wait_for_load_state()
    popup.wait_for_function("() => document.images.length && document.images[0].complete")
    assert popup.evaluate("document.images[0].naturalWidth") == 600  # coffee.png is 600x400
    popup.close()


def test_a_word_finds_the_coffee_photo_first_with_labels_and_timing(page: Page, site: Site) -> None:
    page.goto(site.server.url)
    search(page, "espresso")
    summary = page.locator("#summary")
    expect(summary).to_contain_text("match “espresso”")
    expect(summary).to_contain_text(re.compile(r"\d+(\.\d+)? ms"))
    assert first_card_id(page) == site.ids["coffee"]
    first = page.locator("#results > li.card").first
    expect(first.locator(".chip").first).to_contain_text(re.compile(r"espresso \d+%"))
    wait_for_images(page)
    assert "q=espresso" in page.url


def test_a_page_of_few_results_has_no_empty_band_and_its_placeholder_fits(
    page: Page, site: Site
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(site.server.url)
    search(page, "espresso")
    expect(page.locator("#summary")).to_contain_text("match “espresso”")
    # The results start right under the header, however few they are (the page's grid once
    # stretched its header rows to fill the window, leaving a band of nothing).
    gap = page.evaluate(
        """() => document.querySelector('.toolbar').getBoundingClientRect().top
                 - document.querySelector('header.top').getBoundingClientRect().bottom"""
    )
    assert gap < 48, f"{gap:.0f} px between the header and the results"
    # The search box's hint is read whole, not cut off.
    spare = page.evaluate(
        """() => {
             const box = document.getElementById('q');
             const style = getComputedStyle(box);
             const context = document.createElement('canvas').getContext('2d');
             context.font = `${style.fontSize} ${style.fontFamily}`;
             const text = context.measureText(box.placeholder).width;
             const room = box.clientWidth - parseFloat(style.paddingLeft)
               - parseFloat(style.paddingRight);
             return room - text;
           }"""
    )
    assert spare >= 0, f"the placeholder needs {-spare:.0f} px more than the box has"


def test_more_like_this_puts_the_image_itself_first(page: Page, site: Site) -> None:
    page.goto(f"{site.server.url}/?q=espresso")
    assert first_card_id(page) == site.ids["coffee"]
    page.locator("#results > li.card").first.get_by_role("button", name="More like this").click()
    expect(page.locator("#summary")).to_contain_text("like")
    expect(page.locator(".similarity").first).to_contain_text("similar")
    assert first_card_id(page) == site.ids["coffee"]
    assert f"like={site.ids['coffee']}" in page.url
    # Back to the word search with the browser's back button.
    page.go_back()
    expect(page.locator("#summary")).to_contain_text("match “espresso”")


def test_an_uploaded_mirrored_copy_finds_the_original_and_is_not_indexed(
    page: Page, site: Site, tmp_path: Path
) -> None:
    mirrored = tmp_path / "mirrored-coffee.jpg"
    ImageOps.mirror(Image.open(site.photos["coffee"]).convert("RGB")).save(mirrored, "JPEG")
    before = site.total()
    page.goto(site.server.url)
    expect(page.locator("#summary")).to_contain_text("indexed")
    page.set_input_files("#example-file", str(mirrored))
    expect(page.locator("#summary")).to_contain_text("like")
    expect(page.locator("#summary")).to_contain_text("mirrored-coffee.jpg")
    assert first_card_id(page) == site.ids["coffee"]
    assert site.total() == before


DROP_FILE = """
async ([target, name, b64]) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
    const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
    document.body.dispatchEvent(new DragEvent("dragenter", init));
    const overlay = document.getElementById("drop");
    if (overlay.hidden) throw new Error("the drop overlay did not open");
    document.getElementById(target).dispatchEvent(new DragEvent("drop", init));
}
"""


def test_dropping_an_image_on_search_by_image_searches_with_it(page: Page, site: Site) -> None:
    mirrored = io.BytesIO()
    ImageOps.mirror(Image.open(site.photos["coffee"]).convert("RGB")).save(mirrored, "JPEG")
    page.goto(site.server.url)
    expect(page.locator("#summary")).to_contain_text("indexed")
    payload = base64.b64encode(mirrored.getvalue()).decode()
    page.evaluate(DROP_FILE, ["drop-search", "dropped.jpg", payload])
    expect(page.locator("#drop")).to_be_hidden()
    expect(page.locator("#summary")).to_contain_text("dropped.jpg")
    assert first_card_id(page) == site.ids["coffee"]


def test_a_query_without_hits_says_so(page: Page, site: Site) -> None:
    page.goto(site.server.url)
    search(page, "zzzznotathing")
    empty = page.locator("#empty")
    expect(empty).to_be_visible()
    expect(empty).to_contain_text("No images match “zzzznotathing”")
    expect(page.locator("#results > li")).to_have_count(0)
    expect(page.locator("#more")).to_be_hidden()


def test_server_errors_are_shown_with_their_message(page: Page, site: Site) -> None:
    page.goto(site.server.url)
    search(page, "categories.score:>>")
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("HTTP 400")


def test_add_images_indexes_files_with_progress_and_summary(
    page: Page, site: Site, tmp_path: Path
) -> None:
    new = []
    for i, angle in enumerate((90, 180, 270)):
        path = tmp_path / f"turned-{i}.jpg"
        Image.open(site.photos["chelsea"]).convert("RGB").rotate(angle, expand=True).save(path)
        new.append(path)
    duplicate = tmp_path / "coffee-again.png"
    duplicate.write_bytes(site.photos["coffee"].read_bytes())
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image at all\n" * 10)
    files = [*new, duplicate, notes]  # five files: two requests of at most four
    before = site.total()

    page.goto(site.server.url)
    expect(page.locator("#summary")).to_contain_text("indexed")
    page.set_input_files("#add-files", [str(p) for p in files])
    summary = page.locator("#upload-summary")
    expect(summary).to_be_visible(timeout=60_000)
    expect(page.locator("#upload-totals")).to_contain_text(
        "Indexed 3 · skipped 1 (already indexed) · failed 1"
    )
    expect(page.locator("#upload-failures")).to_contain_text("notes.jpg")
    expect(page.locator("#upload-count")).to_contain_text("5 of 5 files")
    progress = page.locator("#upload-progress")
    assert progress.evaluate("(p) => [p.value, p.max]") == [5, 5]
    assert site.total() == before + 3
    # The grid shows the new images, their thumbnails served from the uploads folder.
    expect(page.locator("#summary")).to_contain_text(f"{before + 3} images indexed")
    wait_for_images(page)
    new_ids = {sha256(p.read_bytes()) for p in new}
    shown = set(page.locator("#results > li.card").evaluate_all("(c) => c.map(x => x.dataset.id)"))
    assert new_ids <= shown
    expect(page.locator("#st-docs")).to_have_text(str(before + 3))


def test_the_phone_layout_does_not_scroll_sideways(browser: Browser, site: Site) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(site.server.url)
        expect(page.locator("#results > li.card").first).to_be_visible()
        wait_for_images(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # A long error message wraps instead of widening the page.
        search(page, "categories.score:>>" + "x" * 200)
        expect(page.get_by_role("alert")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        columns = page.evaluate(
            "getComputedStyle(document.getElementById('results'))"
            ".gridTemplateColumns.split(' ').length"
        )
        assert columns == 2
    finally:
        context.close()


def test_the_status_panel_reports_triton_model_and_index(page: Page, site: Site) -> None:
    page.goto(site.server.url)
    expect(page.locator("#st-triton")).to_have_text("ready")
    expect(page.locator("#st-model")).to_contain_text("efficientnet_lite0")
    expect(page.locator("#st-backend")).to_contain_text("embedded")
    expect(page.locator("#st-docs")).to_have_text(re.compile(r"^\d+$"))
    expect(page.get_by_role("link", name="deeptag metrics")).to_have_attribute("href", "metrics")


def test_screenshot_of_the_results_grid(page: Page, site: Site) -> None:
    page.goto(site.server.url)
    expect(page.locator("#summary")).to_contain_text("indexed")
    search(page, "*")
    expect(page.locator("#results > li.card")).to_have_count(min(site.total(), 24))
    wait_for_images(page)
    expect(page.locator("#st-triton")).to_have_text("ready")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    with Image.open(SCREENSHOT) as shot:
        assert shot.size == (1280, 800)


@pytest.fixture(scope="module")
def keyed_server(browser: Browser, start_deeptag: ServerFactory, samples: dict[str, Path]) -> str:
    server = start_deeptag(
        {"DEEPTAG_IMAGE_ROOTS": str(sample_dir()), "DEEPTAG_API_KEY": "open-sesame"}
    )
    index_by_path(server, [samples["coffee"], samples["rocket"]], key="open-sesame")
    return server.url


def test_with_an_api_key_the_page_asks_for_it_then_works(page: Page, keyed_server: str) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(keyed_server)
    key_input = page.get_by_label("This server needs an API key")
    expect(key_input).to_be_visible()
    expect(page.locator("#results > li")).to_have_count(0)

    key_input.fill("not-the-key")
    key_input.press("Enter")
    expect(page.locator("#key-hint")).to_contain_text("not accepted")

    key_input.fill("open-sesame")
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#key-form")).to_be_hidden()
    expect(page.locator("#results > li.card")).to_have_count(2)
    wait_for_images(page)  # with the cookie POST /session set, not the key
    assert page.evaluate("localStorage.getItem('deeptag.apiKey')") == "open-sesame"
    links = page.evaluate(
        "[...document.querySelectorAll('#results img, #results a')].map((e) => e.src || e.href)"
    )
    assert len(links) >= 4
    assert not [link for link in links if "open-sesame" in link or "key=" in link]
    # Page scripts cannot read the cookie, and other sites cannot make the browser send it.
    session = [c for c in page.context.cookies() if c["name"].startswith("deeptag_session")]
    assert len(session) == 1
    assert (session[0]["httpOnly"], session[0]["sameSite"]) == (True, "Strict")
    assert "open-sesame" not in session[0]["value"]
    assert "deeptag_session" not in page.evaluate("document.cookie")
    expect(page.locator("#st-triton")).to_have_text("ready")

    page.reload()
    expect(page.locator("#results > li.card")).to_have_count(2)
    expect(page.locator("#key-form")).to_be_hidden()
    search(page, "espresso")
    expect(page.locator("#summary")).to_contain_text("match “espresso”")
    wait_for_images(page)
    assert requested
    assert not [url for url in requested if "open-sesame" in url]

    page.get_by_role("button", name="Forget API key").click()
    expect(key_input).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"].startswith("deeptag_session")]


@pytest.fixture(scope="module")
def gone_site(
    browser: Browser, start_deeptag: ServerFactory, samples: dict[str, Path]
) -> tuple[str, str, str]:
    """Two images added as uploads; the file kept for one of them is then deleted."""
    server = start_deeptag({})
    kept, gone = jpeg_bytes(samples["coffee"]), jpeg_bytes(samples["rocket"])
    data = ["data:image/jpeg;base64," + base64.b64encode(b).decode() for b in (kept, gone)]
    answer = httpx.post(f"{server.url}/index", json={"data": data}, timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.json()["indexed"] == 2, answer.text
    (server.log_path.parent / "uploads" / f"{sha256(gone)}.jpg").unlink()
    return server.url, sha256(kept), sha256(gone)


def test_an_image_whose_file_is_gone_shows_a_placeholder_saying_why(
    page: Page, gone_site: tuple[str, str, str]
) -> None:
    url, kept, gone = gone_site
    page.goto(url)
    missing = page.locator(f'#results > li.card[data-id="{gone}"] .unavailable')
    expect(missing).to_contain_text("Image unavailable")
    expect(missing).to_contain_text("the indexed file is gone")
    shown = page.locator(f'#results > li.card[data-id="{kept}"]')
    expect(shown.locator(".name")).to_have_text("Uploaded image")
    shown.locator("img").evaluate(
        "(img) => new Promise((ok) => img.complete ? ok() : img.addEventListener('load', ok))"
    )
    assert shown.locator("img").evaluate("(img) => img.naturalWidth") > 0
    expect(shown.locator(".unavailable")).to_have_count(0)
