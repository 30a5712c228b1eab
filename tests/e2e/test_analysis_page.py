"""What the analyses found, on the search page in a real browser (Debian's chromium driven by
playwright) against a real ``deeptag serve``: the text read in an image, collapsed on its card
with the words searched for marked; images scored above the safety threshold left out by
"Hide unsafe" (server-side, so the total is right) or shown blurred until clicked. The
embedded index is filled with ready-made documents carrying the analyses: no OCR or safety
model is needed."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect

from orchestrator.samples import sample_dir
from orchestrator.search.base import Category, ImageDocument
from orchestrator.search.documents import now_iso
from tests.conftest import ServerFactory
from tests.e2e.conftest import TIMEOUT_MS
from tests.search_support import NO_TRITON, index_documents, search_settings

pytestmark = pytest.mark.e2e

BOX = [[10, 20], [200, 20], [200, 60], [10, 60]]


def lines(*texts: str) -> list[dict[str, Any]]:
    return [{"text": text, "score": 0.95, "box": BOX} for text in texts]


@dataclass(frozen=True)
class Sample:
    file: str
    label: str
    analyses: dict[str, dict[str, Any]]


SAMPLES = {
    "sign": Sample(
        "coffee.png",
        "n07920052 espresso",
        {
            "ocr": {
                "text": "EMERGENCY EXIT\nkeep this door clear",
                "text_lines": lines("EMERGENCY EXIT", "keep this door clear"),
            },
            "safety": {"nsfw": 0.01},
        },
    ),
    "unsafe": Sample("chelsea.png", "n02123045 tabby, tabby cat", {"safety": {"nsfw": 0.93}}),
    "markup": Sample(
        "rocket.jpg",
        "n04266014 space shuttle",
        {"ocr": {"text": "<b>html</b> & co", "text_lines": lines("<b>html</b> & co")}},
    ),
    "unscored": Sample("astronaut.png", "n09999999 astronaut", {}),
}


def document(sample: Sample) -> ImageDocument:
    path = sample_dir() / sample.file
    with Image.open(path) as image:
        width, height = image.size
    return ImageDocument(
        id=hashlib.sha256(path.read_bytes()).hexdigest(),
        uri=str(path),
        categories=(Category(sample.label, 0.9),),
        tags=tuple(sample.label.split(" ", 1)[1].replace(",", " ").split()),
        embedding=None,
        width=width,
        height=height,
        model="efficientnet_lite0/1",
        indexed_at=now_iso(),
        analyses=sample.analyses,
    )


@dataclass
class Library:
    url: str
    ids: dict[str, str]  # SAMPLES key -> document id


def serve(start_deeptag: ServerFactory, base: Path, documents: Sequence[ImageDocument]) -> str:
    """``deeptag serve`` over an embedded index holding ``documents``, written beforehand."""
    data_dir = base / "data"
    settings = search_settings("embedded", NO_TRITON, "", data_dir, "unused")
    # In a thread of its own: playwright's sync API holds this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        written = pool.submit(index_documents, settings, documents, True).result()
    assert written == [True] * len(documents)
    return start_deeptag(
        {"DEEPTAG_DATA_DIR": str(data_dir), "DEEPTAG_SEARCH_BACKEND": "embedded"}
    ).url


@pytest.fixture(scope="module")
def library(
    browser: Browser, start_deeptag: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Library:
    documents = {name: document(sample) for name, sample in SAMPLES.items()}
    url = serve(start_deeptag, tmp_path_factory.mktemp("analyses"), list(documents.values()))
    return Library(url, {name: doc.id for name, doc in documents.items()})


def card(page: Page, library: Library, name: str) -> Locator:
    return page.locator(f'#results > li.card[data-id="{library.ids[name]}"]')


def search(page: Page, query: str) -> None:
    page.get_by_label("Search images").fill(query)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#summary")).to_contain_text(f"match “{query}”")


def blur_of(picture: Locator) -> str:
    return str(picture.evaluate("(img) => getComputedStyle(img).filter"))


# --- What the page relies on, over HTTP -----------------------------------------------------


def test_the_unsafe_filter_keeps_unscored_images_and_pages_count_it(library: Library) -> None:
    def total(q: str, **more: str) -> int:
        answer = httpx.get(f"{library.url}/search", params={"q": q, **more}, timeout=30)
        assert answer.status_code == 200, answer.text
        value: int = answer.json()["total"]
        return value

    info = httpx.get(f"{library.url}/info", timeout=30).json()
    assert info["head"]["safety"]["nsfw_threshold"] == pytest.approx(0.8)
    assert total("nsfw:>=0", mode="words") == 2  # how the page finds out there are scores
    assert total("*") == 4
    assert total("*", filter="* -nsfw:>0.8") == 3
    assert total("exit", filter="* -nsfw:>0.8") == 1
    assert total("tabby", filter="* -nsfw:>0.8") == 0
    assert total("tabby") == 1


# --- The page ---------------------------------------------------------------------------------


def test_a_word_of_the_text_shows_the_card_with_the_text_collapsed_and_marked(
    page: Page, library: Library
) -> None:
    page.goto(library.url)
    search(page, "emergency")
    sign = card(page, library, "sign")
    expect(sign).to_be_visible()
    details = sign.locator("details.ocr")
    summary = details.locator("summary")
    expect(summary).to_have_text("Text in image EMERGENCY EXIT")
    body = details.locator(".ocr-text")
    expect(body).to_be_hidden()
    summary.click()
    expect(body).to_be_visible()
    expect(body).to_have_text("EMERGENCY EXIT\nkeep this door clear")
    expect(body.locator("mark")).to_have_text(["EMERGENCY"])
    summary.click()
    expect(body).to_be_hidden()
    # A phrase of the text field marks its words; values of other fields do not.
    search(page, 'text:"door clear" OR tags:exit')
    sign.locator("details.ocr summary").click()
    expect(sign.locator(".ocr-text mark")).to_have_text(["door", "clear"])
    # Cards of images without text stay as they were.
    search(page, "astronaut")
    expect(card(page, library, "unscored")).to_be_visible()
    expect(card(page, library, "unscored").locator("details")).to_have_count(0)


def test_text_that_looks_like_markup_is_shown_as_it_is(page: Page, library: Library) -> None:
    page.goto(library.url)
    search(page, "html")
    markup = card(page, library, "markup")
    markup.locator("details.ocr summary").click()
    body = markup.locator(".ocr-text")
    expect(body).to_have_text("<b>html</b> & co")
    expect(body.locator("mark")).to_have_text(["html"])
    expect(markup.locator("b")).to_have_count(0)


def test_unsafe_images_are_hidden_by_default_and_the_total_leaves_them_out(
    page: Page, library: Library
) -> None:
    searched: list[str] = []
    page.on("request", lambda r: searched.append(r.url) if "/search?" in r.url else None)
    page.goto(library.url)
    toggle = page.get_by_label("Hide unsafe")
    expect(toggle).to_be_visible()
    expect(toggle).to_be_checked()
    expect(page.locator("#summary")).to_contain_text("3 images indexed")
    expect(page.locator("#results > li.card")).to_have_count(3)
    expect(card(page, library, "unsafe")).to_have_count(0)
    search(page, "tabby")
    expect(page.locator("#empty")).to_contain_text("No images match “tabby”")
    assert any("filter=*+-nsfw%3A%3E0.8" in url for url in searched), searched


def test_unchecked_unsafe_images_are_blurred_until_clicked_and_safe_ones_never(
    page: Page, library: Library
) -> None:
    page.goto(library.url)
    expect(page.locator("#summary")).to_contain_text("3 images indexed")
    page.get_by_label("Hide unsafe").uncheck()
    expect(page.locator("#summary")).to_contain_text("4 images indexed")
    unsafe = card(page, library, "unsafe")
    picture = unsafe.locator("img")
    expect(picture).to_be_visible()
    assert "blur" in blur_of(picture)
    cover = unsafe.get_by_role("button", name="Sensitive image: show it")
    expect(cover).to_have_text("Sensitive — click to show")
    for name in ("sign", "markup", "unscored"):
        expect(card(page, library, name).get_by_role("button", name="Sensitive")).to_have_count(0)
        assert blur_of(card(page, library, name).locator("img")) == "none", name

    # The click shows the picture, and opens nothing.
    cover.click()
    expect(cover).to_have_count(0)
    assert blur_of(picture) == "none"
    assert len(page.context.pages) == 1
    # Shown, the picture opens the image again.
    with page.expect_popup() as popup:
        picture.click()
    popup.value.close()
    # The other cards are untouched; checking the box again leaves the image out.
    page.get_by_label("Hide unsafe").check()
    expect(page.locator("#summary")).to_contain_text("3 images indexed")
    expect(unsafe).to_have_count(0)


def test_the_phone_layout_with_text_and_the_switch_does_not_scroll_sideways(
    browser: Browser, library: Library
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(library.url)
        page.get_by_label("Hide unsafe").uncheck()
        expect(page.locator("#results > li.card")).to_have_count(4)
        for details in page.locator("details.ocr").all():
            details.locator("summary").click()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def test_without_safety_scores_there_is_no_switch_and_no_filter(
    page: Page, start_deeptag: ServerFactory, tmp_path: Path
) -> None:
    url = serve(start_deeptag, tmp_path, [document(SAMPLES["unscored"])])
    probe = httpx.get(f"{url}/search", params={"q": "nsfw:>=0", "mode": "words"}, timeout=30)
    assert probe.status_code == 200, probe.text
    assert probe.json()["total"] == 0
    searched: list[str] = []
    page.on("request", lambda r: searched.append(r.url) if "/search?" in r.url else None)
    page.goto(url)
    expect(page.locator("#summary")).to_contain_text("1 image indexed")
    expect(page.locator("#safe-toggle")).to_be_hidden()
    assert searched
    assert not [u for u in searched if "filter=" in u], searched
