"""Embeddings of training images through the serving model on Triton, cached by SHA-256.

Retraining with more images embeds only the new ones: each image's embedding is kept under
``<data_dir>/embeddings/<model>-v<version>/`` named by the SHA-256 of its bytes, so a renamed
or copied file is still a cache hit, and a new backbone version starts a fresh cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from orchestrator.errors import ImageTooLarge, ItemError, SourceNotFound, quote_input
from orchestrator.files import write_atomically
from orchestrator.pipeline import chunked
from orchestrator.preprocess import prepare
from orchestrator.triton.client import Classifier
from orchestrator.types import ImageBytes, ImageSource, PreparedImage, SourceKind

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SkippedFile:
    """A training file that could not be used, and why (``reason`` as ``deeptag index`` says)."""

    path: str
    reason: str
    message: str


@dataclass(frozen=True)
class EmbedProgress:
    done: int
    total: int
    cached: int
    skipped: int


@dataclass(frozen=True, eq=False)
class Embedded:
    """The usable files, in input order, with one embedding row each."""

    paths: tuple[Path, ...]
    sha256: tuple[str, ...]
    vectors: Vector  # [n, dims]
    skipped: tuple[SkippedFile, ...]
    cached: int


class EmbeddingCache:
    """One ``.npy`` file per image, written atomically so a killed run leaves no torn file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}.npy"

    def get(self, sha256: str) -> Vector | None:
        try:
            vector = np.load(self._path(sha256), allow_pickle=False)
        except (OSError, ValueError):
            return None
        loaded: Vector = vector.astype(np.float32, copy=False)
        return loaded

    def put(self, sha256: str, vector: Vector) -> None:
        out = io.BytesIO()
        np.save(out, np.asarray(vector, dtype=np.float32), allow_pickle=False)
        write_atomically(self._path(sha256), out.getvalue())


def cache_for(data_dir: Path, model: str, version: str) -> EmbeddingCache:
    return EmbeddingCache(data_dir / "embeddings" / f"{model}-v{version}")


@dataclass(frozen=True, eq=False)
class _Read:
    path: Path
    sha256: str
    vector: Vector | None  # from the cache
    prepared: PreparedImage | None  # to embed


def _read(path: Path, cache: EmbeddingCache, max_bytes: int, max_pixels: int) -> _Read:
    """Hash the file; decode it only when its embedding is not cached yet (CPU-bound)."""
    shown = quote_input(str(path))
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageTooLarge(f"{shown}: {size} bytes, over the {max_bytes} byte limit")
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise SourceNotFound(f"{shown}: no such file") from e
    except PermissionError as e:
        raise SourceNotFound(f"{shown}: not readable ({e.strerror})") from e
    sha256 = hashlib.sha256(data).hexdigest()
    cached = cache.get(sha256)
    if cached is not None:
        return _Read(path, sha256, cached, None)
    source = ImageSource(uri=str(path), kind=SourceKind.PATH, location=str(path))
    return _Read(path, sha256, None, prepare(ImageBytes(source, data), max_pixels))


async def embed_files(
    files: Sequence[Path],
    triton: Classifier,
    cache: EmbeddingCache,
    *,
    max_bytes: int,
    max_pixels: int,
    batch_size: int = 32,
    on_progress: Callable[[EmbedProgress], None] | None = None,
) -> Embedded:
    """Embed ``files`` (cache first, Triton for the rest), skipping the unusable ones."""
    paths: list[Path] = []
    hashes: list[str] = []
    rows: list[Vector] = []
    skipped: list[SkippedFile] = []
    cached = done = 0
    for chunk in chunked(files, batch_size):
        reads = await asyncio.gather(
            *(asyncio.to_thread(_read, p, cache, max_bytes, max_pixels) for p in chunk),
            return_exceptions=True,
        )
        fresh: list[_Read] = []
        by_path: dict[Path, Vector] = {}
        for path, result in zip(chunk, reads, strict=True):
            if isinstance(result, ItemError):
                skipped.append(SkippedFile(str(path), result.reason, result.message))
            elif isinstance(result, BaseException):
                raise result
            elif result.vector is not None:
                by_path[path] = result.vector
                cached += 1
            else:
                fresh.append(result)
        if fresh:
            classified = await triton.classify(
                [r.prepared.pixels for r in fresh if r.prepared is not None],
                top_k=1,
                with_embedding=True,
            )
            assert classified.embeddings is not None
            for item, vector in zip(fresh, classified.embeddings, strict=True):
                cache.put(item.sha256, vector)
                by_path[item.path] = vector
        for path, read in zip(chunk, reads, strict=True):
            if path in by_path and isinstance(read, _Read):
                paths.append(path)
                hashes.append(read.sha256)
                rows.append(by_path[path])
        done += len(chunk)
        if on_progress is not None:
            on_progress(EmbedProgress(done, len(files), cached, len(skipped)))
    vectors = np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    return Embedded(tuple(paths), tuple(hashes), vectors, tuple(skipped), cached)
