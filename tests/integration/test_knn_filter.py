"""Nearest images among those a word query matches, and none under a least cosine: on the
backends, in hybrid search, in `deeptag search --filter` and on `/search`.

The documents are built directly, with vectors placed so that each one's cosine with the query
axis is known: 120 tabbies nearer the query than any of the four dogs, so the unfiltered nearest
never hold a dog. The gaps are wide: noida-db's scores drift from the exact cosine (by 0.02
near 0.75, by 0.1 near 0.25), and a least cosine between two images must stay between them.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from orchestrator.errors import InvalidQuery
from orchestrator.retry import RetryPolicy
from orchestrator.search import hybrid
from orchestrator.search.base import (
    EMBEDDING_DIMS,
    SEMANTIC_DIMS,
    Category,
    ImageDocument,
    SearchBackend,
    SearchPage,
)
from orchestrator.search.hybrid import ModePage, SearchMode
from orchestrator.search.outages import OutageTolerantBackend
from orchestrator.settings import Settings
from tests.conftest import DeeptagServer, ServerFactory
from tests.photo_library import NO_TRITON, photo
from tests.search_support import deeptag_search as deeptag
from tests.search_support import index_documents, search_settings, with_backend

pytestmark = pytest.mark.integration

BACKENDS = ["embedded", "es"]

#: The dogs: their cosine with the query axis, camera make and year taken.
DOGS = {
    "dog-a": (0.75, "Canon", 2021),
    "dog-b": (0.60, "Canon", 2019),
    "dog-c": (0.25, "Nikon", 2021),
    "dog-d": (0.05, "Canon", 2022),
}
#: Tabbies, all nearer than any dog: cosines from 0.95 down to 0.85.
TABBIES = {f"tabby-{i:03d}": 0.95 - i * 0.1 / 119 for i in range(120)}
BAD_FILTERS = ["tags:((", "taken_at:2019-13"]


def doc_id(name: str) -> str:
    # The shape of a real id, so `--like` and `like` take it for one.
    return hashlib.sha256(name.encode()).hexdigest()


NAMES = {doc_id(name): name for name in (*DOGS, *TABBIES)}


def leaning(cosine: float, axis: int, dims: int) -> tuple[float, ...]:
    """A unit vector whose cosine with axis 0 is ``cosine``, the rest along its own ``axis``."""
    vector = np.zeros(dims)
    vector[0] = cosine
    vector[axis] = math.sqrt(1 - cosine**2)
    return tuple(float(x) for x in vector)


def document(name: str, cosine: float, axis: int, label: str, **photo_fields: Any) -> ImageDocument:
    return ImageDocument(
        id=doc_id(name),
        uri=f"/photos/{name}.jpg",
        categories=(Category(f"n0000000 {label}", 0.9),),
        tags=(label,),
        embedding=leaning(cosine, axis, EMBEDDING_DIMS),
        width=640,
        height=480,
        model="efficientnet_lite0/1",
        indexed_at="2025-01-01T00:00:00Z",
        semantic=leaning(cosine, axis, SEMANTIC_DIMS),
        photo=photo(**photo_fields),
    )


DOCUMENTS = [
    document(name, cosine, 1 + i, "dog", taken_at=f"{year}-05-01T12:00:00Z", camera=(make, "X"))
    for i, (name, (cosine, make, year)) in enumerate(DOGS.items())
] + [
    document(name, cosine, 10 + i, "tabby", camera=("Sony", "ILCE-7M3"))
    for i, (name, cosine) in enumerate(TABBIES.items())
]
QUERY = leaning(1.0, 1, EMBEDDING_DIMS)  # the axis itself
TEXT = leaning(1.0, 1, SEMANTIC_DIMS)


async def encode(text: str) -> list[float]:
    """The text encoder, for any query: the axis every cosine above is measured from."""
    return list(TEXT)


@dataclass(frozen=True)
class Pets:
    kind: str
    settings: Settings

    def knn(self, k: int = 3, **options: Any) -> SearchPage:
        return with_backend(self.settings, lambda backend: backend.knn(QUERY, k=k, **options))

    def hybrid(self, query: str, mode: SearchMode = "hybrid", **options: Any) -> ModePage:
        async def run(backend: SearchBackend) -> ModePage:
            return await hybrid.search(backend, query, mode, encode=encode, **options)

        return with_backend(self.settings, run)


def names(page: SearchPage) -> list[str]:
    return [NAMES[hit.document.id] for hit in page.hits]


@pytest.fixture(scope="module", params=BACKENDS)
def pets(
    request: pytest.FixtureRequest, elasticsearch_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Pets:
    kind = request.param
    folder = tmp_path_factory.mktemp(f"knn-filter-{kind}")
    settings = search_settings(kind, NO_TRITON, elasticsearch_url, folder, "deeptag-knn-filter")
    assert all(index_documents(settings, DOCUMENTS))
    return Pets(kind, settings)


# --- The backends --------------------------------------------------------------------------


def test_a_filter_finds_the_nearest_matches_beyond_the_unfiltered_nearest(pets: Pets) -> None:
    assert all(name.startswith("tabby") for name in names(pets.knn(k=3)))
    page = pets.knn(k=3, filter="tags:dog")
    assert names(page) == ["dog-a", "dog-b", "dog-c"]
    # Cosines, not Elasticsearch's (1 + cos) / 2.
    assert [hit.score for hit in page.hits[:2]] == pytest.approx([0.75, 0.60], abs=0.05)
    # One dog, with 120 nearer tabbies: more than the candidates a small k gathers.
    assert names(pets.knn(k=1, filter="categories.category:dog")) == ["dog-a"]


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("camera.make:canon AND taken_at:>=2020", ["dog-a", "dog-d"]),
        ("taken_at:2019", ["dog-b"]),
        ("dog -camera.make:canon", ["dog-c"]),
        ("tags:giraffe", []),
    ],
)
def test_a_filter_has_the_query_syntax_dates_and_photo_fields(
    pets: Pets, filter: str, expected: list[str]
) -> None:
    assert names(pets.knn(k=10, filter=filter)) == expected


def test_a_filter_and_an_image_left_out_apply_together(pets: Pets) -> None:
    page = pets.knn(k=2, filter="tags:dog", exclude_id=doc_id("dog-a"))
    assert names(page) == ["dog-b", "dog-c"]


def test_min_score_drops_the_hits_under_it(pets: Pets) -> None:
    page = pets.knn(k=200, min_score=0.5)
    assert set(names(page)) == {*TABBIES, "dog-a", "dog-b"}
    assert min(hit.score for hit in page.hits) >= 0.5
    assert names(pets.knn(k=10, filter="tags:dog", min_score=0.5)) == ["dog-a", "dog-b"]
    assert pets.knn(k=10, min_score=0.99).hits == ()


@pytest.mark.parametrize("bad", BAD_FILTERS)
def test_a_bad_filter_is_refused_quoting_it(pets: Pets, bad: str) -> None:
    with pytest.raises(InvalidQuery) as refused:
        pets.knn(k=3, filter=bad)
    assert repr(bad) in refused.value.message
    assert "filter" in refused.value.message


def test_a_bulk_runs_backend_passes_the_filter_through(pets: Pets) -> None:
    async def run(backend: SearchBackend) -> SearchPage:
        # As `deeptag index` opens it: calls ride out outages of the backend.
        riding = OutageTolerantBackend(backend, RetryPolicy(window_s=5))
        return await riding.knn(QUERY, k=2, filter="tags:dog", min_score=0.5)

    assert names(with_backend(pets.settings, run)) == ["dog-a", "dog-b"]


# --- Hybrid search -------------------------------------------------------------------------


def test_semantic_search_finds_the_nearest_matching_images(pets: Pets) -> None:
    unfiltered = pets.hybrid("kitten", "semantic", min_score=0.45)
    assert all(name.startswith("tabby") for name in names(unfiltered.page)[:10])
    result = pets.hybrid("kitten", "semantic", min_score=0.45, filter="tags:dog")
    # dog-c (0.25) and dog-d (0.05) are under the least cosine.
    assert (result.mode, names(result.page)) == ("semantic", ["dog-a", "dog-b"])
    assert result.page.total == 2


def test_hybrid_search_filters_both_lists(pets: Pets) -> None:
    result = pets.hybrid("dog", min_score=0.45, filter="camera.make:canon")
    assert result.mode == "hybrid"
    # Words: the three Canon dogs, tied; meaning: the Canon images above 0.45, dog-a then
    # dog-b (the tabbies are Sonys). dog-d, found by words only, comes last.
    found = names(result.page)
    assert (set(found[:2]), found[2:]) == ({"dog-a", "dog-b"}, ["dog-d"])
    assert result.page.total == 3


def test_a_filter_in_words_mode_ands_with_the_query(pets: Pets) -> None:
    result = pets.hybrid("dog", "words", filter="taken_at:>=2021")
    assert (result.mode, set(names(result.page))) == ("words", {"dog-a", "dog-c", "dog-d"})
    everything = pets.hybrid("*", filter="camera.make:canon", size=20)
    assert set(names(everything.page)) == {"dog-a", "dog-b", "dog-d"}


@pytest.mark.parametrize("mode", ["hybrid", "words", "semantic"])
def test_a_bad_filter_in_any_mode_is_refused_naming_the_filter(
    pets: Pets, mode: SearchMode
) -> None:
    with pytest.raises(InvalidQuery, match=r"filter 'tags:\(\('"):
        pets.hybrid("kitten", mode, filter="tags:((")


# --- deeptag search --filter ---------------------------------------------------------------


def hit_names(answer: subprocess.CompletedProcess[str]) -> list[str]:
    assert answer.returncode == 0, answer.stderr
    return [NAMES[hit["id"]] for hit in json.loads(answer.stdout)["hits"]]


def test_the_cli_finds_similar_images_among_those_the_filter_matches(pets: Pets) -> None:
    like = doc_id("tabby-000")
    alike = hit_names(deeptag(pets.settings, "--like", like, "--size", "2", "--json"))
    assert alike[0] == "tabby-000"
    assert all(name.startswith("tabby") for name in alike)
    filtered = deeptag(pets.settings, "--like", like, "--filter", "tags:dog", "--size", "2")
    assert filtered.returncode == 0, filtered.stderr
    assert "/photos/dog-a.jpg" in filtered.stdout
    assert "/photos/dog-b.jpg" in filtered.stdout
    assert "tabby" not in filtered.stdout
    words = deeptag(pets.settings, "*", "--filter", "camera.make:canon", "--json", "--size", "20")
    assert set(hit_names(words)) == {"dog-a", "dog-b", "dog-d"}


@pytest.mark.parametrize(
    "args", [("tags:dog",), ("--like", doc_id("tabby-000"))], ids=["query", "like"]
)
def test_a_bad_cli_filter_is_one_error_line_and_exit_1(pets: Pets, args: tuple[str, ...]) -> None:
    refused = deeptag(pets.settings, *args, "--filter", "tags:((")
    assert refused.returncode == 1
    assert "filter 'tags:(('" in refused.stderr
    assert "Traceback" not in refused.stderr


# --- /search -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(pets: Pets, start_deeptag: ServerFactory) -> DeeptagServer:
    return start_deeptag(
        {
            "DEEPTAG_SEARCH_BACKEND": pets.kind,
            "DEEPTAG_ES_URL": str(pets.settings.es_url),
            "DEEPTAG_ES_INDEX": pets.settings.es_index,
            "DEEPTAG_DATA_DIR": str(pets.settings.data_dir),
        }
    )


def ids_of(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [NAMES[hit["id"]] for hit in answer.json()["hits"]]


def test_search_over_http_takes_a_filter_with_q_and_with_like(server: DeeptagServer) -> None:
    got = httpx.get(
        f"{server.url}/search", params={"q": "*", "filter": "camera.make:canon"}, timeout=60
    )
    assert set(ids_of(got)) == {"dog-a", "dog-b", "dog-d"}
    posted = httpx.post(
        f"{server.url}/search",
        json={"like": doc_id("tabby-000"), "k": 2, "filter": "tags:dog"},
        timeout=60,
    )
    assert ids_of(posted) == ["dog-a", "dog-b"]


@pytest.mark.parametrize("bad", BAD_FILTERS)
@pytest.mark.parametrize(
    "request_args",
    [
        {"method": "GET", "params": {"q": "tags:dog"}},
        {"method": "POST", "json": {"q": "tags:dog"}},
        {"method": "POST", "json": {"like": doc_id("tabby-000")}},
    ],
    ids=["get", "post", "post-like"],
)
def test_a_bad_filter_over_http_is_a_400_naming_it(
    server: DeeptagServer, request_args: dict[str, Any], bad: str
) -> None:
    method = request_args["method"]
    params = {**request_args.get("params", {}), "filter": bad} if method == "GET" else None
    body = {**request_args["json"], "filter": bad} if method == "POST" else None
    answer = httpx.request(method, f"{server.url}/search", params=params, json=body, timeout=60)
    assert answer.status_code == 400, answer.text
    assert f"filter {bad!r}" in answer.json()["status"]["dd_msg"]
