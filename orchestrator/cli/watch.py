"""``deeptag watch FOLDER...``: keep the index in line with folders as they change."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.markup import escape

from orchestrator.cli.common import Sink, err_console, run_async, user_errors
from orchestrator.cli.run_log import FailureLog, FailuresOption, failure_log_path
from orchestrator.retry import RetryPolicy
from orchestrator.search.base import BackendKind
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings, load_settings
from orchestrator.sync import FolderReport, check_folders
from orchestrator.sync_indexing import LocalIndexing
from orchestrator.sync_plan import Change
from orchestrator.watch import WatchCounters, Watcher, folder_syncer


def describe(report: FolderReport) -> str | None:
    """One log line for a sync that changed something (None for one that did not)."""
    changed = [
        f"{report.counts[c]} {c.value}"
        for c in Change
        if c is not Change.unchanged and report.counts.get(c)
    ]
    if not changed and not report.refused:
        return None
    line = f"{report.root}: {', '.join(changed) or 'nothing changed'}"
    return f"{line}; not removed: {report.refused}" if report.refused else line


def _tell(reports: list[FolderReport]) -> None:
    for report in reports:
        line = describe(report)
        if line is not None:
            err_console.print(escape(line), highlight=False, soft_wrap=True)


async def watch_folders(
    settings: Settings, roots: Sequence[str], kind: BackendKind | None, failures: FailureLog
) -> None:
    retry = RetryPolicy(settings.retry_window_s)
    # The embedded index's single writer while it runs, as a server is: a writer taken per
    # batch left ~135 MB more resident after a burst of 2,000 files (bench/watch_burst.py).
    backend = await open_backend(settings, kind, writer=True, retry=retry)
    indexing = LocalIndexing(settings, backend, failures.write, retry)
    watcher = Watcher(
        roots,
        folder_syncer(backend, indexing, settings.sync_max_remove_fraction),
        settings.watch_debounce_ms,
        WatchCounters(on_reports=_tell),
    )
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(watcher.run())

    def stop() -> None:
        # A sync cut short is safe: content is indexed before locations move or are removed,
        # and the next start catches up.
        watcher.stop()
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await indexing.aclose()
        await backend.close()


@user_errors
def watch(
    folders: Annotated[list[str], typer.Argument(help="Folders to follow.")],
    sink: Annotated[
        Sink | None,
        typer.Option(help="Default: es when DEEPTAG_ES_URL is set, else embedded."),
    ] = None,
    failures: FailuresOption = None,
) -> None:
    """Sync the folders, then follow them: new, moved, edited and deleted files are applied
    in batches as they settle. Ctrl-C or SIGTERM stops; started again, it catches up."""
    settings = load_settings()
    failures = failure_log_path(settings, failures, "watch")
    roots = check_folders(folders)
    err_console.print(
        f"watching {', '.join(roots)} (Ctrl-C stops); failures go to {failures}", highlight=False
    )
    with FailureLog(failures) as log:
        run_async(watch_folders(settings, roots, sink.kind if sink else None, log))
    err_console.print("stopped", highlight=False)
