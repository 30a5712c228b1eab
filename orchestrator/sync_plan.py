"""What ``deeptag sync`` must change under one folder, decided without any I/O.

Two pure steps. :func:`triage` compares the folder's listing with the locations the index
records under it: a path whose size and modification time match every record of it is taken
as unchanged without reading it (as rsync decides); any other file on disk is a *candidate*
that must be hashed; a recorded path no longer on disk is *gone*, unless it lies in a
subfolder that could not be read (its documents are kept). :func:`plan` then takes the
candidates' content hashes (a document id is the SHA-256 of the file's bytes) and says which
contents must be indexed, which documents get new locations, and which have none left.

A move is a gone path and a candidate of the same content: one location update, no inference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from orchestrator.formats import IMAGE_SUFFIXES, suffix_of
from orchestrator.search.base import Location


class Change(StrEnum):
    """The counts of a sync summary, in its order (``--json`` has exactly these keys)."""

    new = "new"
    moved = "moved"
    edited = "edited"
    removed = "removed"
    unchanged = "unchanged"
    failed = "failed"


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime: float  # st_mtime


@dataclass(frozen=True)
class DiskListing:
    """The files under a folder (absolute path → stat) and the subfolders it could not read
    (absolute paths ending in ``/``)."""

    files: Mapping[str, FileStat]
    unreadable: tuple[str, ...] = ()


@dataclass(frozen=True)
class Triage:
    unchanged: tuple[str, ...]
    #: On disk, and new or changed since recorded (or recorded inconsistently): hash them.
    candidates: tuple[str, ...]
    #: Recorded under the folder, absent from disk, in no unreadable subfolder.
    gone: tuple[str, ...]


@dataclass(frozen=True)
class PathChange:
    """One line of a ``--dry-run`` listing."""

    change: Change
    path: str
    detail: str = ""  # the old path of a move, why a file failed, ...


@dataclass(frozen=True)
class Plan:
    #: One path per content to run through the indexer (new files, and edits to new content).
    index: tuple[str, ...]
    #: The complete, non-empty location list each touched document must end with.
    locations: Mapping[str, tuple[Location, ...]]
    #: Documents with no location left.
    delete: tuple[str, ...]
    counts: Mapping[Change, int]
    changes: tuple[PathChange, ...] = field(default=())
    #: New paths whose content is already indexed elsewhere (recorded, not inferred).
    copied: int = 0

    @property
    def removals(self) -> int:
        """Paths that leave the index without taking a place elsewhere."""
        return self.counts[Change.removed]


def _stat_matches(location: Location, stat: FileStat) -> bool:
    return location.size == stat.size and location.mtime == stat.mtime


def _under(path: str, folders: Iterable[str]) -> bool:
    return any(path.startswith(folder) for folder in folders)


def claims(recorded: Mapping[str, tuple[Location, ...]], prefix: str) -> dict[str, list[str]]:
    """Path under ``prefix`` → the documents that record it (usually one)."""
    found: dict[str, list[str]] = defaultdict(list)
    for doc_id, locations in recorded.items():
        for location in locations:
            if location.uri.startswith(prefix):
                found[location.uri].append(doc_id)
    return found


def triage(disk: DiskListing, recorded: Mapping[str, tuple[Location, ...]], prefix: str) -> Triage:
    """Split paths into unchanged, to-hash and gone (pure). ``recorded``: doc id → all its
    locations, for every document with one under ``prefix``."""
    by_path = claims(recorded, prefix)
    records: dict[str, list[Location]] = defaultdict(list)
    for locations in recorded.values():
        for location in locations:
            if location.uri.startswith(prefix):
                records[location.uri].append(location)
    unchanged: list[str] = []
    candidates: list[str] = []
    for path in sorted(disk.files):
        stat = disk.files[path]
        seen = records.get(path)
        if seen and all(_stat_matches(location, stat) for location in seen):
            unchanged.append(path)
        elif seen or suffix_of(path) in IMAGE_SUFFIXES:
            # Files that are not images and were never indexed are not read on every run.
            candidates.append(path)
    gone = tuple(
        path
        for path in sorted(by_path)
        if path not in disk.files and not _under(path, disk.unreadable)
    )
    return Triage(tuple(unchanged), tuple(candidates), gone)


class _Builder:
    """The location lists being edited, starting from what the index records."""

    def __init__(self, known: Mapping[str, tuple[Location, ...]]) -> None:
        self.known = known
        self.edited: dict[str, list[Location]] = {}

    def _list(self, doc_id: str) -> list[Location]:
        if doc_id not in self.edited:
            self.edited[doc_id] = list(self.known.get(doc_id, ()))
        return self.edited[doc_id]

    def drop(self, doc_id: str, path: str) -> None:
        self.edited[doc_id] = [loc for loc in self._list(doc_id) if loc.uri != path]

    def put(self, doc_id: str, path: str, stat: FileStat) -> None:
        """Record ``path`` (with its stat) in ``doc_id``, in place if already there."""
        entries = self._list(doc_id)
        fresh = Location(path, stat.size, stat.mtime)
        for i, location in enumerate(entries):
            if location.uri == path:
                entries[i] = fresh
                return
        entries.append(fresh)


def plan(
    disk: DiskListing,
    recorded: Mapping[str, tuple[Location, ...]],
    prefix: str,
    hashes: Mapping[str, str | None],
    elsewhere: Mapping[str, tuple[Location, ...]],
    keep_gone: bool = False,
) -> Plan:
    """The changes that bring ``prefix`` in line with ``disk`` (pure).

    ``hashes``: every candidate of :func:`triage` → its content id, or None when it could not
    be read (it fails, and whatever the index records of it is kept). ``elsewhere``: the
    locations of hashed contents already indexed without a location under ``prefix``.
    ``keep_gone``: removals refused, so gone paths stay recorded (moves still happen).
    """
    sorted_out = triage(disk, recorded, prefix)
    by_path = claims(recorded, prefix)
    known = {**elsewhere, **recorded}
    build = _Builder(known)
    counts = dict.fromkeys(Change, 0)
    counts[Change.unchanged] = len(sorted_out.unchanged)
    changes: list[PathChange] = []
    arrivals: dict[str, list[str]] = defaultdict(list)  # doc id → new paths of it
    to_index: dict[str, list[str]] = defaultdict(list)  # unknown content → its paths
    for path in sorted_out.candidates:
        content = hashes.get(path)
        owners = by_path.get(path, [])
        if content is None:
            counts[Change.failed] += 1
            changes.append(PathChange(Change.failed, path, "could not be read"))
            continue
        for owner in owners:
            if owner != content:
                build.drop(owner, path)
        if content in owners:
            counts[Change.unchanged] += 1  # touched, same bytes: only its stat is refreshed
            build.put(content, path, disk.files[path])
        elif owners:
            counts[Change.edited] += 1
            changes.append(PathChange(Change.edited, path))
            _arrive(build, known, to_index, content, path, disk.files[path])
        else:
            arrivals[content].append(path)
            _arrive(build, known, to_index, content, path, disk.files[path])
    copied = 0
    gone_of: dict[str, list[str]] = defaultdict(list)
    for path in sorted_out.gone:
        for owner in by_path[path]:
            gone_of[owner].append(path)
    moved_from: set[str] = set()
    for content, paths in sorted(arrivals.items()):
        left = gone_of.get(content, [])
        for path in paths:
            if left:
                source = left.pop(0)
                moved_from.add(source)
                counts[Change.moved] += 1
                changes.append(PathChange(Change.moved, path, f"from {source}"))
            else:
                counts[Change.new] += 1
                copied += content in known
                changes.append(PathChange(Change.new, path, "copy" if content in known else ""))
    for path in sorted_out.gone:
        if path not in moved_from:
            if keep_gone:
                continue
            counts[Change.removed] += 1
            changes.append(PathChange(Change.removed, path))
        for owner in by_path[path]:
            build.drop(owner, path)
    return _finish(build, to_index, counts, changes, copied)


def _arrive(
    build: _Builder,
    known: Mapping[str, tuple[Location, ...]],
    to_index: dict[str, list[str]],
    content: str,
    path: str,
    stat: FileStat,
) -> None:
    if content not in known:
        to_index[content].append(path)
    build.put(content, path, stat)


def _finish(
    build: _Builder,
    to_index: Mapping[str, list[str]],
    counts: Mapping[Change, int],
    changes: list[PathChange],
    copied: int,
) -> Plan:
    locations: dict[str, tuple[Location, ...]] = {}
    delete: list[str] = []
    for doc_id, entries in sorted(build.edited.items()):
        if not entries:
            delete.append(doc_id)
        elif doc_id in to_index and len(entries) == 1:
            continue  # the indexer records the one location of a new content itself
        elif tuple(entries) != build.known.get(doc_id):
            locations[doc_id] = tuple(entries)
    return Plan(
        index=tuple(paths[0] for paths in to_index.values()),
        locations=locations,
        delete=tuple(delete),
        counts=dict(counts),
        changes=tuple(changes),
        copied=copied,
    )


def removal_fraction(plan: Plan, recorded_paths: int) -> float:
    """The share of the folder's recorded paths this plan removes (0 for an empty record)."""
    return plan.removals / recorded_paths if recorded_paths else 0.0
