"""Decoding in worker processes (DEEPTAG_DECODE_WORKERS) gives what decoding in threads gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.search.base import ImageDocument
from orchestrator.settings import Settings
from tests.search_support import index_paths, with_backend

pytestmark = pytest.mark.integration


def documents(settings: Settings) -> dict[str, ImageDocument]:
    page = with_backend(settings, lambda backend: backend.search("*", size=100))
    return {hit.document.id: hit.document for hit in page.hits}


def test_worker_processes_index_the_same_documents_and_failures(
    settings: Settings,
    samples: dict[str, Path],
    bad_images: dict[str, Path],
    tmp_path: Path,
) -> None:
    paths = [*samples.values(), bad_images["truncated"], bad_images["text"]]
    threads = settings.model_copy(update={"data_dir": tmp_path / "threads"})
    workers = settings.model_copy(update={"data_dir": tmp_path / "workers", "decode_workers": 2})
    by_threads, failed_in_threads = index_paths(threads, paths)
    by_workers, failed_in_workers = index_paths(workers, paths)
    assert (by_workers.indexed, by_workers.failed) == (by_threads.indexed, by_threads.failed)
    assert (by_workers.indexed, by_workers.failed) == (len(samples), 2)
    # A bad image's error crosses the process boundary with its message and reason.
    assert failed_in_workers == failed_in_threads
    ours, theirs = documents(workers), documents(threads)
    assert ours.keys() == theirs.keys()
    for doc_id, document in ours.items():
        assert document.categories == theirs[doc_id].categories
        assert (document.width, document.height) == (theirs[doc_id].width, theirs[doc_id].height)
