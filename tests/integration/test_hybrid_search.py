"""Words and meaning fused, on both backends, with the real image model and text encoder.

The photos are the scikit-image samples; the queries are words none of their labels contain
(``kitten``, ``vehicle``) next to label words that must keep their photo first.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from elasticsearch import Elasticsearch
from PIL import Image

from orchestrator.indexing import IndexOptions
from orchestrator.phash import perceptual_hash
from orchestrator.search.base import Category, ImageDocument, SearchBackend
from orchestrator.search.elasticsearch import added_fields, index_mapping
from orchestrator.search.hybrid import SearchMode
from orchestrator.settings import Settings
from orchestrator.triton.launcher import LocalTriton
from tests.conftest import ServerFactory
from tests.search_support import (
    hybrid_search,
    index_documents,
    index_paths,
    search_settings,
    with_backend,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Indexed:
    settings: Settings
    names: dict[str, str]  # uri -> sample name

    def find(self, query: str, mode: SearchMode = "hybrid") -> list[str]:
        page = hybrid_search(self.settings, query, mode).page
        return [self.names[hit.document.uri] for hit in page.hits]


def settings_for(kind: str, triton: LocalTriton, es_url: str, data_dir: Path) -> Settings:
    return search_settings(kind, triton.http_url, es_url, data_dir, "deeptag-hybrid")


@pytest.fixture(scope="module", params=["embedded", "es"])
def indexed(
    request: pytest.FixtureRequest,
    triton: LocalTriton,
    samples: dict[str, Path],
    elasticsearch_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Indexed:
    settings = settings_for(
        request.param, triton, elasticsearch_url, tmp_path_factory.mktemp("hybrid")
    )
    stats, failures = index_paths(settings, list(samples.values()))
    assert (stats.indexed, failures) == (len(samples), [])
    return Indexed(settings, {str(path): name for name, path in samples.items()})


def test_every_document_has_concepts_and_a_semantic_vector(indexed: Indexed) -> None:
    page = with_backend(indexed.settings, lambda backend: backend.search("tags:tiger"))
    (chelsea,) = [hit.document for hit in page.hits]
    assert {"cat", "feline", "animal"} <= {c.concept for c in chelsea.concepts}
    stored = with_backend(indexed.settings, lambda backend: backend.get(chelsea.id))
    assert stored is not None
    assert stored.semantic is not None
    assert len(stored.semantic) == 384
    count = with_backend(indexed.settings, lambda backend: backend.count_with("semantic"))
    assert count == len(indexed.names)


def test_every_document_has_the_perceptual_hash_of_its_picture(
    indexed: Indexed, samples: dict[str, Path]
) -> None:
    async def fetch(backend: SearchBackend) -> dict[str, str | None]:
        found = {}
        for name, path in samples.items():
            document = await backend.get(hashlib.sha256(path.read_bytes()).hexdigest())
            assert document is not None, name
            found[name] = document.phash
        return found

    # The samples are small enough to be decoded whole: the hash of the picture itself.
    expected = {n: perceptual_hash(Image.open(p).convert("RGB")) for n, p in samples.items()}
    assert with_backend(indexed.settings, fetch) == expected


def test_words_outside_the_labels_find_their_photo(indexed: Indexed) -> None:
    assert indexed.find("kitten", "words") == []
    assert indexed.find("kitten")[0] == "chelsea"
    assert "motorcycle" in indexed.find("vehicle")[:2]
    assert indexed.find("drink", "semantic")[0] == "coffee"


def test_concepts_are_words_of_their_own(indexed: Indexed) -> None:
    assert indexed.find("feline", "words") == ["chelsea"]
    assert indexed.find("concepts.concept:beverage", "words") == ["coffee"]


def test_label_words_still_rank_their_photo_first(indexed: Indexed) -> None:
    assert indexed.find("espresso")[0] == "coffee"
    assert indexed.find('"crash helmet"', "words")[0] == indexed.find('"crash helmet"')[0]
    assert indexed.find('"tiger cat"')[0] == "chelsea"


def test_a_query_about_nothing_indexed_finds_little(indexed: Indexed) -> None:
    assert len(indexed.find("pizza", "semantic")) <= 1


@pytest.mark.parametrize(
    "query", ["categories.score:>0.5", "tags:espresso", "* -espresso", "cat AND tiger"]
)
def test_structured_queries_are_unchanged(indexed: Indexed, query: str) -> None:
    result = hybrid_search(indexed.settings, query)
    assert result.mode == "words"
    assert indexed.find(query) == indexed.find(query, "words")


@pytest.mark.parametrize("kind", ["embedded", "es"])
def test_documents_indexed_before_concepts_say_how_to_add_them(
    triton: LocalTriton, elasticsearch_url: str, tmp_path: Path, kind: str
) -> None:
    settings = settings_for(kind, triton, elasticsearch_url, tmp_path)
    old = ImageDocument(
        id="0" * 64,
        uri="/photos/cup.jpg",
        categories=(Category("n07920052 espresso", 0.96),),
        tags=("espresso",),
        embedding=None,
        width=600,
        height=400,
        model="efficientnet_lite0/1",
        indexed_at="2025-01-01T00:00:00Z",
    )
    assert index_documents(settings, [old]) == [True]
    result = hybrid_search(settings, "espresso")
    assert [hit.document.uri for hit in result.page.hits] == ["/photos/cup.jpg"]
    assert result.notice is not None
    assert "deeptag index --reindex" in result.notice


def test_search_and_predict_over_http(
    start_deeptag: ServerFactory, samples: dict[str, Path], elasticsearch_url: str
) -> None:
    server = start_deeptag(
        {
            "DEEPTAG_SEARCH_BACKEND": "es",
            "DEEPTAG_ES_URL": elasticsearch_url,
            "DEEPTAG_ES_INDEX": f"deeptag-hybrid-http-{uuid.uuid4().hex[:8]}",
            "DEEPTAG_IMAGE_ROOTS": str(samples["chelsea"].parent),
        }
    )
    paths = [str(p) for p in samples.values()]
    answer = httpx.post(f"{server.url}/index", json={"data": paths}, timeout=120)
    assert answer.json()["indexed"] == len(paths)

    found = httpx.get(f"{server.url}/search", params={"q": "kitten"}, timeout=60).json()
    assert found["mode"] == "hybrid"
    assert found["hits"][0]["uri"] == str(samples["chelsea"])
    assert "cat" in {c["concept"] for c in found["hits"][0]["concepts"]}
    words = httpx.get(
        f"{server.url}/search", params={"q": "kitten", "mode": "words"}, timeout=60
    ).json()
    assert (words["mode"], words["hits"]) == ("words", [])
    posted = httpx.post(
        f"{server.url}/search", json={"q": "vehicle", "mode": "semantic"}, timeout=60
    ).json()
    assert str(samples["motorcycle"]) in [hit["uri"] for hit in posted["hits"][:2]]
    bad = httpx.get(f"{server.url}/search", params={"q": "cat", "mode": "vibes"}, timeout=60)
    assert bad.status_code == 400
    assert "mode" in bad.json()["status"]["dd_msg"]
    # /index stored each picture's perceptual hash, and Elasticsearch finds it whole.
    chelsea = perceptual_hash(Image.open(samples["chelsea"]).convert("RGB"))
    by_hash = httpx.get(f"{server.url}/search", params={"q": f"phash:{chelsea}"}, timeout=60)
    assert [hit["uri"] for hit in by_hash.json()["hits"]] == [str(samples["chelsea"])]

    def predict(output: dict[str, object]) -> dict[str, object]:
        body = {"service": "imageserv", "parameters": {"output": output}, "data": paths[1:2]}
        reply = httpx.post(f"{server.url}/predict", json=body, timeout=120)
        assert reply.status_code == 200, reply.text
        prediction: dict[str, object] = reply.json()["body"]["predictions"][0]
        return prediction

    plain = predict({"best": 3})
    assert "concepts" not in plain
    with_concepts = predict({"best": 3, "concepts": True})
    assert with_concepts["classes"] == plain["classes"]
    concepts = with_concepts["concepts"]
    assert isinstance(concepts, list)
    assert {"cat", "feline"} <= {c["concept"] for c in concepts}


def test_an_elasticsearch_index_made_before_gains_the_fields_on_reindex(
    triton: LocalTriton, elasticsearch_url: str, samples: dict[str, Path], tmp_path: Path
) -> None:
    settings = settings_for("es", triton, elasticsearch_url, tmp_path)
    mapping = index_mapping()
    for added in added_fields():
        del mapping["properties"][added]
    client = Elasticsearch(elasticsearch_url)
    try:
        client.indices.create(index=settings.es_index, mappings=mapping)
    finally:
        client.close()
    stats, failures = index_paths(settings, [samples["chelsea"]], IndexOptions(reindex=True))
    assert (stats.indexed, failures) == (1, [])
    result = hybrid_search(settings, "kitten", "semantic")
    assert [hit.document.uri for hit in result.page.hits] == [str(samples["chelsea"])]
    assert result.notice is None
    # Mapped as a vector before the first document came, not dynamically as a float array.
    client = Elasticsearch(elasticsearch_url)
    try:
        properties = client.indices.get_mapping(index=settings.es_index)[settings.es_index][
            "mappings"
        ]["properties"]
    finally:
        client.close()
    assert properties["semantic"]["type"] == "dense_vector"
    assert properties["concepts"]["properties"]["concept"]["type"] == "text"
    # Matched whole, not split into words as dynamic mapping would have it.
    assert properties["phash"]["type"] == "keyword"
