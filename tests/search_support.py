"""Helpers the search tests share: index photos in-process, run a call against a backend."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import tantivy
from PIL import Image, ImageOps

from orchestrator.indexing import FailedImage, Indexer, IndexOptions, IndexStats
from orchestrator.pipeline import TagOptions
from orchestrator.runtime import tagging_session
from orchestrator.samples import sample_dir
from orchestrator.search import hybrid
from orchestrator.search.base import ImageDocument, SearchBackend
from orchestrator.search.factory import open_backend
from orchestrator.search.hybrid import ModePage, SearchMode
from orchestrator.settings import Settings
from orchestrator.sources import classify
from orchestrator.text_encoder import TextEncoder
from orchestrator.triton.endpoint import Endpoint
from orchestrator.types import Prediction
from tests.conftest import MODEL_REPOSITORY, REPO_ROOT, DeeptagServer, ServerFactory
from tests.environment import clean_environment

#: A Triton URL nothing listens on: tests that must not need a model.
NO_TRITON = "http://127.0.0.1:9"

T = TypeVar("T")


def search_settings(
    kind: str, triton_url: str, es_url: str, data_dir: Path, index_prefix: str
) -> Settings:
    """Settings for ``kind``, with a fresh Elasticsearch index named ``index_prefix-<random>``."""
    return Settings(
        triton_url=triton_url,
        model_repository=MODEL_REPOSITORY,
        data_dir=data_dir,
        search_backend=kind,
        es_url=es_url,
        es_index=f"{index_prefix}-{uuid.uuid4().hex[:8]}",
    )


def start_search_server(
    start_deeptag: ServerFactory, kind: str, es_url: str, index_prefix: str
) -> DeeptagServer:
    """`deeptag serve` on ``kind`` (a fresh ES index), reading local images under the samples."""
    return start_deeptag(
        {
            "DEEPTAG_SEARCH_BACKEND": kind,
            "DEEPTAG_ES_URL": es_url,
            "DEEPTAG_ES_INDEX": f"{index_prefix}-{uuid.uuid4().hex[:8]}",
            "DEEPTAG_IMAGE_ROOTS": str(sample_dir()),
        }
    )


def with_backend(
    settings: Settings, call: Callable[[SearchBackend], Awaitable[T]], writer: bool = False
) -> T:
    async def main() -> T:
        backend = await open_backend(settings, writer=writer)
        try:
            return await call(backend)
        finally:
            await backend.close()

    return asyncio.run(main())


def index_documents(
    settings: Settings, documents: Sequence[ImageDocument], writer: bool = False
) -> list[bool]:
    """Store ready-made documents (as an earlier deeptag wrote them); each result's ``ok``.

    ``writer`` opens the backend as ``deeptag index`` does: an embedded folder written by an
    earlier deeptag is upgraded first.
    """

    async def add(backend: SearchBackend) -> list[bool]:
        return [result.ok async for result in backend.index(documents)]

    return with_backend(settings, add, writer)


def index_paths(
    settings: Settings, paths: Sequence[Path], options: IndexOptions | None = None
) -> tuple[IndexStats, list[FailedImage]]:
    failures: list[FailedImage] = []

    async def main() -> IndexStats:
        backend = await open_backend(settings, writer=True)
        try:
            endpoint = Endpoint.parse(str(settings.triton_url), "http")
            async with tagging_session(settings, (endpoint,), path_roots=None) as session:
                indexer = Indexer(
                    session.tagger,
                    session.model,
                    backend,
                    options or IndexOptions(),
                    failures.append,
                )
                return await indexer.run(classify(str(p), i) for i, p in enumerate(paths))
        finally:
            await backend.close()

    return asyncio.run(main()), failures


def embed(settings: Settings, path: Path) -> list[float]:
    async def main() -> list[float]:
        endpoint = Endpoint.parse(str(settings.triton_url), "http")
        async with tagging_session(settings, (endpoint,), path_roots=None) as session:
            (outcome,) = await session.tagger.tag(
                [classify(str(path), 0)], TagOptions(best=1, with_embedding=True)
            )
        assert isinstance(outcome, Prediction), outcome
        assert outcome.embedding is not None
        return [float(x) for x in outcome.embedding]

    return asyncio.run(main())


def hybrid_search(
    settings: Settings, query: str, mode: SearchMode = "hybrid", size: int = 10
) -> ModePage:
    """``query`` as ``deeptag search`` and ``/search`` run it, with the real text encoder."""

    async def main() -> ModePage:
        endpoint = Endpoint.parse(str(settings.triton_url), "http")
        encoder = TextEncoder.for_settings(settings, endpoint)
        await encoder.connect()
        backend = await open_backend(settings)
        try:
            return await hybrid.search(
                backend,
                query,
                mode,
                size=size,
                encode=encoder.encode_one,
                min_score=settings.semantic_min_score,
            )
        finally:
            await backend.close()
            await encoder.close()

    return asyncio.run(main())


def mirrored_recrop(source: Path, target: Path) -> Path:
    """The same photo flipped left-right, cropped by a tenth and re-encoded: new bytes."""
    image = ImageOps.mirror(Image.open(source).convert("RGB"))
    width, height = image.size
    image = image.crop((width // 20, height // 20, width - width // 20, height - height // 20))
    image.save(target, "JPEG", quality=85)
    return target


def variants(sources: Sequence[Path], count: int, folder: Path, side: int = 256) -> list[Path]:
    """``count`` distinct small JPEGs made from the sample photos (crops, scales, rotations)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    bases = [Image.open(p).convert("RGB") for p in sources]
    paths = []
    for i in range(count):
        image = bases[i % len(bases)]
        width, height = image.size
        scale = rng.uniform(0.6, 1.0)
        w, h = int(width * scale), int(height * scale)
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        variant = image.crop((x, y, x + w, y + h)).resize((side, side))
        if i % 3 == 1:
            variant = ImageOps.mirror(variant)
        out = io.BytesIO()
        variant.save(out, "JPEG", quality=int(rng.integers(70, 95)))
        path = folder / f"img_{i:05d}.jpg"
        path.write_bytes(out.getvalue())
        paths.append(path)
    return paths


def first_schema() -> tantivy.SchemaBuilder:
    """The fields of the first embedded index folders: before concepts, semantic vectors,
    trained models, photo metadata, locations and vector rows (vectors as stored bytes)."""
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("uri", stored=True)
    builder.add_text_field("categories.category")
    builder.add_float_field("categories.score", indexed=True, fast=True)
    builder.add_text_field("tags")
    builder.add_integer_field("width", indexed=True, fast=True)
    builder.add_integer_field("height", indexed=True, fast=True)
    builder.add_text_field("model", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("indexed_at", tokenizer_name="raw", index_option="basic")
    builder.add_json_field("_metadata", fast=True)
    builder.add_bytes_field("_source", stored=True)
    builder.add_bytes_field("embedding", stored=True)
    return builder


def deeptag_search(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`deeptag search ARGS` in a fresh process on ``settings``' index, no Triton reachable."""
    env = clean_environment()
    env.update(
        DEEPTAG_SEARCH_BACKEND=str(settings.search_backend),
        DEEPTAG_ES_URL=str(settings.es_url or ""),
        DEEPTAG_ES_INDEX=settings.es_index,
        DEEPTAG_DATA_DIR=str(settings.data_dir),
        DEEPTAG_TRITON_URL=NO_TRITON,
        COLUMNS="200",
    )
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "search", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=env,
    )
