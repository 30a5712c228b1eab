"""What the analyses write (text, text_lines, nsfw) is stored, searched and returned alike by
both backends: bare words and ``text:"..."`` find the text, ``nsfw:<0.2`` filters on the score,
hits carry both, and a document keeps them through a round trip. No model is needed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.search.base import ImageDocument, SearchBackend, SearchPage
from orchestrator.search.documents import now_iso
from orchestrator.search.results import hit_json
from orchestrator.settings import Settings
from tests.search_support import NO_TRITON, index_documents, search_settings, with_backend

LINES = [
    {"text": "EMERGENCY EXIT", "score": 0.97, "box": [[10, 20], [200, 20], [200, 60], [10, 60]]}
]


def document(
    doc_id: str, analyses: dict[str, dict[str, object]], tags: tuple[str, ...]
) -> ImageDocument:
    return ImageDocument(
        id=doc_id,
        uri=f"/photos/{doc_id}.jpg",
        categories=(),
        tags=tags,
        embedding=None,
        width=640,
        height=480,
        model="efficientnet_lite0/1",
        indexed_at=now_iso(),
        analyses=analyses,
    )


DOCUMENTS = [
    document(
        "sign",
        {
            "ocr": {"text": "EMERGENCY EXIT\nkeep clear", "text_lines": LINES},
            "safety": {"nsfw": 0.03},
        },
        ("door",),
    ),
    document("beach", {"ocr": {}, "safety": {"nsfw": 0.91}}, ("seashore",)),
    document("older", {}, ("envelope",)),
]


@dataclass(frozen=True)
class Filled:
    settings: Settings

    def search(self, query: str) -> SearchPage:
        async def run(backend: SearchBackend) -> SearchPage:
            return await backend.search(query, size=10)

        return with_backend(self.settings, run)

    def ids(self, query: str) -> set[str]:
        return {hit.document.id for hit in self.search(query).hits}


@pytest.fixture(scope="module", params=["embedded", "es"])
def filled(
    request: pytest.FixtureRequest, elasticsearch_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Filled:
    kind = request.param
    settings = search_settings(
        kind, NO_TRITON, elasticsearch_url, tmp_path_factory.mktemp(kind), "deeptag-analyses"
    )
    assert index_documents(settings, DOCUMENTS, writer=True) == [True] * len(DOCUMENTS)
    return Filled(settings)


def test_a_bare_word_of_the_text_finds_the_image(filled: Filled) -> None:
    assert filled.ids("emergency") == {"sign"}
    assert filled.ids("clear") == {"sign"}


def test_a_phrase_in_the_text_field_finds_it_and_the_words_apart_do_not(filled: Filled) -> None:
    assert filled.ids('text:"emergency exit"') == {"sign"}
    assert filled.ids('text:"exit emergency"') == set()


def test_the_safety_score_filters_by_range(filled: Filled) -> None:
    assert filled.ids("nsfw:<0.2") == {"sign"}
    assert filled.ids("nsfw:>0.8") == {"beach"}
    assert filled.ids("nsfw:[0.5 TO 1]") == {"beach"}
    # Images never scored are neither safe nor unsafe: a filter leaving out the unsafe keeps them.
    assert filled.ids("* -nsfw:>0.8") == {"sign", "older"}


def test_hits_carry_the_text_its_lines_and_the_score_only_where_computed(filled: Filled) -> None:
    hits = {hit.document.id: hit_json(hit) for hit in filled.search("*").hits}
    assert hits["sign"]["text"] == "EMERGENCY EXIT\nkeep clear"
    assert hits["sign"]["text_lines"] == LINES
    assert hits["sign"]["nsfw"] == pytest.approx(0.03)
    assert "text" not in hits["beach"]
    assert hits["beach"]["nsfw"] == pytest.approx(0.91)
    assert not {"text", "text_lines", "nsfw"} & set(hits["older"])


def test_a_document_read_back_lists_the_analyses_that_ran_even_when_they_found_nothing(
    filled: Filled,
) -> None:
    async def get(backend: SearchBackend) -> list[ImageDocument | None]:
        return [await backend.get(d.id) for d in DOCUMENTS]

    sign, beach, older = with_backend(filled.settings, get)
    assert sign is not None
    assert beach is not None
    assert older is not None
    assert sign.analyses == DOCUMENTS[0].analyses
    assert beach.analyses == {"ocr": {}, "safety": {"nsfw": 0.91}}
    assert older.analyses == {}


def test_metadata_may_not_take_an_analysis_field(tmp_path: Path) -> None:
    from orchestrator.search.documents import check_metadata_keys

    for key in ("text", "text_lines", "nsfw", "analyses"):
        with pytest.raises(ValueError, match=key):
            check_metadata_keys([key])


def test_hiding_unsafe_images_keeps_a_query_that_only_excludes(filled: Filled) -> None:
    # The page's "hide unsafe" filter, with a query made only of exclusions: it used to find
    # nothing on the embedded index, whose grouped negative-only query matched no document.
    from orchestrator.search import hybrid

    async def run(backend: SearchBackend) -> set[str]:
        page = await hybrid.search(backend, "-door", "words", filter="* -nsfw:>0.8")
        return {hit.document.id for hit in page.page.hits}

    assert with_backend(filled.settings, run) == {"older"}
