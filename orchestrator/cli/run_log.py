"""What a bulk run tells as it goes: its failure log, and the outages it waits through."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.progress import Progress, TaskID

from orchestrator.cli.common import err_console
from orchestrator.errors import quote_input
from orchestrator.indexing import FailedImage, IndexStats
from orchestrator.settings import Settings

FailuresOption = Annotated[
    Path | None,
    typer.Option(
        help="Where every failure is written, one JSON object per line. Default: "
        "COMMAND-failures.jsonl in the data directory (DEEPTAG_DATA_DIR).",
        show_default=False,
    ),
]


def failure_log_path(settings: Settings, given: Path | None, command: str) -> Path:
    """Where ``command``'s failures go: ``given``, else the data directory (not wherever the
    command happened to be run from), as an absolute path to print."""
    return (given or settings.data_dir / f"{command}-failures.jsonl").absolute()


class FailureLog:
    """Every failure of this run, one JSON object per line, written as it happens."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    def __enter__(self) -> FailureLog:
        # The log describes this run (earlier failures are retried), and a run without
        # failures leaves no file behind.
        self.path.unlink(missing_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def write(self, failure: FailedImage) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")
        self._file.write(json.dumps(asdict(failure)) + "\n")
        self._file.flush()


class OutageNotices:
    """What the run waits for, on the progress bar and (once per outage) as a log line."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress = progress
        self.task = task
        self.since: float | None = None

    def __call__(self, notice: str | None) -> None:
        if notice is None:
            if self.since is not None:
                waited = time.monotonic() - self.since
                err_console.print(f"[green]resumed after {waited:.0f} s", highlight=False)
            self.since = None
            self.progress.update(self.task, description=INDEXING)
            return
        if self.since is None:
            self.since = time.monotonic()
            err_console.print(f"[yellow]{quote_input(notice, 300)}", highlight=False)
        self.progress.update(self.task, description=f"[yellow]{quote_input(notice, 120)}")


INDEXING = "[bold]indexing"
#: How a run that stopped early (an outage, Ctrl-C) goes on.
RESUME = (
    "What was indexed is kept: run the same command again to resume (images already indexed "
    "are skipped)."
)


def summarise(
    stats: IndexStats, stopped: bool, failures: Path, waited_s: float, startup_s: float = 0.0
) -> None:
    """The end of a run: what it did in the time the user waited (Triton's start-up, when the
    run waited for it, said apart), where its failures are, and how to resume it."""
    head = "stopped early" if stopped else "done"
    if stats.stopped_by is not None:
        err_console.print(f"[bold red]stopped:[/] {stats.stopped_by}. {RESUME}", highlight=False)
    startup = f", {startup_s:.1f} s of it starting Triton" if startup_s >= 0.1 else ""
    err_console.print(
        f"[bold]{head}:[/] {stats.indexed} indexed, {stats.skipped} skipped "
        f"(already indexed), {stats.failed} failed, {stats.copies} "
        f"{'copy' if stats.copies == 1 else 'copies'} recorded in {waited_s:.1f} s "
        f"({stats.images_per_s:.1f} images/s){startup}",
        highlight=False,
    )
    if stopped and stats.stopped_by is None:  # Ctrl-C (an outage said so above)
        err_console.print(RESUME, highlight=False)
    if stats.failed:
        err_console.print(f"failures and their reasons: {failures}", highlight=False)
    if stats.analysed:
        err_console.print(
            f"{stats.analysed} image(s) indexed before given the analyses they lacked "
            "(not classified again)",
            highlight=False,
        )
    if stats.relabelled:
        err_console.print(
            f"--meta added to {stats.relabelled} image(s) indexed before (not classified again)",
            highlight=False,
        )
    if stats.metadata_warnings:
        err_console.print(
            f"{stats.metadata_warnings} unreadable photo metadata field(s) left out (the images "
            "were indexed without them)",
            highlight=False,
        )
