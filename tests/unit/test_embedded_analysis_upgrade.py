"""An embedded index written by the deeptag before the analysis fields (vectors already in row
files: tests/data/embedded_rows_v1, made by that version) keeps working: a reader searches it by
words and by vector as it is, and the first writer upgrades it in place, vectors and all, after
which it takes documents with text and a safety score."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from orchestrator.search.base import ImageDocument
from orchestrator.search.documents import now_iso
from orchestrator.search.embedded import EmbeddedIndex

BEFORE = Path(__file__).resolve().parents[1] / "data" / "embedded_rows_v1"
FIRST = f"{1:064x}"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(BEFORE, target)
    return target


async def _stored(index: EmbeddedIndex) -> ImageDocument:
    document = await index.get(FIRST)
    assert document is not None
    return document


def test_a_reader_searches_the_old_folder_by_words_and_by_its_vectors(folder: Path) -> None:
    async def main() -> None:
        index = await EmbeddedIndex.open(folder)
        try:
            words = await index.search("espresso")
            assert [hit.document.id for hit in words.hits] == [FIRST]
            document = await _stored(index)
            assert document.embedding is not None
            assert document.semantic is not None
            near = await index.knn(document.semantic, k=1, field="semantic")
            assert [hit.document.id for hit in near.hits] == [FIRST]
        finally:
            await index.close()

    asyncio.run(main())


def test_the_first_writer_upgrades_it_keeping_every_vector_then_stores_analyses(
    folder: Path,
) -> None:
    async def main() -> None:
        reader = await EmbeddedIndex.open(folder)
        before = await _stored(reader)
        await reader.close()
        index = await EmbeddedIndex.open(folder, writer=True)
        try:
            after = await _stored(index)
            assert after.embedding == pytest.approx(before.embedding, abs=1e-3)
            assert after.semantic == pytest.approx(before.semantic, abs=1e-3)
            assert after.metadata == {"album": "trip"}
            assert after.tags == ("espresso",)
            assert before.semantic is not None
            near = await index.knn(before.semantic, k=1, field="semantic")
            assert [hit.document.id for hit in near.hits] == [FIRST]
            sign = ImageDocument(
                id="f" * 64, uri="/photos/sign.jpg", categories=(), tags=("door",),
                embedding=None, width=10, height=10, model="m/1", indexed_at=now_iso(),
                analyses={"ocr": {"text": "EMERGENCY EXIT"}, "safety": {"nsfw": 0.02}},
            )  # fmt: skip
            assert [r.ok async for r in index.index([sign])] == [True]
            assert [h.document.id for h in (await index.search("emergency")).hits] == [sign.id]
            assert [h.document.id for h in (await index.search("nsfw:<0.1")).hits] == [sign.id]
        finally:
            await index.close()

    asyncio.run(main())
