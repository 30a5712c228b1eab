"""Trained models' categories in the embedded index, and folders written before them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import tantivy

from orchestrator.search.base import Category, ConceptScore, CustomCategory, ImageDocument
from orchestrator.search.embedded import EmbeddedIndex


def document(doc_id: str, tag: str, custom: tuple[CustomCategory, ...] = ()) -> ImageDocument:
    return ImageDocument(
        id=doc_id,
        uri=f"/photos/{doc_id}.jpg",
        categories=(Category(f"n00000001 {tag}", 0.9),),
        tags=(tag,),
        embedding=None,
        width=10,
        height=10,
        model="efficientnet_lite0/1",
        indexed_at="2025-01-01T00:00:00Z",
        concepts=(ConceptScore("thing", 0.9),),
        custom=custom,
    )


def concepts_era_folder(folder: Path) -> None:
    """A folder as the deeptag before trained models wrote it: concepts, no custom fields."""
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("uri", stored=True)
    builder.add_text_field("categories.category")
    builder.add_float_field("categories.score", indexed=True, fast=True)
    builder.add_text_field("tags")
    builder.add_text_field("concepts.concept")
    builder.add_float_field("concepts.score", indexed=True, fast=True)
    builder.add_integer_field("width", indexed=True, fast=True)
    builder.add_integer_field("height", indexed=True, fast=True)
    builder.add_text_field("model", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("indexed_at", tokenizer_name="raw", index_option="basic")
    builder.add_json_field("_metadata", fast=True)
    builder.add_bytes_field("_source", stored=True)
    builder.add_bytes_field("embedding", stored=True)
    builder.add_bytes_field("semantic", stored=True)
    folder.mkdir(parents=True)
    index = tantivy.Index(builder.build(), path=str(folder))
    writer = index.writer(heap_size=20_000_000, num_threads=1)
    doc = tantivy.Document()
    doc.add_text("id", "cup")
    doc.add_text("uri", "/photos/cup.jpg")
    doc.add_text("tags", "espresso")
    doc.add_text("concepts.concept", "beverage")
    source = {"uri": "/photos/cup.jpg", "tags": ["espresso"], "concepts": [{"concept": "beverage"}]}
    doc.add_bytes("_source", json.dumps(source).encode())
    writer.add_document(doc)
    writer.commit()
    writer.wait_merging_threads()


async def search_ids(folder: Path, query: str) -> list[str]:
    index = await EmbeddedIndex.open(folder)
    try:
        page = await index.search(query)
        return [hit.document.id for hit in page.hits]
    finally:
        await index.close()


def test_custom_categories_are_words_and_their_model_a_filter(tmp_path: Path) -> None:
    folder = tmp_path / "index"

    async def main() -> None:
        index = await EmbeddedIndex.open(folder, writer=True)
        try:
            astro = (CustomCategory("space", "astronaut", 0.97),)
            docs = [document("a", "suit", astro), document("b", "tabby")]
            assert all([r.ok async for r in index.index(docs)])
            assert await index.existing_ids(["a", "b"]) == {"a", "b"}
            # Only "a" carries the model's categories, so only it counts as done for it.
            assert await index.existing_ids(["a", "b"], model="space") == {"a"}
            stored = await index.get("a")
            assert stored is not None
            assert stored.custom == astro
        finally:
            await index.close()

    asyncio.run(main())
    assert asyncio.run(search_ids(folder, "astronaut")) == ["a"]
    assert asyncio.run(search_ids(folder, "custom.model:space")) == ["a"]
    assert asyncio.run(search_ids(folder, "custom.model:space AND tabby")) == []


def test_a_folder_from_before_trained_models_is_read_then_upgraded(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    concepts_era_folder(folder)
    # A reader keeps searching it by every word it has, concepts included.
    assert asyncio.run(search_ids(folder, "beverage")) == ["cup"]

    async def reader_checks() -> None:
        index = await EmbeddedIndex.open(folder)
        try:
            assert index.legacy
            assert await index.existing_ids(["cup"]) == {"cup"}
            assert await index.existing_ids(["cup"], model="space") == set()
        finally:
            await index.close()

    asyncio.run(reader_checks())

    async def write_as_the_indexer_does() -> None:
        index = await EmbeddedIndex.open(folder, writer=True)
        try:
            assert not index.legacy
            custom = (CustomCategory("space", "astronaut", 0.9),)
            assert all([r.ok async for r in index.index([document("a", "suit", custom)])])
        finally:
            await index.close()

    asyncio.run(write_as_the_indexer_does())
    assert asyncio.run(search_ids(folder, "beverage")) == ["cup"]
    assert asyncio.run(search_ids(folder, "astronaut")) == ["a"]
    assert not (tmp_path / "index.legacy").exists()
