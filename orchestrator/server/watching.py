"""``serve --watch``: the folder watcher of ``deeptag watch``, beside the HTTP API.

It writes through the server's own backend (which takes the embedded index's single writer
per batch, as ``/index`` does, so searches are never held up) and tags with the server's
Triton. It lives as long as the app: the lifespan's exit stack stops it before the backend
closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from orchestrator.indexing import FailedImage
from orchestrator.server.state import ServerState
from orchestrator.sync import FolderReport, check_folders
from orchestrator.sync_indexing import LocalIndexing
from orchestrator.sync_plan import Change
from orchestrator.watch import WatchCounters, Watcher, folder_syncer

log = logging.getLogger("deeptag.watch")


def _counters(state: ServerState) -> WatchCounters:
    def events(count: int) -> None:
        state.metrics.watch_events.inc(count)

    def reports(done: list[FolderReport]) -> None:
        for report in done:
            for change in Change:
                if change is not Change.unchanged and report.counts.get(change):
                    state.metrics.sync_changes.labels(change=change.value).inc(
                        report.counts[change]
                    )
            if report.refused:
                log.warning("not removed: %s", report.refused)

    return WatchCounters(on_events=events, on_reports=reports)


def _log_failure(failure: FailedImage) -> None:
    log.warning("not indexed: %s (%s: %s)", failure.source, failure.reason, failure.error)


async def start_watching(state: ServerState) -> None:
    """Start the watcher on ``state.settings.watch`` as a task the exit stack ends."""
    settings = state.settings
    roots = check_folders([str(folder) for folder in settings.watch])
    state.watched = tuple(roots)
    backend = await state.get_backend()
    indexing = LocalIndexing(
        settings,
        backend,
        _log_failure,
        endpoints=state.triton.endpoints,
        # The watched folders only: /predict's DEEPTAG_IMAGE_ROOTS do not widen with them.
        path_roots=tuple(Path(root) for root in roots),
        metrics=state.metrics,
    )
    watcher = Watcher(
        roots,
        folder_syncer(backend, indexing, settings.sync_max_remove_fraction),
        settings.watch_debounce_ms,
        _counters(state),
    )
    task = asyncio.create_task(_run(watcher), name="deeptag-watch")

    async def stop() -> None:
        watcher.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await indexing.aclose()

    state.exit_stack.push_async_callback(stop)


async def _run(watcher: Watcher) -> None:
    try:
        await watcher.run()
    except asyncio.CancelledError:
        raise
    except Exception:  # the API keeps serving; the log says why the index stopped following
        log.exception("the folder watcher stopped")
