"""Helpers the search tests share: index photos in-process, run a call against a backend."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps

from orchestrator.indexing import FailedImage, Indexer, IndexOptions, IndexStats
from orchestrator.pipeline import TagOptions
from orchestrator.runtime import tagging_session
from orchestrator.search import hybrid
from orchestrator.search.base import SearchBackend
from orchestrator.search.factory import open_backend
from orchestrator.search.hybrid import ModePage, SearchMode
from orchestrator.settings import Settings
from orchestrator.sources import classify
from orchestrator.text_encoder import TextEncoder
from orchestrator.triton.client import Endpoint
from orchestrator.types import Prediction

T = TypeVar("T")


def with_backend(settings: Settings, call: Callable[[SearchBackend], Awaitable[T]]) -> T:
    async def main() -> T:
        backend = await open_backend(settings)
        try:
            return await call(backend)
        finally:
            await backend.close()

    return asyncio.run(main())


def index_paths(
    settings: Settings, paths: Sequence[Path], options: IndexOptions | None = None
) -> tuple[IndexStats, list[FailedImage]]:
    failures: list[FailedImage] = []

    async def main() -> IndexStats:
        backend = await open_backend(settings, writer=True)
        try:
            endpoint = Endpoint.parse(str(settings.triton_url), "http")
            async with tagging_session(settings, endpoint, path_roots=None) as session:
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
        async with tagging_session(settings, endpoint, path_roots=None) as session:
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
        tokenizer = settings.model_repository / settings.text_model / "tokenizer.json"
        encoder = TextEncoder(endpoint, settings.text_model, tokenizer)
        await encoder.connect()
        backend = await open_backend(settings)

        async def encode(text: str) -> list[float]:
            return [float(x) for x in (await encoder.encode([text]))[0]]

        try:
            return await hybrid.search(
                backend,
                query,
                mode,
                size=size,
                encode=encode,
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
