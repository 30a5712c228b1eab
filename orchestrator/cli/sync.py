"""``deeptag sync FOLDER...``: bring the index in line with folders, and only with them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.common import Sink, console, err_console, run_async, user_errors
from orchestrator.cli.run_log import FailureLog, FailuresOption, failure_log_path
from orchestrator.errors import OutageTooLong
from orchestrator.retry import RetryPolicy, Waiting
from orchestrator.search.base import BackendKind
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings, load_settings
from orchestrator.sync import FolderReport, apply, check_folders, dry_report, plan_folder, total
from orchestrator.sync_indexing import LocalIndexing
from orchestrator.sync_plan import Change

#: sysexits' EX_TEMPFAIL, as `deeptag index`: an outage stopped the run; run it again.
EXIT_OUTAGE = 75


async def sync_folders(
    settings: Settings,
    roots: Sequence[str],
    kind: BackendKind | None,
    *,
    dry_run: bool,
    yes: bool,
    failures: FailureLog,
) -> list[FolderReport]:
    retry = RetryPolicy(settings.retry_window_s)
    notice = _notice()
    backend = await open_backend(settings, kind, writer=not dry_run, retry=retry, on_wait=notice)
    indexing = LocalIndexing(settings, backend, failures.write, retry, notice)
    try:
        fraction = settings.sync_max_remove_fraction
        plans = [await plan_folder(backend, root, fraction, yes) for root in roots]
        if dry_run:
            return [dry_report(p) for p in plans]
        return await apply(backend, plans, indexing)
    finally:
        await indexing.aclose()
        await backend.close()


def _notice() -> Waiting:
    said: set[str] = set()

    def tell(notice: str | None) -> None:
        if notice is not None and notice.split("(")[0] not in said:
            said.add(notice.split("(")[0])
            err_console.print(f"[yellow]{escape(notice)}", highlight=False)

    return tell


def summary_table(reports: Sequence[FolderReport], dry_run: bool) -> Table:
    table = Table(title="would change (dry run)" if dry_run else "sync", title_justify="left")
    table.add_column("folder", overflow="fold")
    for change in Change:
        table.add_column(change.value, justify="right")
    for report in reports:
        table.add_row(report.root, *(str(report.counts.get(c, 0)) for c in Change))
    if len(reports) > 1:
        counts = total(reports)
        table.add_row("[bold]total", *(str(counts[c.value]) for c in Change))
    return table


def as_json(reports: Sequence[FolderReport], dry_run: bool) -> dict[str, object]:
    """The summed counts under exactly the change names, then the detail."""
    return {
        **total(reports),
        "copied": sum(r.copied for r in reports),
        "deleted_documents": sum(r.deleted_documents for r in reports),
        "dry_run": dry_run,
        "refused": [r.refused for r in reports if r.refused],
        "folders": [
            {"folder": r.root, **{c.value: r.counts.get(c, 0) for c in Change}} for r in reports
        ],
    }


def _list_changes(reports: Sequence[FolderReport]) -> None:
    for report in reports:
        for change in report.changes:
            detail = f"  ({change.detail})" if change.detail else ""
            console.print(f"{change.change.value:<8} {change.path}{detail}", highlight=False)


@user_errors
def sync(
    folders: Annotated[list[str], typer.Argument(help="Folders to bring the index in line with.")],
    sink: Annotated[
        Sink | None,
        typer.Option(help="Default: es when DEEPTAG_ES_URL is set, else embedded."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would change; change nothing.")
    ] = False,
    as_json_output: Annotated[
        bool, typer.Option("--json", help="Print the counts as one JSON object.")
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            help="Remove even more than DEEPTAG_SYNC_MAX_REMOVE_FRACTION of a folder's files.",
        ),
    ] = False,
    failures: FailuresOption = None,
) -> None:
    """Index new files, follow moves and renames, re-index edits, drop deleted files.

    Files whose size and modification time match the index are not read. A folder that is
    missing, unreadable or empty (an unplugged drive) never counts as deleted.
    """
    settings = load_settings()
    failures = failure_log_path(settings, failures, "sync")
    roots = check_folders(folders)
    try:
        with FailureLog(failures) as log:
            reports = run_async(
                sync_folders(
                    settings,
                    roots,
                    sink.kind if sink else None,
                    dry_run=dry_run,
                    yes=yes,
                    failures=log,
                )
            )
    except OutageTooLong as e:
        err_console.print(
            f"[bold red]stopped:[/] {escape(e.message)}. What was done is kept: run the same "
            "command again to finish.",
            highlight=False,
        )
        raise typer.Exit(EXIT_OUTAGE) from None
    if dry_run and not as_json_output:
        _list_changes(reports)
    if as_json_output:
        typer.echo(json.dumps(as_json(reports, dry_run)))
    else:
        console.print(summary_table(reports, dry_run))
    for report in reports:
        if report.refused:
            err_console.print(f"[bold red]not removed:[/] {escape(report.refused)}")
    if any(r.counts.get(Change.failed) for r in reports) and failures.exists():
        err_console.print(f"failures and their reasons: {failures}", highlight=False)
    if any(r.refused for r in reports):
        raise typer.Exit(1)
