"""``deeptag index --refresh-metadata``: the CLI side of :mod:`orchestrator.refresh` (photo
metadata, and the perceptual hash of documents indexed without one)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from orchestrator import collect
from orchestrator.cli.common import err_console, run_async
from orchestrator.fetch import build_http_client
from orchestrator.indexing import FailedImage
from orchestrator.refresh import MetadataRefresher, RefreshStats
from orchestrator.retry import RetryPolicy
from orchestrator.runtime import source_reader
from orchestrator.search.base import BackendKind
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings


def refresh_metadata(
    settings: Settings,
    sources: list[str],
    kind: BackendKind | None,
    on_failure: Callable[[FailedImage], None],
) -> RefreshStats:
    """Read the metadata of ``sources`` into their documents, with a progress bar."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]reading metadata"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[updated]} updated"),
        TextColumn("[dim]{task.fields[unchanged]} unchanged"),
        TextColumn("[yellow]{task.fields[not_indexed]} not indexed"),
        TextColumn("[red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=err_console,
    )
    task = progress.add_task(
        "", total=collect.count(sources), updated=0, unchanged=0, not_indexed=0, failed=0
    )

    def show(stats: RefreshStats) -> None:
        progress.update(
            task,
            completed=stats.done,
            updated=stats.updated,
            unchanged=stats.unchanged,
            not_indexed=stats.not_indexed,
            failed=stats.failed,
        )

    stdin = sys.stdin if "-" in sources else None
    with progress:
        stats = run_async(_refresh(settings, sources, stdin, kind, on_failure, show))
        show(stats)
    return stats


async def _refresh(
    settings: Settings,
    sources: list[str],
    stdin: TextIO | None,
    kind: BackendKind | None,
    on_failure: Callable[[FailedImage], None],
    on_progress: Callable[[RefreshStats], None],
) -> RefreshStats:
    retry = RetryPolicy(settings.retry_window_s)
    backend = await open_backend(settings, kind, writer=True, retry=retry)
    http = build_http_client(settings.fetch_timeout_s)
    try:
        refresher = MetadataRefresher(
            source_reader(settings, http, path_roots=None),
            backend,
            max_pixels=settings.max_image_pixels,
            with_location=settings.index_location,
            chunk_size=settings.infer_batch_size,
            on_failure=on_failure,
            on_progress=on_progress,
        )
        return await refresher.run(collect.expand(sources, stdin))
    finally:
        await http.aclose()
        await backend.close()


def summarise(stats: RefreshStats, failures: str) -> None:
    err_console.print(
        f"[bold]done:[/] metadata of {stats.updated} indexed images updated, {stats.unchanged} "
        f"unchanged, {stats.not_indexed} not indexed, {stats.failed} failed "
        f"in {stats.elapsed_s:.1f} s",
        highlight=False,
    )
    if stats.hashed:
        # Documents indexed before deeptag hashed images: near-duplicate checks need it.
        err_console.print(
            f"{stats.hashed} of them given a perceptual hash (indexed before deeptag computed one)",
            highlight=False,
        )
    if stats.not_indexed:
        err_console.print(
            f"{stats.not_indexed} images are not in the index: `deeptag index` them (that "
            "reads their metadata too)",
            highlight=False,
        )
    if stats.metadata_warnings:
        err_console.print(
            f"{stats.metadata_warnings} unreadable photo metadata field(s) left out",
            highlight=False,
        )
    if stats.failed:
        err_console.print(f"failures and their reasons: {failures}", highlight=False)
