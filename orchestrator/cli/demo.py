"""``deeptag demo``: classify the sample photos on a local Triton and print their top-3."""

from __future__ import annotations

import time

from rich.table import Table

from orchestrator.cli.common import console, run_async, user_errors
from orchestrator.pipeline import TagOptions
from orchestrator.runtime import tagging_session, triton_for
from orchestrator.samples import sample_photos
from orchestrator.settings import Settings, load_settings
from orchestrator.sources import classify_all
from orchestrator.types import ItemFailure, Outcome


async def _classify(settings: Settings, paths: list[str]) -> list[Outcome]:
    with triton_for(settings) as triton:
        if triton.local is not None:
            console.print(f"local Triton ready on {triton.endpoint} (metrics {triton.metrics_url})")
        async with tagging_session(settings, triton.endpoints, path_roots=None) as session:
            console.print(
                f"model {session.model.name} v{session.model.version}, "
                f"max batch {session.model.max_batch_size}"
            )
            return await session.tagger.tag(classify_all(paths), TagOptions(best=3))


@user_errors
def demo() -> None:
    """Tag the photos that ship with scikit-image, through a local Triton."""
    settings = load_settings()
    photos = [str(p) for p in sample_photos()]
    started = time.perf_counter()
    outcomes = run_async(_classify(settings, photos))
    table = Table(title="deeptag demo: top-3 labels per photo")
    table.add_column("photo")
    for rank in (1, 2, 3):
        table.add_column(f"#{rank}")
    for outcome in outcomes:
        name = outcome.source.uri.rsplit("/", 1)[-1]
        if isinstance(outcome, ItemFailure):
            table.add_row(name, f"[red]{outcome.error.message}[/]", "", "")
            continue
        cells = [f"{label.words.split(',')[0]} ({label.score:.2f})" for label in outcome.labels]
        table.add_row(name, *cells)
    console.print(table)
    console.print(f"done in {time.perf_counter() - started:.1f}s, Triton stopped")
