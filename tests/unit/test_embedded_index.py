"""The embedded (tantivy) search backend's contract, on small synthetic documents.

Queries are the ES ``q=`` strings a user types; the crash and lock tests run real
subprocesses against the same index folder.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import tantivy

from orchestrator.errors import (
    BadRequest,
    IndexLocked,
    InvalidQuery,
    ResultWindowTooLarge,
    SearchBackendError,
)
from orchestrator.search.base import (
    EMBEDDING_DIMS,
    Category,
    ImageDocument,
    IndexResult,
    SearchBackend,
    SearchPage,
)
from orchestrator.search.embedded import EmbeddedIndex
from orchestrator.types import Label

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]

ESPRESSO = ("n07920052 espresso", 0.96)
COFFEE_MUG = ("n03063599 coffee mug", 0.03)
HELMET = ("n03127747 crash helmet", 0.7)
TANDEM = ("n02835271 bicycle-built-for-two, tandem bicycle, tandem", 0.2)
MOPED = ("n03785016 moped", 0.6)
MOUNTAIN_BIKE = ("n03792782 mountain bike, all-terrain bike, off-roader", 0.1)


def unit_vector(seed: int) -> tuple[float, ...]:
    vector = np.random.default_rng(seed).standard_normal(EMBEDDING_DIMS)
    return tuple(float(x) for x in vector / np.linalg.norm(vector))


def make_doc(
    doc_id: str,
    categories: Sequence[tuple[str, float]],
    *,
    seed: int | None = None,
    uri: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> ImageDocument:
    """A document shaped like one made from a prediction; ``seed`` picks its embedding."""
    tags = tuple(dict.fromkeys(Label(name, score).words for name, score in categories))
    return ImageDocument(
        id=doc_id,
        uri=uri or f"/photos/{doc_id}.jpg",
        categories=tuple(Category(name, score) for name, score in categories),
        tags=tags,
        embedding=unit_vector(seed) if seed is not None else None,
        width=640,
        height=480,
        model="efficientnet_lite0/1",
        indexed_at="2024-05-01T12:00:00Z",
        metadata=metadata or {},
    )


DOCS = {
    "espresso": make_doc("espresso", [ESPRESSO, COFFEE_MUG], seed=1, metadata={"album": "cafe"}),
    "helmet": make_doc(
        "helmet",
        [HELMET, TANDEM],
        seed=2,
        metadata={"album": "commute", "year": 2019, "camera": {"make": "Nikon"}},
    ),
    "moped": make_doc("moped", [MOPED, ("n03127747 crash helmet", 0.15)], seed=3),
    # No embedding: found by words, never by kNN.
    "tandem": make_doc("tandem", [(TANDEM[0], 0.8), MOUNTAIN_BIKE]),
}


def as_search_backend(index: EmbeddedIndex) -> SearchBackend:
    """Never called: mypy checks here that the class satisfies the protocol."""
    return index


def run(call: Callable[[EmbeddedIndex], Awaitable[T]], directory: Path, writer: bool = False) -> T:
    """Open the index like the factory does, make one call, close it."""

    async def main() -> T:
        backend = await EmbeddedIndex.open(directory, writer=writer)
        try:
            await backend.ensure_index()
            return await call(backend)
        finally:
            await backend.close()

    return asyncio.run(main())


async def index_all(
    backend: EmbeddedIndex, documents: Sequence[ImageDocument]
) -> list[IndexResult]:
    return [result async for result in backend.index(documents)]


def search(directory: Path, query: str, size: int = 10, offset: int = 0) -> SearchPage:
    return run(lambda b: b.search(query, size, offset), directory)


def ids(page_hits: Sequence[Any]) -> list[str]:
    return [hit.document.id for hit in page_hits]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "index"


@pytest.fixture
def indexed(folder: Path) -> Path:
    results = run(lambda b: index_all(b, list(DOCS.values())), folder, writer=True)
    assert all(r.ok for r in results), results
    return folder


# --- Query strings -----------------------------------------------------------------------


def test_a_word_finds_its_document_first(indexed: Path) -> None:
    page = search(indexed, "espresso")
    assert page.total == 1
    assert ids(page.hits) == ["espresso"]
    assert page.hits[0].score > 0
    assert page.took_ms >= 0


def test_a_phrase_matches_the_words_in_order_only(indexed: Path) -> None:
    assert set(ids(search(indexed, '"crash helmet"').hits)) == {"helmet", "moped"}
    assert search(indexed, '"helmet crash"').total == 0


def test_field_query_and_score_range(indexed: Path) -> None:
    page = search(indexed, "categories.category:helmet AND categories.score:>0.65")
    assert ids(page.hits) == ["helmet"]
    only_high = search(indexed, "categories.score:>0.9")
    assert ids(only_high.hits) == ["espresso"]


def test_a_score_range_matches_any_category_as_on_flattened_es_arrays(indexed: Path) -> None:
    # moped's helmet scores 0.15, but its moped score (0.6) is over the bound.
    page = search(indexed, "categories.category:helmet AND categories.score:>0.5")
    assert set(ids(page.hits)) == {"helmet", "moped"}


def test_minus_excludes_a_word(indexed: Path) -> None:
    assert ids(search(indexed, "helmet -bicycle").hits) == ["moped"]
    # A purely negative query means "all but", as in ES (tantivy alone refuses it).
    assert set(ids(search(indexed, "-bicycle").hits)) == {"espresso", "moped"}


def test_other_fields_width_model_indexed_at_and_id(indexed: Path) -> None:
    for query in (
        "width:640",
        "height:[400 TO 500]",
        "model:efficientnet_lite0/1",
        "indexed_at:>2024-01-01",
    ):
        assert search(indexed, query).total == len(DOCS), query
    assert ids(search(indexed, "id:tandem").hits) == ["tandem"]
    assert ids(search(indexed, "uri:moped.jpg").hits) == ["moped"]


def test_metadata_is_searched_by_its_keys_as_on_a_dynamically_mapped_es_index(
    indexed: Path,
) -> None:
    assert ids(search(indexed, "album:cafe").hits) == ["espresso"]
    assert ids(search(indexed, "camera.make:nikon").hits) == ["helmet"]
    assert ids(search(indexed, "year:[2000 TO 2020] AND tags:helmet").hits) == ["helmet"]
    assert search(indexed, "year:>2020").total == 0
    # Bare words search tags, categories and uri only, as the ES index's default_field says.
    assert search(indexed, "cafe").total == 0
    # A key no document has finds nothing, as in ES, rather than failing.
    assert search(indexed, "lens:zeiss").total == 0


@pytest.mark.parametrize("query", ["*", "", "  "])
def test_match_all(indexed: Path, query: str) -> None:
    page = search(indexed, query, size=10)
    assert page.total == len(DOCS)
    assert set(ids(page.hits)) == set(DOCS)


def test_paging_gives_each_document_once_and_the_full_total(indexed: Path) -> None:
    pages = [search(indexed, "*", size=2, offset=offset) for offset in (0, 2, 4)]
    assert [page.total for page in pages] == [4, 4, 4]
    assert [len(page.hits) for page in pages] == [2, 2, 0]
    assert sorted(ids(pages[0].hits) + ids(pages[1].hits)) == sorted(DOCS)
    counted_only = search(indexed, "tandem", size=0)
    assert (counted_only.total, counted_only.hits) == (2, ())


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ('tags:"crash', 'a quote (") is not closed'),
        ("categories.score:>abc", "categories.score: 'abc' is not a number"),
        ("width:[abc TO 3000]", "width: 'abc' is not a number"),
        ("width:wide", "valid integer"),
        # On a metadata key the position still counts in the query as typed.
        ("year:[1 TO", "missing range delimiter at position 10"),
        ("espresso AND", "the query ends with the operator AND"),
        ("AND espresso", "the query starts with the operator AND"),
    ],
)
def test_invalid_query_names_the_query_and_the_problem(
    indexed: Path, query: str, reason: str
) -> None:
    with pytest.raises(InvalidQuery) as caught:
        search(indexed, query)
    assert caught.value.message.startswith(f"query {query!r}: ")
    assert reason in caught.value.message


# --- Bounds: numbers and queries tantivy must never see ----------------------------------
# A page past the window or a deeply nested query used to abort the whole process; these
# run in-process because the refusal now comes before tantivy.


def test_the_result_window_ends_at_ten_thousand(indexed: Path) -> None:
    assert search(indexed, "*", size=10, offset=9990).hits == ()
    with pytest.raises(ResultWindowTooLarge) as caught:
        search(indexed, "*", size=10, offset=10_000_000_000)
    assert caught.value.message == ("from + size must be at most 10000 (from=10000000000, size=10)")
    assert caught.value.http_status == 400
    with pytest.raises(ResultWindowTooLarge, match=r"\(from=0, size=10001\)"):
        search(indexed, "*", size=10_001)
    with pytest.raises(BadRequest, match=r"from must not be negative \(from=-1\)"):
        search(indexed, "*", offset=-1)


def test_knn_k_is_bounded_like_elasticsearchs(indexed: Path) -> None:
    assert run(lambda b: b.knn(unit_vector(1), k=0), indexed).hits == ()
    with pytest.raises(BadRequest, match=r"k must be between 0 and 10000 \(k=10001\)"):
        run(lambda b: b.knn(unit_vector(1), k=10_001), indexed)


def test_knn_refuses_a_vector_with_nan(indexed: Path) -> None:
    vector = list(unit_vector(1))
    vector[3] = float("nan")
    with pytest.raises(BadRequest, match="finite"):
        run(lambda b: b.knn(vector), indexed)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("(" * 5000 + "espresso", "parentheses nested 5000 deep, over the limit of 100"),
        ("(" * 101 + "espresso" + ")" * 101, "nested 101 deep"),
        ("espresso" * 1251, "10008 characters, over the limit of 10000"),
    ],
)
def test_queries_too_deep_or_long_to_parse_safely_are_refused(
    indexed: Path, query: str, reason: str
) -> None:
    with pytest.raises(InvalidQuery) as caught:
        search(indexed, query)
    assert reason in caught.value.message
    # The query is named, cut short, not echoed whole.
    assert caught.value.message.startswith(f"query {query[:77]!r}"[:-1] + "...'")


def test_nesting_within_the_limit_and_parentheses_in_phrases_still_work(indexed: Path) -> None:
    assert ids(search(indexed, "(" * 100 + "espresso" + ")" * 100).hits) == ["espresso"]
    assert search(indexed, '"' + "(" * 200 + 'espresso"').total == 1


def test_a_metadata_range_tantivy_cannot_evaluate_is_a_bad_query(indexed: Path) -> None:
    # Bounds of two number kinds panic tantivy's range query; that is the query's fault.
    with pytest.raises(InvalidQuery) as caught:
        search(indexed, "year:[2000 TO 2020.5]")
    assert caught.value.message.startswith("query 'year:[2000 TO 2020.5]': tantivy cannot")
    assert ids(search(indexed, "year:>=2000 AND year:<=2020.5").hits) == ["helmet"]


def test_a_long_invalid_query_is_quoted_briefly(indexed: Path) -> None:
    query = "espresso AND " * 30 + "AND"
    with pytest.raises(InvalidQuery) as caught:
        search(indexed, query)
    assert len(caught.value.message) < 250


# --- Indexing --------------------------------------------------------------------------------


def test_reindexing_an_id_replaces_it(indexed: Path) -> None:
    moved = dataclasses.replace(DOCS["helmet"], uri="/elsewhere/helmet.jpg")

    async def reindex(backend: EmbeddedIndex) -> tuple[list[IndexResult], int]:
        results = await index_all(backend, [moved, moved])  # twice in one batch, too
        return results, await backend.count()

    results, count = run(reindex, indexed)
    assert [r.ok for r in results] == [True, True]
    assert count == len(DOCS)
    stored = run(lambda b: b.get("helmet"), indexed)
    assert stored is not None
    assert stored.uri == "/elsewhere/helmet.jpg"


def test_a_bad_document_fails_alone(folder: Path) -> None:
    short = dataclasses.replace(DOCS["helmet"], embedding=(1.0, 0.0, 0.0))
    results = run(lambda b: index_all(b, [DOCS["espresso"], short]), folder)
    assert [(r.id, r.ok) for r in results] == [("espresso", True), ("helmet", False)]
    assert "embedding has 3 values" in (results[1].error or "")
    assert run(lambda b: b.count(), folder) == 1


def test_metadata_json_cannot_hold_fails_its_document_alone(folder: Path) -> None:
    not_a_number = dataclasses.replace(DOCS["moped"], metadata={"exposure": float("nan")})
    results = run(lambda b: index_all(b, [not_a_number, DOCS["espresso"]]), folder)
    assert [(r.id, r.ok) for r in results] == [("moped", False), ("espresso", True)]
    assert "not JSON compliant" in (results[0].error or "")
    assert ids(search(folder, "*").hits) == ["espresso"]


def test_existing_ids(indexed: Path) -> None:
    asked = ["moped", "nope", "espresso", "moped"]
    assert run(lambda b: b.existing_ids(asked), indexed) == {"moped", "espresso"}
    assert run(lambda b: b.existing_ids([]), indexed) == set()


def test_document_round_trips_with_its_metadata(indexed: Path) -> None:
    original = DOCS["espresso"]
    stored = run(lambda b: b.get("espresso"), indexed)
    assert stored is not None
    assert dataclasses.replace(stored, embedding=None) == dataclasses.replace(
        original, embedding=None
    )
    assert stored.metadata == {"album": "cafe"}
    assert stored.embedding is not None
    # Kept as a unit vector in float16: the direction is what cosine search uses.
    unit = np.asarray(original.embedding) / np.linalg.norm(original.embedding or ())
    np.testing.assert_allclose(stored.embedding, unit, atol=1e-3)
    assert float(np.dot(stored.embedding, unit)) > 0.9999
    assert run(lambda b: b.get("absent"), indexed) is None


def test_search_hits_leave_the_embedding_out(indexed: Path) -> None:
    (hit,) = search(indexed, "espresso").hits
    assert hit.document.embedding is None
    assert hit.document.metadata == {"album": "cafe"}


def test_data_survives_close_and_reopen(indexed: Path) -> None:
    assert run(lambda b: b.count(), indexed) == len(DOCS)
    assert run(lambda b: b.count(), indexed, writer=True) == len(DOCS)


def test_close_is_idempotent_and_final(folder: Path) -> None:
    async def main() -> None:
        backend = await EmbeddedIndex.open(folder, writer=True)
        await backend.close()
        await backend.close()
        with pytest.raises(SearchBackendError, match="closed"):
            await backend.count()

    asyncio.run(main())


def test_a_folder_with_other_fields_is_refused_with_advice(folder: Path) -> None:
    folder.mkdir()
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("title", stored=True)
    tantivy.Index(builder.build(), path=str(folder))
    with pytest.raises(SearchBackendError, match="different fields"):
        run(lambda b: b.count(), folder)


# --- kNN -------------------------------------------------------------------------------------


def near(seed: int, noise: float = 0.3) -> list[float]:
    """A vector close to ``unit_vector(seed)``, not equal to it (and not normalised)."""
    jitter = np.random.default_rng(100 + seed).standard_normal(EMBEDDING_DIMS) / np.sqrt(
        EMBEDDING_DIMS
    )
    return [float(x) for x in 3 * (np.array(unit_vector(seed)) + noise * jitter)]


def test_knn_returns_the_nearest_first_with_its_cosine(indexed: Path) -> None:
    page = run(lambda b: b.knn(near(2), k=10), indexed)
    # Only the three documents with an embedding are candidates.
    assert ids(page.hits)[0] == "helmet"
    assert set(ids(page.hits)) == {"espresso", "helmet", "moped"}
    assert page.total == 3
    assert 0.9 < page.hits[0].score <= 1.0
    assert abs(page.hits[1].score) < 0.2  # random 1280-d vectors are nearly orthogonal
    assert page.hits[0].document.embedding is None


def test_knn_respects_k_and_exclude_id(indexed: Path) -> None:
    assert ids(run(lambda b: b.knn(near(3), k=1), indexed).hits) == ["moped"]
    page = run(lambda b: b.knn(unit_vector(3), k=10, exclude_id="moped"), indexed)
    assert "moped" not in ids(page.hits)
    assert len(page.hits) == 2


def test_knn_rejects_a_vector_of_the_wrong_size(indexed: Path) -> None:
    with pytest.raises(BadRequest, match="3 values"):
        run(lambda b: b.knn([1.0, 0.0, 0.0]), indexed)


def test_knn_sees_documents_committed_after_its_cache_was_built(indexed: Path) -> None:
    """A server's reader keeps kNN vectors cached; an indexer's commit must invalidate them."""
    newcomer = make_doc("newcomer", [ESPRESSO], seed=42)

    async def main() -> tuple[list[str], list[str], list[str]]:
        reader = await EmbeddedIndex.open(indexed)
        writer = await EmbeddedIndex.open(indexed, writer=True)
        try:
            before = ids((await reader.knn(near(42), k=1)).hits)
            await index_all(writer, [newcomer])
            after = ids((await reader.knn(near(42), k=1)).hits)
            # The writer's own object must not serve its stale cache either.
            await writer.knn(near(42), k=1)
            await index_all(writer, [dataclasses.replace(newcomer, embedding=unit_vector(7))])
            replaced = ids((await writer.knn(near(42), k=1)).hits)
            return before, after, replaced
        finally:
            await writer.close()
            await reader.close()

    before, after, replaced = asyncio.run(main())
    assert before != ["newcomer"]
    assert after == ["newcomer"]
    assert replaced != ["newcomer"]


# --- One writer, many readers ----------------------------------------------------------------


def test_a_second_writer_is_locked_out_until_the_first_closes(folder: Path) -> None:
    async def main() -> None:
        first = await EmbeddedIndex.open(folder, writer=True)
        reader = await EmbeddedIndex.open(folder)
        try:
            with pytest.raises(IndexLocked) as caught:
                await EmbeddedIndex.open(folder, writer=True)
            assert str(folder) in caught.value.message
            assert "deeptag index" in caught.value.message
            # A reader's index() takes the lock for the call only, so it is refused too.
            with pytest.raises(IndexLocked):
                await index_all(reader, [DOCS["espresso"]])
        finally:
            await first.close()
        try:
            assert [r.ok for r in await index_all(reader, [DOCS["espresso"]])] == [True]
            # ... and released it afterwards.
            second = await EmbeddedIndex.open(folder, writer=True)
            await second.close()
        finally:
            await reader.close()

    asyncio.run(main())


@pytest.mark.parametrize("writer", [True, False])
def test_concurrent_index_calls_take_turns(folder: Path, writer: bool) -> None:
    batches = [[make_doc(f"b{i}-{j}", [ESPRESSO], seed=j) for j in range(3)] for i in range(4)]

    async def main(backend: EmbeddedIndex) -> tuple[list[list[IndexResult]], int]:
        results = await asyncio.gather(*(index_all(backend, batch) for batch in batches))
        return list(results), await backend.count()

    results, count = run(main, folder, writer=writer)
    assert all(r.ok for batch in results for r in batch)
    assert count == 12


def test_a_reader_sees_commits_made_after_it_opened(folder: Path) -> None:
    async def main() -> tuple[int, int]:
        reader = await EmbeddedIndex.open(folder)
        writer = await EmbeddedIndex.open(folder, writer=True)
        try:
            before = await reader.count()
            await index_all(writer, list(DOCS.values()))
            return before, (await reader.search("espresso")).total
        finally:
            await writer.close()
            await reader.close()

    assert asyncio.run(main()) == (0, 1)


#: Holds the writer lock until killed.
HOLDER = """
import asyncio, sys, time
from pathlib import Path
from orchestrator.search.embedded import EmbeddedIndex

async def main() -> None:
    await EmbeddedIndex.open(Path(sys.argv[1]), writer=True)
    print("locked", flush=True)
    time.sleep(60)

asyncio.run(main())
"""

#: Indexes batches of 5 new documents (plus one re-indexed) forever, one commit each,
#: printing how many batches are committed.
INDEXER = """
import asyncio, sys
from pathlib import Path
from orchestrator.search.embedded import EmbeddedIndex
from tests.unit.test_embedded_index import ESPRESSO, HELMET, make_doc

async def main() -> None:
    index = await EmbeddedIndex.open(Path(sys.argv[1]), writer=True)
    prefix = sys.argv[2]
    batch = 0
    while True:
        batch += 1
        docs = [make_doc(f"{prefix}-{batch}-{j}", [ESPRESSO, HELMET], seed=j) for j in range(5)]
        if batch > 1:
            docs.append(make_doc(f"{prefix}-{batch - 1}-0", [HELMET], seed=9))
        async for result in index.index(docs):
            assert result.ok, result
        print(batch, flush=True)

asyncio.run(main())
"""


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``python -c CODE ARGS`` from the repository root; kill leftovers at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(code: str, *args: str) -> subprocess.Popen[str]:
        stderr = (tmp_path / f"stderr-{len(started)}.txt").open("w")
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        stderr.close()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def wait_for_line(process: subprocess.Popen[str], tmp_path: Path) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        errors = "".join(p.read_text() for p in tmp_path.glob("stderr-*.txt"))
        pytest.fail(f"child exited before reporting: {errors[-3000:]}")
    return line.strip()


def test_the_lock_of_another_process_is_refused_and_freed_when_it_dies(
    folder: Path, tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    holder = spawn(HOLDER, str(folder))
    assert wait_for_line(holder, tmp_path) == "locked"
    with pytest.raises(IndexLocked, match="another `deeptag index`, `sync`, `watch` or server"):
        run(lambda b: b.count(), folder, writer=True)
    # tantivy's lock is a flock on .tantivy-writer.lock: the kernel drops it with the process.
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert run(lambda b: b.count(), folder, writer=True) == 0


def test_killing_an_indexer_mid_commit_leaves_a_usable_index(
    folder: Path, tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    delays = random.Random(20240501)
    committed_before = 0
    for round_number in range(3):
        indexer = spawn(INDEXER, str(folder), f"r{round_number}")
        wait_for_line(indexer, tmp_path)  # the first batch is in
        time.sleep(delays.uniform(0.0, 0.4))
        indexer.send_signal(signal.SIGKILL)
        printed, _ = indexer.communicate()
        batches = int(printed.split()[-1]) if printed.strip() else 1

        last_batch = [f"r{round_number}-{batches}-{j}" for j in range(5)]
        # writer=True: the dead process's lock must be gone.
        inspect = functools.partial(inspect_after_crash, last_batch=last_batch)
        count, total, nearest, found = run(inspect, folder, writer=True)
        new = count - committed_before
        # Each batch adds 5 new ids atomically; the kill may land after a commit but before
        # its number was printed, so one more batch than printed may be in.
        assert new in (5 * batches, 5 * (batches + 1)), (new, batches)
        assert total == nearest == count
        assert found == set(last_batch)
        committed_before = count + 1  # inspect_after_crash added one


async def inspect_after_crash(
    backend: EmbeddedIndex, last_batch: list[str]
) -> tuple[int, int, int, set[str]]:
    """Count, match-all total, kNN candidates and which of the last reported batch are in.

    Then index one more document, to show the index is writable again.
    """
    count = await backend.count()
    total = (await backend.search("*", size=1)).total
    nearest = len((await backend.knn(unit_vector(0), k=count)).hits)
    found = await backend.existing_ids(last_batch)
    extra = make_doc(f"after-{last_batch[0]}", [ESPRESSO], seed=5)
    assert [r.ok for r in await index_all(backend, [extra])] == [True]
    assert await backend.count() == count + 1
    return count, total, nearest, found
