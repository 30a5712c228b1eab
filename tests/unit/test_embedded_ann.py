"""The embedded index's approximate kNN: right answers from HNSW segments, damaged or missing
files, crashes between the two writes, filters, deletions and folders from before."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import tantivy

from orchestrator.search import embedded_knn, vector_segments
from orchestrator.search.base import Category, ImageDocument
from orchestrator.search.embedded import EmbeddedIndex
from orchestrator.search.vector_rows import RowFile
from orchestrator.search.vector_segments import Step, Views, nearest
from tests.search_support import first_schema

T = TypeVar("T")
DIMS = 32
COUNT = 600
CENTRES = np.random.default_rng(1).normal(size=(12, DIMS))


def vectors(count: int, seed: int = 0) -> np.ndarray:
    """Clustered unit vectors, as embeddings are (HNSW is not tested on uniform noise)."""
    rng = np.random.default_rng(seed)
    points = CENTRES[rng.integers(0, len(CENTRES), count)] + 0.5 * rng.normal(size=(count, DIMS))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def doc_id(i: int) -> str:
    return hashlib.sha256(f"photo {i}".encode()).hexdigest()


def document(i: int, vector: np.ndarray, label: str = "dog") -> ImageDocument:
    return ImageDocument(
        id=doc_id(i),
        uri=f"/photos/{i:05d}.jpg",
        categories=(Category(f"n0 {label}", 0.9),),
        tags=(label,),
        embedding=tuple(float(x) for x in vector),
        width=64,
        height=48,
        model="test/1",
        indexed_at="2026-01-01T00:00:00Z",
    )


def open_and(
    folder: Path, call: Callable[[EmbeddedIndex], Awaitable[T]], writer: bool = False
) -> T:
    async def main() -> T:
        index = await EmbeddedIndex.open(folder, writer=writer, dims=DIMS)
        try:
            return await call(index)
        finally:
            await index.close()

    return asyncio.run(main())


def add(folder: Path, documents: Sequence[ImageDocument], batch: int = 50) -> None:
    async def write(index: EmbeddedIndex) -> None:
        for start in range(0, len(documents), batch):
            assert all([r.ok async for r in index.index(documents[start : start + batch])])

    open_and(folder, write, writer=True)


def knn_ids(folder: Path, query: np.ndarray, k: int = 10, **options: object) -> list[str]:
    async def ask(index: EmbeddedIndex) -> list[str]:
        page = await index.knn(list(query), k=k, **options)  # type: ignore[arg-type]
        return [hit.document.id for hit in page.hits]

    return open_and(folder, ask)


def exact_ids(matrix: np.ndarray, ids: Sequence[str], query: np.ndarray, k: int = 10) -> list[str]:
    scores = matrix @ (query / np.linalg.norm(query))
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments of 64 rows merged 4 at a time: a few hundred documents exercise the graphs,
    the merges and the exact tail."""
    monkeypatch.setattr(vector_segments, "SEGMENT_ROWS", 64)
    monkeypatch.setattr(vector_segments, "MERGE_FACTOR", 4)


@pytest.fixture
def library(tmp_path: Path, small_segments: None) -> tuple[Path, np.ndarray, list[str]]:
    folder = tmp_path / "index"
    matrix = vectors(COUNT)
    labels = ["cat" if i % 10 == 0 else "dog" for i in range(COUNT)]
    add(folder, [document(i, matrix[i], labels[i]) for i in range(COUNT)])
    return folder, matrix, [doc_id(i) for i in range(COUNT)]


def manifest_files(folder: Path) -> list[str]:
    manifest = json.loads((folder / "vectors" / "manifest.json").read_text())
    return [segment["file"] for segment in manifest["segments"]["embedding"]]


def recall(folder: Path, matrix: np.ndarray, ids: list[str], queries: np.ndarray) -> float:
    found = [len(set(knn_ids(folder, q)) & set(exact_ids(matrix, ids, q))) / 10 for q in queries]
    return float(np.mean(found))


def test_answers_from_the_segments_equal_the_exact_ones(
    library: tuple[Path, np.ndarray, list[str]],
) -> None:
    folder, matrix, ids = library
    # The graphs were built and merged: 600 rows make a few segments and a short tail.
    files = manifest_files(folder)
    assert 2 <= len(files) < COUNT // 64
    queries = vectors(20, seed=5)
    assert recall(folder, matrix, ids, queries) >= 0.98
    for i in (0, 77, 599):  # a document's own vector finds it first
        assert knn_ids(folder, matrix[i], k=1) == [ids[i]]


def test_a_damaged_or_missing_ann_file_never_answers_wrongly_and_a_writer_rebuilds_it(
    library: tuple[Path, np.ndarray, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    folder, matrix, ids = library
    first, second = manifest_files(folder)[:2]
    path = folder / "vectors" / first
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (folder / "vectors" / second).unlink()
    queries = vectors(10, seed=6)
    assert recall(folder, matrix, ids, queries) >= 0.98
    assert "missing or damaged" in caplog.text
    # A writer's opening rebuilds both, and the graphs answer again.
    open_and(folder, lambda index: index.count(), writer=True)
    rebuilt = manifest_files(folder)
    assert first not in rebuilt
    assert second not in rebuilt
    assert all((folder / "vectors" / f).is_file() for f in rebuilt)
    assert recall(folder, matrix, ids, queries) >= 0.98


def test_an_unreadable_manifest_is_rebuilt(
    library: tuple[Path, np.ndarray, list[str]],
) -> None:
    folder, matrix, ids = library
    (folder / "vectors" / "manifest.json").write_text("{not json")
    queries = vectors(5, seed=7)
    assert recall(folder, matrix, ids, queries) >= 0.98
    open_and(folder, lambda index: index.count(), writer=True)
    assert manifest_files(folder)
    assert recall(folder, matrix, ids, queries) >= 0.98


def test_a_filter_finds_the_nearest_matching_even_when_the_top_k_has_none(
    library: tuple[Path, np.ndarray, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, matrix, ids = library
    cats = [i for i in range(COUNT) if i % 10 == 0]
    query = matrix[1]  # a dog: its unfiltered neighbours are nearly all dogs
    assert not set(knn_ids(folder, query, k=3)) & {ids[i] for i in cats}
    expected = exact_ids(matrix[cats], [ids[i] for i in cats], query, k=5)
    # Few matches: scanned exactly. Then as many as to go through the graphs.
    assert knn_ids(folder, query, k=5, filter="tags:cat") == expected
    monkeypatch.setattr(embedded_knn, "EXACT_FILTERED", 10)
    found = knn_ids(folder, query, k=5, filter="tags:cat")
    assert set(found) <= {ids[i] for i in cats}
    assert len(set(found) & set(expected)) >= 4
    assert knn_ids(folder, query, k=5, filter="tags:nothing") == []


def test_deleted_and_replaced_documents_leave_the_answers(
    library: tuple[Path, np.ndarray, list[str]],
) -> None:
    folder, matrix, ids = library
    gone = [ids[5], ids[300]]
    open_and(folder, lambda index: index.delete(gone), writer=True)
    for i in (5, 300):
        assert ids[i] not in knn_ids(folder, matrix[i], k=10)
    # Re-indexed with another vector: found by the new one, not the old.
    moved = vectors(1, seed=99)[0]
    add(folder, [document(7, moved)])
    assert knn_ids(folder, moved, k=1) == [ids[7]]
    assert ids[7] not in knn_ids(folder, matrix[7], k=3)


WRITER = """
import asyncio, sys
import numpy as np
from orchestrator.search import vector_segments
from tests.unit.test_embedded_ann import document, vectors
from orchestrator.search.embedded import EmbeddedIndex
vector_segments.SEGMENT_ROWS = 64
async def main():
    index = await EmbeddedIndex.open(sys.argv[1], writer=True, dims=32)
    start = int(sys.argv[2])
    matrix = vectors(5000, seed=start)
    print("open", flush=True)
    for i in range(0, 5000, 10):
        async for _ in index.index([document(start + i + j, matrix[i + j]) for j in range(10)]):
            pass
asyncio.run(main())
"""


def test_killed_between_the_two_writes_the_index_opens_and_answers_right(tmp_path: Path) -> None:
    """A writer killed with SIGKILL at random moments (rows written, commit not; commit done,
    segments not): every committed document is found by its own vector, nothing else is."""
    folder = tmp_path / "index"
    rng = np.random.default_rng(3)
    for round_ in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder), str(round_ * 10_000)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == b"open"
        time.sleep(float(rng.uniform(0.3, 1.5)))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()

    async def check(index: EmbeddedIndex) -> int:
        searcher = index._searcher()
        everything = searcher.search(tantivy.Query.all_query(), max(searcher.num_docs, 1)).hits
        stored = [searcher.doc(address) for _, address in everything]
        for entry in stored[:: max(1, len(stored) // 40)]:
            doc = await index.get(str(entry.get_first("id")))
            assert doc is not None
            assert doc.embedding is not None
            page = await index.knn(doc.embedding, k=1)
            assert [hit.document.id for hit in page.hits] == [doc.id]
        return len(stored)

    committed = open_and(folder, check)
    assert committed > 0
    # A writer opens it and carries on.
    add(folder, [document(99_999, vectors(1, seed=4)[0])])
    assert open_and(folder, lambda index: index.count()) == committed + 1


def test_a_folder_from_before_the_ann_files_is_upgraded_by_a_writer(tmp_path: Path) -> None:
    """Vectors kept in tantivy's stored documents (as until now): read and searched as they
    are, then moved to rows and graphs by a writer, keeping every document."""
    folder = tmp_path / "index"
    matrix = vectors(40, seed=8)
    folder.mkdir()
    old = tantivy.Index(first_schema().build(), path=str(folder))
    writer = old.writer(heap_size=20_000_000, num_threads=1)
    for i in range(40):
        stored = tantivy.Document()
        stored.add_text("id", doc_id(i))
        stored.add_text("uri", f"/photos/{i}.jpg")
        stored.add_text("tags", "dog")
        source = {"uri": f"/photos/{i}.jpg", "categories": [], "tags": ["dog"], "width": 1}
        stored.add_bytes("_source", json.dumps(source).encode())
        stored.add_bytes("embedding", matrix[i].astype("<f4").tobytes())
        writer.add_document(stored)
    writer.commit()
    writer.wait_merging_threads()
    del writer, old

    ids = [doc_id(i) for i in range(40)]
    assert knn_ids(folder, matrix[3], k=1) == [ids[3]]  # read as it is
    add(folder, [document(40, vectors(1, seed=9)[0])])  # a writer upgrades it first
    assert (folder / "vectors" / "embedding.f16").is_file()
    for i in (0, 3, 39):
        assert knn_ids(folder, matrix[i], k=1) == [ids[i]]
    assert open_and(folder, lambda index: index.count()) == 41


def test_the_count_of_documents_with_vectors_follows_every_commit(tmp_path: Path) -> None:
    """It is remembered between searches (a hybrid search asks each time), never past a
    commit."""
    folder = tmp_path / "index"
    matrix = vectors(3, seed=12)

    async def steps(index: EmbeddedIndex) -> list[int]:
        counts = [await index.count_with("embedding")]
        assert all([r.ok async for r in index.index([document(0, matrix[0])])])
        counts.append(await index.count_with("embedding"))
        assert all([r.ok async for r in index.index([document(1, matrix[1])])])
        counts.append(await index.count_with("embedding"))
        await index.delete([doc_id(0)])
        counts.append(await index.count_with("embedding"))
        return counts

    assert open_and(folder, steps, writer=True) == [0, 1, 2, 1]


def test_every_row_of_a_graph_is_found_from_its_own_vector(tmp_path: Path) -> None:
    """usearch's concurrent insertion leaves a few nodes unreachable; those rows are scanned
    exactly, so no row is ever lost to a search."""
    rows = RowFile(tmp_path / "embedding.f16", DIMS)
    matrix = vectors(2000, seed=21)
    rows.append(matrix.astype(np.float32))
    live = np.arange(2000, dtype=np.int64)
    segment = vector_segments.build(tmp_path, "embedding", rows, live, Step(0, 2000), 1)
    views = Views(tmp_path)
    stored = rows.matrix()
    for row in range(2000):
        keys, _ = nearest(views, [segment], rows, stored[row], 1)
        assert keys.tolist() == [row]
