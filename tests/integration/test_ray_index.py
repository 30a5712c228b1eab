"""``deeptag index --engine ray`` stores what the single-process indexer stores.

A local Ray with 2 CPUs, two real Tritons, noida-db: the same folder (the sample photos, a
file that is not an image, a second copy of one photo) indexed on Ray into one index and by
the Indexer into another gives the same documents, failure lines and counts; a second Ray run
skips everything; and the embedded index is refused before any work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.distributed import run_on_ray
from orchestrator.errors import BadRequest, ConfigError
from orchestrator.indexing import FailedImage, IndexOptions, IndexStats
from orchestrator.runtime import served_models
from orchestrator.search.base import ImageDocument, SearchBackend
from orchestrator.settings import Settings
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port
from tests.search_support import index_paths, search_settings, with_backend

pytestmark = pytest.mark.integration

OPTIONS = IndexOptions(chunk_size=2, metadata={"album": "samples"})


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """One local Ray for the module; run_on_ray uses it and leaves it running."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def second_triton(
    exported_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalTriton]:
    ports = TritonPorts(free_port(), free_port(), free_port())
    only = served_models(Settings(model_repository=exported_model), every_model=True)
    work = tmp_path_factory.mktemp("triton-b")
    with LocalTriton(exported_model, work, ports, only=only) as server:
        yield server


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, samples: dict[str, Path]) -> Path:
    """The five sample photos, a text file named like a photo, and a copy of one photo."""
    target = tmp_path_factory.mktemp("photos")
    for path in samples.values():
        shutil.copyfile(path, target / path.name)
    (target / "notes.jpg").write_text("not a photo\n" * 10)
    # Sorted after the original: the original's path is the one stored.
    shutil.copyfile(samples["coffee"], target / "zz-coffee-again.png")
    return target


def stored(settings: Settings, ids: list[str]) -> dict[str, ImageDocument]:
    async def fetch(backend: SearchBackend) -> dict[str, ImageDocument]:
        found = {doc_id: await backend.get(doc_id) for doc_id in ids}
        return {k: dataclasses.replace(v, indexed_at="") for k, v in found.items() if v}

    return with_backend(settings, fetch)


def ignore(_: object) -> None:
    pass


def counts(stats: IndexStats) -> tuple[int, int, int, int]:
    return stats.indexed, stats.skipped, stats.copies, stats.failed


def run(settings: Settings, folder: Path) -> tuple[IndexStats, list[FailedImage], int]:
    """run_on_ray over ``folder``: its stats, failure lines, and the last progress count."""
    failures: list[FailedImage] = []
    progress: list[int] = []
    stats = run_on_ray(
        settings, [str(folder)], None, OPTIONS, failures.append, lambda s: progress.append(s.done)
    )
    return stats, failures, progress[-1]


def test_ray_run_stores_what_the_indexer_stores_and_resumes(
    ray_cluster: None,
    triton: LocalTriton,
    second_triton: LocalTriton,
    elasticsearch_url: str,
    folder: Path,
    tmp_path: Path,
) -> None:
    both = f"{triton.http_url},{second_triton.http_url}"
    # With the safety score on: on Ray it is a stage of its own, between screen and classify.
    safety = {"safety": True}
    on_ray = search_settings("es", both, elasticsearch_url, tmp_path / "a", "ray")
    on_ray = on_ray.model_copy(update=safety)
    alone = search_settings("es", triton.http_url, elasticsearch_url, tmp_path / "b", "ray")
    alone = alone.model_copy(update=safety)
    paths = sorted(folder.iterdir())
    photos = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.name != "notes.jpg"}

    ray_stats, ray_failures, last_progress = run(on_ray, folder)
    stats, failures = index_paths(alone, paths, OPTIONS)

    assert counts(ray_stats) == counts(stats) == (5, 0, 1, 1)
    assert last_progress == len(paths)
    assert ray_stats.stopped_by is None
    assert sorted(ray_failures, key=str) == sorted(failures, key=str)
    assert [(f.source, f.stage) for f in ray_failures] == [(str(folder / "notes.jpg"), "read")]
    ids = sorted(photos)
    documents = stored(on_ray, ids)
    assert set(documents) == photos
    single = stored(alone, ids)
    for doc_id in ids:
        # Bit for bit, but for the semantic vector: numpy's matrix product rounds its last
        # bit differently with the batch's size, and Ray batches the images differently.
        assert dataclasses.replace(documents[doc_id], semantic=None) == dataclasses.replace(
            single[doc_id], semantic=None
        )
        assert documents[doc_id].semantic == pytest.approx(single[doc_id].semantic, abs=1e-6)
    assert all(d.metadata == {"album": "samples"} and d.semantic for d in documents.values())
    # Compared above with the Indexer's; here, not both missing.
    assert all(d.phash for d in documents.values())
    assert all(0 <= d.analyses["safety"]["nsfw"] < 0.2 for d in documents.values())
    coffee = hashlib.sha256((folder / "coffee.png").read_bytes()).hexdigest()
    assert documents[coffee].uri == str(folder / "coffee.png")

    again, again_failures, _ = run(on_ray, folder)
    assert counts(again) == (0, 6, 0, 1)
    assert again_failures == ray_failures


def test_the_embedded_index_and_trained_models_are_refused(tmp_path: Path) -> None:
    embedded = search_settings(
        "embedded", "http://127.0.0.1:9", "http://127.0.0.1:9", tmp_path, "ray"
    )
    with pytest.raises(ConfigError, match=r"needs Elasticsearch.*DEEPTAG_ES_URL"):
        run_on_ray(embedded, [str(tmp_path)], None, OPTIONS, ignore, ignore)
    with pytest.raises(BadRequest, match="--model is not supported with --engine ray"):
        run_on_ray(embedded, [str(tmp_path)], None, OPTIONS, ignore, ignore, custom_model="astro")


def test_the_first_of_many_copies_is_the_one_stored(
    ray_cluster: None,
    triton: LocalTriton,
    elasticsearch_url: str,
    samples: dict[str, Path],
    tmp_path: Path,
) -> None:
    """Copies spread over many blocks: the Screen still meets them in source order."""
    photos = tmp_path / "copies"
    photos.mkdir()
    for i in range(16):
        shutil.copyfile(samples["coffee"], photos / f"copy-{i:02}.png")
    settings = search_settings("es", triton.http_url, elasticsearch_url, tmp_path / "s", "ray")
    stats = run_on_ray(settings, [str(photos)], None, IndexOptions(chunk_size=1), ignore, ignore)
    assert counts(stats) == (1, 0, 15, 0)
    doc_id = hashlib.sha256(samples["coffee"].read_bytes()).hexdigest()
    document = stored(settings, [doc_id])[doc_id]
    assert document.uri == str(photos / "copy-00.png")
    assert sorted(p.uri for p in document.places) == [
        str(photos / f"copy-{i:02}.png") for i in range(16)
    ]
