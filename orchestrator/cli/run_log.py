"""What a bulk run tells as it goes: its failure log, and the outages it waits through."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from rich.progress import Progress, TaskID

from orchestrator.cli.common import err_console
from orchestrator.errors import quote_input
from orchestrator.indexing import FailedImage


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
