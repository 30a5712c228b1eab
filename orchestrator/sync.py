"""``deeptag sync``'s driver: the folder walk, the hashing, and the changes, in a safe order.

Sync is a second driver over the same indexer and backend as ``deeptag index``: new content
goes through :class:`~orchestrator.indexing.Indexer` (via the ``IndexPaths`` callable the
caller provides, so Triton is started only when something must be inferred), and the rest
is location updates and deletions on the backend.

Order, so an interrupted run is resumed by running it again: new content is indexed first,
then locations are added and moved, and only then are paths and documents removed. Each step
is idempotent, and the planner settles a path two documents claim (an edit cut in half).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from orchestrator.errors import BadRequest
from orchestrator.files import sha256_of
from orchestrator.search.base import Location, SearchBackend
from orchestrator.sync_plan import (
    Change,
    DiskListing,
    FileStat,
    PathChange,
    Plan,
    plan,
    removal_fraction,
    triage,
)

#: Indexes the given paths (one per new content) and returns nothing; failures are the
#: indexer's to log. Called at most once per :func:`apply`.
IndexPaths = Callable[[Sequence[str]], Awaitable[None]]
#: Files hashed at once: reading is I/O bound, hashing releases the GIL.
HASH_THREADS = 4
#: Ids asked about in one backend call.
ID_BATCH = 500


@dataclass(frozen=True)
class FolderPlan:
    """One folder's plan, and whether (and why) its removals were refused."""

    root: str  # absolute, no trailing slash
    plan: Plan
    #: Why nothing is removed under this folder (missing, empty, too many removals), if so.
    refused: str | None = None
    hashes: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class FolderReport:
    root: str
    counts: Mapping[Change, int]
    changes: tuple[PathChange, ...]
    refused: str | None
    copied: int = 0
    deleted_documents: int = 0


def folder_prefix(root: str) -> str:
    return root if root.endswith("/") else root + "/"


def normalise_roots(folders: Iterable[str]) -> list[str]:
    """Absolute folder paths (as ``deeptag index`` records them, symlinks not resolved),
    each once, a folder inside another given one dropped (its parent covers it)."""
    roots = sorted({os.path.abspath(os.path.expanduser(f)) for f in folders})
    kept: list[str] = []
    for root in roots:
        if not any(root.startswith(folder_prefix(parent)) for parent in kept):
            kept.append(root)
    return kept


def list_folder(root: str) -> DiskListing:
    """Every non-hidden file under ``root`` with its size and mtime; subfolders that cannot
    be read are listed as such (their documents are kept). Raises OSError when ``root``
    itself cannot be read."""
    files: dict[str, FileStat] = {}
    unreadable: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            if folder == root:
                raise
            unreadable.append(folder_prefix(folder))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file():
                    stat = entry.stat()
                    files[entry.path] = FileStat(stat.st_size, stat.st_mtime)
            except OSError:
                continue  # vanished or a dangling link: as if it were not there
    return DiskListing(files, tuple(sorted(unreadable)))


def root_problem(root: str, recorded: int) -> str | None:
    """Why nothing may be removed under ``root`` (None when it looks like itself): a folder
    that is missing, not a folder, unreadable or empty while the index holds documents under
    it is far more likely an unplugged drive or unmounted share than a deleted collection."""
    if not os.path.lexists(root):
        return f"{root}: no such folder (an unplugged drive or an unmounted share?)"
    if not os.path.isdir(root):
        return f"{root}: not a folder"
    try:
        with os.scandir(root) as entries:
            empty = next(iter(entries), None) is None
    except OSError as e:
        return f"{root}: cannot be read ({e.strerror or e})"
    if empty and recorded:
        return (
            f"{root}: the folder is empty but {recorded} indexed file(s) lie under it "
            "(an unmounted volume?)"
        )
    return None


async def hash_files(paths: Sequence[str]) -> dict[str, str | None]:
    """Path → SHA-256 of its bytes (the document id), None when it cannot be read."""
    if not paths:
        return {}
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="sync-hash") as pool:
        digests = await asyncio.gather(
            *(loop.run_in_executor(pool, sha256_of, path) for path in paths)
        )
    return dict(zip(paths, digests, strict=True))


async def _recorded(backend: SearchBackend, prefix: str) -> dict[str, tuple[Location, ...]]:
    return {doc_id: locations async for doc_id, locations in backend.located_under(prefix)}


async def _elsewhere(backend: SearchBackend, ids: Iterable[str]) -> dict[str, tuple[Location, ...]]:
    """The locations of those ``ids`` the index already holds."""
    wanted = sorted(set(ids))
    found: dict[str, tuple[Location, ...]] = {}
    for start in range(0, len(wanted), ID_BATCH):
        for doc_id in await backend.existing_ids(wanted[start : start + ID_BATCH]):
            document = await backend.get(doc_id)
            if document is not None:
                found[doc_id] = document.places
    return found


async def plan_folder(
    backend: SearchBackend, root: str, max_remove_fraction: float, allow_many: bool
) -> FolderPlan:
    """Read-only: what syncing ``root`` would change (a dry run stops here)."""
    prefix = folder_prefix(root)
    recorded = await _recorded(backend, prefix)
    recorded_paths = sum(
        1 for locations in recorded.values() for loc in locations if loc.uri.startswith(prefix)
    )
    problem = root_problem(root, recorded_paths)
    if problem is not None:
        return FolderPlan(root, plan(DiskListing({}), {}, prefix, {}, {}), problem)
    try:
        disk = await asyncio.to_thread(list_folder, root)
    except OSError as e:
        refused = f"{root}: cannot be read ({e.strerror or e})"
        return FolderPlan(root, plan(DiskListing({}), {}, prefix, {}, {}), refused)
    candidates = triage(disk, recorded, prefix).candidates
    hashes = await hash_files(candidates)
    unknown = {h for h in hashes.values() if h is not None and h not in recorded}
    elsewhere = await _elsewhere(backend, unknown)
    result = plan(disk, recorded, prefix, hashes, elsewhere)
    fraction = removal_fraction(result, recorded_paths)
    if result.removals and fraction > max_remove_fraction and not allow_many:
        refused = (
            f"{root}: would remove {result.removals} of {recorded_paths} indexed files "
            f"({fraction:.0%}, over DEEPTAG_SYNC_MAX_REMOVE_FRACTION="
            f"{max_remove_fraction:g}); nothing was removed: check the folder, then run "
            "again with --yes"
        )
        kept = plan(disk, recorded, prefix, hashes, elsewhere, keep_gone=True)
        return FolderPlan(root, kept, refused, hashes)
    return FolderPlan(root, result, None, hashes)


async def apply(
    backend: SearchBackend, plans: Sequence[FolderPlan], index_paths: IndexPaths
) -> list[FolderReport]:
    """Carry the plans out: index, then add and move locations, then remove."""
    to_index = [path for folder in plans for path in folder.plan.index]
    indexed: set[str] = set()
    if to_index:
        await index_paths(to_index)
        contents = {folder.hashes[p] for folder in plans for p in folder.plan.index}
        wanted = sorted(c for c in contents if c is not None)
        for start in range(0, len(wanted), ID_BATCH):
            indexed |= await backend.existing_ids(wanted[start : start + ID_BATCH])
    reports = [await _locate(backend, folder, indexed) for folder in plans]
    pairs = zip(plans, reports, strict=True)
    return [await _remove(backend, folder, report) for folder, report in pairs]


async def _locate(backend: SearchBackend, folder: FolderPlan, indexed: set[str]) -> FolderReport:
    counts = dict(folder.plan.counts)
    changes = list(folder.plan.changes)
    # New content the indexer could not read or store: those paths failed, not arrived.
    lost = {folder.hashes[p] for p in folder.plan.index} - indexed
    if lost:
        for i, change in enumerate(changes):
            if change.change in (Change.new, Change.edited) and folder.hashes[change.path] in lost:
                counts[change.change] -= 1
                counts[Change.failed] += 1
                changes[i] = PathChange(Change.failed, change.path, "could not be indexed")
    for doc_id, locations in folder.plan.locations.items():
        if doc_id in lost:
            continue
        if not await backend.set_locations(doc_id, locations):
            counts[Change.failed] += 1
            changes.append(PathChange(Change.failed, locations[0].uri, "document vanished"))
    return FolderReport(folder.root, counts, tuple(changes), folder.refused, folder.plan.copied)


async def _remove(backend: SearchBackend, folder: FolderPlan, report: FolderReport) -> FolderReport:
    deleted = await backend.delete(folder.plan.delete) if folder.plan.delete else set()
    return FolderReport(
        report.root, report.counts, report.changes, report.refused, report.copied, len(deleted)
    )


def dry_report(folder: FolderPlan) -> FolderReport:
    """What :func:`apply` would report, without doing it."""
    return FolderReport(
        folder.root,
        folder.plan.counts,
        folder.plan.changes,
        folder.refused,
        folder.plan.copied,
        len(folder.plan.delete),
    )


def total(reports: Sequence[FolderReport]) -> dict[str, int]:
    """The summed counts, keyed as ``--json`` prints them."""
    return {change.value: sum(r.counts.get(change, 0) for r in reports) for change in Change}


def check_folders(folders: Sequence[str]) -> list[str]:
    """The roots to sync; a root that is not there is still synced (its removals are
    refused with the reason), but a plain file is a mistake."""
    roots = normalise_roots(folders)
    for root in roots:
        if os.path.isfile(root):
            raise BadRequest(f"{root}: a file, not a folder (`deeptag index` takes files)")
    return roots
