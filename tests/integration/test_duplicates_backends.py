"""Duplicate groups found through each backend's kNN: exact copies from locations, near
duplicates from close embeddings confirmed by perceptual hashes, the same on both."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import numpy as np
import pytest

from orchestrator.dedupe import find_groups, found_json
from orchestrator.duplicates import Kind
from orchestrator.search.base import Category, ImageDocument, Location
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings
from tests.photo_library import NO_TRITON
from tests.search_support import index_documents, search_settings

pytestmark = pytest.mark.integration
RNG = np.random.default_rng(11)
BASE = RNG.normal(size=(6, 1280))


def vector(i: int, noise: float = 0.0) -> tuple[float, ...]:
    v = BASE[i] + noise * RNG.normal(size=1280)
    return tuple(float(x) for x in v / np.linalg.norm(v))


def doc(
    name: str, v: tuple[float, ...], phash: str | None, *paths: str, size: int = 800
) -> ImageDocument:
    return ImageDocument(
        id=hashlib.sha256(name.encode()).hexdigest(),
        uri=paths[0],
        categories=(Category("n1 cat", 0.9),),
        tags=("cat",),
        embedding=v,
        width=size,
        height=size,
        model="m/1",
        indexed_at="2026-01-01T00:00:00Z",
        locations=tuple(Location(p, size * 10, 1.0) for p in paths),
        phash=phash,
    )


#: A photo, its resized copy (close vector, nearly the same hash), another shot of the same
#: subject (close vector, a different hash), an exact copy kept twice, and unrelated photos.
DOCS = [
    doc("cat", vector(0), "f0f0f0f0f0f0f0f0", "/lib/cat.png", size=1000),
    doc("cat-small", vector(0, 0.01), "f0f0f0f0f0f0f0f1", "/lib/small/cat.jpg", size=500),
    doc("cat-again", vector(0, 0.012), "0f0f0f0f0f0f0f0f", "/lib/cat-again.jpg"),
    doc("sea", vector(1), "aaaaaaaaaaaaaaaa", "/lib/sea.jpg", "/lib/backup/sea.jpg"),
    *(doc(f"other{i}", vector(i), f"{i:016x}", f"/lib/other{i}.jpg") for i in range(2, 6)),
]


@pytest.fixture(params=["embedded", "es"])
def settings(request: pytest.FixtureRequest, elasticsearch_url: str, tmp_path: Path) -> Settings:
    chosen = search_settings(
        request.param, NO_TRITON, elasticsearch_url, tmp_path / "data", "deeptag-dups"
    )
    assert all(index_documents(chosen, DOCS, writer=True))
    return chosen


def groups(settings: Settings, roots: list[str] | None = None) -> dict[str, object]:
    async def main() -> dict[str, object]:
        backend = await open_backend(settings)
        try:
            return found_json(await find_groups(backend, roots or []))
        finally:
            await backend.close()

    return asyncio.run(main())


def test_exact_copies_and_a_resized_copy_are_grouped_but_another_shot_is_not(
    settings: Settings,
) -> None:
    found = groups(settings)
    by_kind = {g["kind"]: g for g in found["groups"]}  # type: ignore[attr-defined]
    assert set(by_kind) == {Kind.exact.value, Kind.near.value}
    near = by_kind["near"]
    assert near["keeper"] == "/lib/cat.png"
    assert [m["location"] for m in near["members"]] == ["/lib/cat.png", "/lib/small/cat.jpg"]
    assert near["members"][0]["keeper"] is True
    exact = by_kind["exact"]
    assert sorted(m["location"] for m in exact["members"]) == [
        "/lib/backup/sea.jpg",
        "/lib/sea.jpg",
    ]
    assert exact["keeper"] == "/lib/sea.jpg"  # the shorter path
    # Under one folder only: the copy in /lib/backup/ has no twin there.
    assert groups(settings, ["/lib/backup/"])["groups"] == []
