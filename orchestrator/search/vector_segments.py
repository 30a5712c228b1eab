"""The approximate-nearest-neighbour index of one vector field: HNSW segments over row ranges.

Each segment is a usearch HNSW graph (cosine, vectors quantised to int8) over a contiguous range
of the field's rows (:mod:`orchestrator.search.vector_rows`), keyed by row number. The graph
finds candidates; their exact cosines are then computed from the rows, so int8's coarseness
costs no ranking (recall@10 0.995 against 0.998 for a float16 graph) while the graph builds
twice as fast and is half the size. The writer builds one once
the rows past the last segment (the *tail*) reach :data:`SEGMENT_ROWS`, and merges
:data:`MERGE_FACTOR` segments of one size tier into one, as tantivy merges its segments: a
million rows make about ten segments, and a row is inserted into a graph about twice. A search
asks every segment (opened as memory-mapped views: a fresh process loads nothing whole) and
scans the tail exactly.

Rows never change, so a segment is never stale. Its file is written under a temporary name and
renamed, then listed in ``manifest.json`` (replaced atomically), which also records tantivy's
opstamp at the build. A segment whose file is missing, of the wrong size or unreadable is not
used: its rows are scanned exactly (slower, never wrong) until a writer rebuilds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from usearch.compiled import MetricKind
from usearch.index import Index
from usearch.index import search as exact_search

from orchestrator.files import write_atomically
from orchestrator.search.vector_rows import RowFile, Rows

#: Rows past the last segment that make a new one (scanning them exactly costs ~7 ms at 1,280
#: values per row, about what asking a segment costs).
SEGMENT_ROWS = 32_768
#: Segments of one size tier merged at once.
MERGE_FACTOR = 8
#: HNSW parameters: links per node, and the candidate lists while adding and searching.
#: 64 while adding builds 2.4x faster than usearch's 128; searching with 128 and re-ranking at
#: least :data:`RERANKED` candidates exactly gives the recall back (docs/explanation).
CONNECTIVITY = 16
EXPANSION_ADD = 64
EXPANSION_SEARCH = 128
#: The fewest candidates each graph gives for exact re-ranking, however few are wanted.
RERANKED = 40
#: Rows added to a graph per call, so a long build can report its progress.
ADD_CHUNK = 8192
MANIFEST = "manifest.json"

#: Called with (done, total) while a segment is built.
Progress = Callable[[int, int], None]
Keys = npt.NDArray[np.int64]
Distances = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Segment:
    file: str
    start: int  # the first row it covers
    stop: int  # one past the last
    count: int  # rows in its graph: those of the range a document still named at the build
    size: int  # bytes of the file
    opstamp: int  # tantivy's, when it was built
    #: Rows in the graph that it cannot reach (see :func:`unreachable`): scanned exactly.
    exact: tuple[int, ...] = ()

    @property
    def span(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Manifest:
    segments: Mapping[str, tuple[Segment, ...]] = field(default_factory=dict)
    #: The file existed but could not be read: its segments are unknown, so none is used.
    damaged: bool = False

    def of(self, name: str) -> tuple[Segment, ...]:
        return self.segments.get(name, ())


def read_manifest(folder: Path) -> Manifest:
    try:
        raw = json.loads((folder / MANIFEST).read_bytes())
        return Manifest(
            {
                name: tuple(
                    Segment(**{**entry, "exact": tuple(entry.get("exact", ()))})
                    for entry in entries
                )
                for name, entries in raw["segments"].items()
            }
        )
    except FileNotFoundError:
        return Manifest()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Manifest(damaged=True)


def write_manifest(folder: Path, manifest: Manifest) -> None:
    body = {
        "version": 1,
        "segments": {
            name: [asdict(segment) for segment in segments]
            for name, segments in manifest.segments.items()
        },
    }
    write_atomically(folder / MANIFEST, json.dumps(body, indent=1).encode(), durable=True)


@dataclass(frozen=True)
class Step:
    """One build: the rows ``start:stop`` into a new segment replacing ``replaces``."""

    start: int
    stop: int
    replaces: tuple[Segment, ...] = ()


def next_step(segments: Sequence[Segment], rows: int) -> Step | None:
    """What the writer builds next, if anything (pure): a segment from a large enough tail,
    else a merge of the last :data:`MERGE_FACTOR` segments when they share a size tier."""
    covered = segments[-1].stop if segments else 0
    if rows - covered >= SEGMENT_ROWS:
        return Step(covered, rows)
    if len(segments) >= MERGE_FACTOR:
        last = tuple(segments[-MERGE_FACTOR:])
        if len({_tier(s.span) for s in last}) == 1:
            return Step(last[0].start, last[-1].stop, last)
    return None


def _tier(span: int) -> int:
    tier, size = 0, SEGMENT_ROWS * MERGE_FACTOR
    while span >= size:
        tier, size = tier + 1, size * MERGE_FACTOR
    return tier


def build(
    folder: Path,
    name: str,
    rows: RowFile,
    live: Keys,
    step: Step,
    opstamp: int,
    progress: Progress | None = None,
) -> Segment:
    """A graph of the ``live`` rows (those of the step's range a document names), saved."""
    graph = Index(
        ndim=rows.dims,
        metric=MetricKind.Cos,
        dtype="i8",
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )
    matrix = rows.matrix()
    live = np.sort(live)
    for done in range(0, len(live), ADD_CHUNK):
        chunk = live[done : done + ADD_CHUNK]
        graph.add(chunk.astype(np.uint64), np.asarray(matrix[chunk], np.float32), threads=0)
        if progress is not None:
            progress(done + len(chunk), len(live))
    lost = unreachable(graph, matrix, live)
    file = f"{name}-{step.start:010d}-{step.stop:010d}-{uuid.uuid4().hex[:8]}.usearch"
    temporary = folder / f".{file}"
    graph.save(str(temporary))
    with temporary.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(temporary, folder / file)
    size = (folder / file).stat().st_size
    return Segment(file, step.start, step.stop, len(live), size, opstamp, lost)


def unreachable(graph: Index, matrix: Rows, live: Keys) -> tuple[int, ...]:
    """The rows the graph cannot find from their own vector. usearch's concurrent insertion
    (twice as fast on two cores) leaves a few nodes without a way in: 0.4-1.6 % of rows in
    graphs of 70-560 clustered rows, 0.1 % at 20,000; searches scan those rows exactly."""
    lost: list[int] = []
    for done in range(0, len(live), ADD_CHUNK):
        chunk = live[done : done + ADD_CHUNK]
        found = graph.search(np.asarray(matrix[chunk], np.float32), 10, threads=0)
        keys = found.keys.astype(np.int64).reshape(len(chunk), -1)
        lost += [int(row) for row, near in zip(chunk, keys, strict=True) if row not in near]
    return tuple(lost)


def remove_unlisted(folder: Path, manifest: Manifest) -> None:
    """Delete segment files the manifest no longer lists (readers that mapped one keep their
    mapping: the data lives until they let go) and leftovers of interrupted builds."""
    listed = {s.file for segments in manifest.segments.values() for s in segments}
    for path in folder.glob("*.usearch"):
        if path.name not in listed:
            with contextlib.suppress(OSError):
                path.unlink()
    for path in [*folder.glob(".*"), *folder.glob("*.tmp")]:
        with contextlib.suppress(OSError):
            path.unlink()


class Views:
    """The segments of one field, opened memory-mapped on first use and kept while listed."""

    def __init__(self, folder: Path, expansion: int = EXPANSION_SEARCH) -> None:
        self.folder = folder
        self.expansion = expansion
        self._open: dict[str, Index | None] = {}

    def get(self, segment: Segment) -> Index | None:
        """The segment's graph, or None when its file is missing, truncated or unreadable."""
        if segment.file not in self._open:
            self._open[segment.file] = self._load(segment)
        return self._open[segment.file]

    def _load(self, segment: Segment) -> Index | None:
        path = self.folder / segment.file
        try:
            if path.stat().st_size != segment.size:
                return None
            view = Index.restore(str(path), view=True)
        except (OSError, ValueError, RuntimeError):
            return None
        if view is None or len(view) != segment.count or view.ndim <= 0:
            return None
        view.expansion_search = self.expansion  # type: ignore[misc]  # it has a setter
        return view

    def forget_except(self, segments: Sequence[Segment]) -> None:
        listed = {s.file for s in segments}
        for file in [f for f in self._open if f not in listed]:
            del self._open[file]


def nearest(
    views: Views, segments: Sequence[Segment], rows: RowFile, query: Rows, count: int
) -> tuple[Keys, Distances]:
    """The ``count`` rows nearest ``query`` by cosine distance, nearest first: candidates from
    each usable segment's graph, re-ranked exactly, and every row no usable segment covers,
    scanned exactly."""
    found: list[tuple[Keys, Distances]] = []
    candidates: list[Keys] = []
    exact_from = 0
    as_floats = query.astype(np.float32)
    for segment in segments:
        graph = views.get(segment)
        if graph is None:
            found.append(_scan(rows, np.arange(segment.start, segment.stop), query, count))
        elif segment.count:
            asked = min(max(count, RERANKED), segment.count)
            candidates.append(graph.search(as_floats, asked).keys.astype(np.int64))
            candidates.append(np.array(segment.exact, np.int64))
        exact_from = segment.stop
    if candidates:
        found.append(_scan(rows, np.unique(np.concatenate(candidates)), query, count))
    total = rows.count()
    if total > exact_from:
        found.append(_scan(rows, np.arange(exact_from, total), query, count))
    return _best(found, count)


def scan(rows: RowFile, candidates: Keys, query: Rows, count: int) -> tuple[Keys, Distances]:
    """The ``count`` nearest of the given rows, exactly."""
    return _best([_scan(rows, candidates, query, count)], count)


def _scan(rows: RowFile, candidates: Keys, query: Rows, count: int) -> tuple[Keys, Distances]:
    if not len(candidates):
        return np.empty(0, np.int64), np.empty(0, np.float32)
    # A contiguous range is searched in the mapping itself; a scattered set is gathered first.
    contiguous = int(candidates[-1]) - int(candidates[0]) + 1 == len(candidates)
    first = int(candidates[0])
    matrix = rows.matrix()[first : first + len(candidates)] if contiguous else rows.read(candidates)
    matches = exact_search(matrix, query, min(count, len(candidates)), MetricKind.Cos, exact=True)
    return candidates[matches.keys.astype(np.int64)], matches.distances.astype(np.float32)


def _best(found: Sequence[tuple[Keys, Distances]], count: int) -> tuple[Keys, Distances]:
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    keys = np.concatenate([k for k, _ in found])
    distances = np.concatenate([d for _, d in found])
    order = np.argsort(distances, kind="stable")[:count]
    return keys[order], distances[order]
