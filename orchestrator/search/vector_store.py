"""The embedded index's vectors: the row files and HNSW segments of each field, in ``vectors/``.

Readers map the files and follow the manifest (re-read when it changes: one ``stat`` per
search). The writer appends rows before each tantivy commit and, after it, builds and merges
segments as :func:`~orchestrator.search.vector_segments.next_step` says. On opening, a writer
rebuilds any segment that is missing or damaged (and all of them when the manifest itself is
unreadable), saying so in one line with a progress bar; until then readers scan those rows
exactly, so no answer is ever wrong.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tantivy
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

from orchestrator.search.base import VectorField
from orchestrator.search.embedded_store import ROW_FIELDS, generation, hit_count
from orchestrator.search.vector_rows import RowFile
from orchestrator.search.vector_segments import (
    Keys,
    Manifest,
    Segment,
    Step,
    Views,
    build,
    next_step,
    read_manifest,
    remove_unlisted,
    write_manifest,
)
from orchestrator.search.vectors import Vectors

log = logging.getLogger("deeptag.embedded")
FOLDER = "vectors"
#: Builds of at least this many rows are announced (a merge late in a large index, a rebuild).
ANNOUNCED_ROWS = 100_000
FIELDS: tuple[VectorField, ...] = ("embedding", "semantic")


class VectorStore:
    def __init__(self, directory: Path, dims: Mapping[str, int]) -> None:
        self.directory = directory
        self.folder = directory / FOLDER
        self.rows = {f: RowFile(self.folder / f"{f}.f16", dims[f]) for f in FIELDS}
        self.views = {f: Views(self.folder) for f in FIELDS}
        self._lock = threading.Lock()
        self._manifest = Manifest()
        self._seen: tuple[int, int, int] | None = None
        self._warned: set[str] = set()
        self._counts: dict[tuple[str, str], int] = {}

    # --- Reading -------------------------------------------------------------------------

    def manifest(self) -> Manifest:
        """The current manifest, re-read only when its file changed."""
        try:
            stat = os.stat(self.folder / "manifest.json")
            seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            seen = (0, 0, 0)
        with self._lock:
            if seen != self._seen:
                self._manifest = read_manifest(self.folder)
                self._seen = seen
                for field in FIELDS:
                    self.views[field].forget_except(self._manifest.of(field))
            return self._manifest

    def segments(self, field: VectorField) -> tuple[Segment, ...]:
        manifest = self.manifest()
        if manifest.damaged:
            self._warn("manifest.json", "its vectors' manifest is unreadable")
            return ()
        segments = manifest.of(field)
        for segment in segments:
            if self.views[field].get(segment) is None:
                self._warn(segment.file, f"the ANN file {segment.file} is missing or damaged")
        return segments

    def count(self, searcher: tantivy.Searcher, field: VectorField) -> int:
        """Live documents with a ``field`` vector, counted once per commit (a hybrid search
        asks every time, and counting a million documents takes ~10 ms)."""
        current = generation(self.directory)
        key = (current, field)
        if key not in self._counts:
            query = tantivy.Query.exists_query(ROW_FIELDS[field])
            kept = {k: v for k, v in self._counts.items() if k[0] == current}
            self._counts = {**kept, key: hit_count(searcher.search(query, 1, count=True))}
        return self._counts[key]

    def _warn(self, key: str, what: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(
                "embedded index %s: %s; searching its rows exactly until a writer "
                "(deeptag index, sync, watch or serve) rebuilds it",
                self.directory,
                what,
            )

    # --- Writing (the index's single writer only) ------------------------------------------

    def append(self, field: VectorField, vectors: Vectors) -> int:
        """Store unit ``vectors`` as new rows, on disk before returning; the first row."""
        return self.rows[field].append(vectors)

    def maintain(self, searcher: tantivy.Searcher, schema: tantivy.Schema, opstamp: int) -> None:
        """Build and merge segments until none is due (after a commit; ``searcher`` sees it)."""
        manifest = self.manifest()
        if manifest.damaged:
            return  # repair() starts over; until then every row is scanned exactly
        built = False
        for field in FIELDS:
            while (step := next_step(manifest.of(field), self.rows[field].count())) is not None:
                segment = self._build(searcher, schema, field, step, opstamp)
                manifest = _with(manifest, field, step, segment)
                write_manifest(self.folder, manifest)
                built = True
        if built:
            # After a commit that built nothing (most of them) there is nothing to tidy.
            remove_unlisted(self.folder, manifest)

    def repair(self, searcher: tantivy.Searcher, schema: tantivy.Schema, opstamp: int) -> None:
        """Rebuild what is missing or damaged (at a writer's opening), then catch up."""
        if not self.folder.is_dir():
            return
        manifest = self.manifest()
        if manifest.damaged:
            log.warning("embedded index %s: rebuilding its ANN files", self.directory)
            manifest = Manifest()
            write_manifest(self.folder, manifest)
        for field in FIELDS:
            for segment in manifest.of(field):
                if self.views[field].get(segment) is not None:
                    continue
                log.warning(
                    "embedded index %s: rebuilding %s (missing or damaged)",
                    self.directory,
                    segment.file,
                )
                step = Step(segment.start, segment.stop, (segment,))
                rebuilt = self._build(searcher, schema, field, step, opstamp, announce=False)
                manifest = _with(manifest, field, step, rebuilt)
                write_manifest(self.folder, manifest)
        # The files of what was rebuilt, and leftovers of a build cut short, go now.
        remove_unlisted(self.folder, self.manifest())
        self.maintain(searcher, schema, opstamp)

    def _build(
        self,
        searcher: tantivy.Searcher,
        schema: tantivy.Schema,
        field: VectorField,
        step: Step,
        opstamp: int,
        announce: bool = True,
    ) -> Segment:
        live = live_rows(searcher, schema, ROW_FIELDS[field], step.start, step.stop)
        large = len(live) >= ANNOUNCED_ROWS
        if announce and large:
            log.warning(
                "embedded index %s: building the ANN index of %d %s vectors",
                self.directory,
                len(live),
                field,
            )
        with progress_bar(f"{field} vectors", len(live), shown=large or not announce) as progress:
            return build(self.folder, field, self.rows[field], live, step, opstamp, progress)


def live_rows(
    searcher: tantivy.Searcher, schema: tantivy.Schema, row_field: str, start: int, stop: int
) -> Keys:
    """The rows of ``start:stop`` that a live document names."""
    query = tantivy.Query.range_query(schema, row_field, tantivy.FieldType.Integer, start, stop - 1)
    count = hit_count(searcher.search(query, 1, count=True))
    if count == 0:
        return np.empty(0, np.int64)
    addresses = [address for _, address in searcher.search(query, count).hits]
    values = searcher.fast_field_values(row_field, addresses)
    return np.array([v for v in values if v is not None], np.int64)


def _with(manifest: Manifest, field: str, step: Step, segment: Segment) -> Manifest:
    replaced = {s.file for s in step.replaces}
    kept = [s for s in manifest.of(field) if s.file not in replaced]
    segments = tuple(sorted([*kept, segment], key=lambda s: s.start))
    return Manifest({**manifest.segments, field: segments})


@contextmanager
def progress_bar(what: str, total: int, shown: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr for a long build (only on a terminal); else nothing."""
    if not shown or not sys.stderr.isatty():
        yield None
        return
    columns = ("{task.description}", BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"indexing {what}", total=total)
        yield lambda done, _total: bar.update(task, completed=done)
