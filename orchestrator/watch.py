"""Follow folders with filesystem events and keep the index in line, one sync per batch.

The watcher is the sync driver run again and again: it syncs the folders once at start
(catching up on what changed while it was stopped), then, for each debounced batch of
events (``watchfiles``: inotify on Linux), syncs the folders those events lie in. The
unchanged-file check makes a sync of a large folder cheap, and new content goes through the
same indexer in bounded chunks, so a burst of 10,000 files costs what ``deeptag index`` does.

A file whose modification time is more recent than the quiet period is probably still being
written (a photo being copied): its folder waits for a later round, so it is indexed once,
complete.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from watchfiles import awatch

from orchestrator.search.base import SearchBackend
from orchestrator.sync import FolderReport, IndexPaths, apply, folder_prefix, plan_folder

log = logging.getLogger("deeptag.watch")

#: Syncs the given folders and says what it changed.
SyncFolders = Callable[[Sequence[str]], Awaitable[list[FolderReport]]]


def folder_syncer(
    backend: SearchBackend, index_paths: IndexPaths, max_remove_fraction: float
) -> SyncFolders:
    """The watcher's sync: ``deeptag sync`` without ``--yes`` (a mass removal is refused and
    said in the log, never applied by a watcher)."""

    async def sync(roots: Sequence[str]) -> list[FolderReport]:
        plans = [await plan_folder(backend, root, max_remove_fraction, False) for root in roots]
        return await apply(backend, plans, index_paths)

    return sync


def roots_of(paths: Sequence[str], roots: Sequence[str]) -> set[str]:
    """The watched folders the changed ``paths`` lie in (pure)."""
    return {
        root for root in roots if any(p == root or p.startswith(folder_prefix(root)) for p in paths)
    }


def settling(paths: Sequence[str], quiet_s: float, now: float) -> bool:
    """Whether any of ``paths`` (existing files) changed less than ``quiet_s`` ago."""
    for path in paths:
        try:
            if now - os.stat(path).st_mtime < quiet_s:
                return True
        except OSError:
            continue  # gone: a deletion settles at once
    return False


@dataclass
class WatchCounters:
    """What ``/metrics`` and the log tell of a watcher."""

    on_events: Callable[[int], None] = lambda _n: None
    on_reports: Callable[[list[FolderReport]], None] = lambda _r: None


class Watcher:
    """Sync ``roots`` once, then after each settled batch of events; :meth:`stop` ends it."""

    def __init__(
        self,
        roots: Sequence[str],
        sync: SyncFolders,
        debounce_ms: int,
        counters: WatchCounters | None = None,
    ) -> None:
        self.roots = list(roots)
        self.sync = sync
        self.debounce_ms = debounce_ms
        self.quiet_s = debounce_ms / 1000
        self.counters = counters or WatchCounters()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self.counters.on_reports(await self.sync(self.roots))
        watched = await asyncio.to_thread(lambda: [r for r in self.roots if os.path.isdir(r)])
        if not watched:
            log.warning("none of the watched folders exists: %s", ", ".join(self.roots))
            await self._stop.wait()
            return
        pending: dict[str, None] = {}  # changed paths, in arrival order, not yet synced
        async for changes in awatch(
            *watched,
            debounce=self.debounce_ms,
            step=min(200, self.debounce_ms),
            stop_event=self._stop,
            rust_timeout=self.debounce_ms,
            yield_on_timeout=True,
            ignore_permission_denied=True,
        ):
            if changes:
                self.counters.on_events(len(changes))
                pending.update((path, None) for _change, path in changes)
            if not pending or self._stop.is_set():
                continue
            paths = list(pending)
            if settling(paths, self.quiet_s, time.time()):
                continue  # a file still being written: the next round (or timeout) takes it
            pending.clear()
            roots = sorted(roots_of(paths, self.roots))
            if roots:
                self.counters.on_reports(await self.sync(roots))
