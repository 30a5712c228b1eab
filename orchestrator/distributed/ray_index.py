"""``deeptag index --engine ray``: the bulk indexer as a Ray Data pipeline.

A second driver, not a second pipeline: the stages (:mod:`orchestrator.distributed.stages`)
run the single-process Indexer's code, so documents, ids, failure lines and counts are the
same. This driver lists the sources, checks Elasticsearch and Triton before anything starts,
streams the sources through the stages (laid out by :mod:`orchestrator.distributed.dataflow`)
and counts what comes back into the stats, the failure log and the progress.

Elasticsearch only: the embedded index has a single writer. An outage longer than
``DEEPTAG_RETRY_WINDOW_S`` in any stage ends the run as it ends the Indexer's: what was written
stays, ``stats.stopped_by`` says why, and running it again resumes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TextIO

from orchestrator import collect
from orchestrator.distributed.dataflow import StageArgs, build_dataset, plan_for, quiet_data_context
from orchestrator.distributed.rows import Status, failure_of, source_row, to_rows
from orchestrator.enrichment import Enricher, load_enricher
from orchestrator.errors import BadRequest, ConfigError, DeeptagError, OutageTooLong
from orchestrator.indexing import (
    FailedImage,
    IndexOptions,
    IndexStats,
    RecordedCopies,
    record_copies,
)
from orchestrator.retry import RetryPolicy
from orchestrator.runtime import triton_for, triton_pool
from orchestrator.search.base import Location
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings
from orchestrator.triton.endpoint import Endpoint


class RayRunFailed(DeeptagError):
    """Ray itself failed (a worker died, the cluster went away); what was written stays."""

    reason = "ray"


def require_elasticsearch(settings: Settings) -> None:
    if settings.resolved_search_backend != "es":
        raise ConfigError(
            "--engine ray writes from many processes at once, and the embedded index has a "
            "single writer: a distributed run needs Elasticsearch (set DEEPTAG_ES_URL), or "
            "drop --engine ray"
        )


def import_ray() -> ModuleType:
    """Ray, imported only for a Ray run: the default install has none."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ConfigError("--engine ray needs the ray extra: pip install 'deeptag[ray]'") from e
    return ray


def run_on_ray(
    settings: Settings,
    sources: list[str],
    stdin: TextIO | None,
    options: IndexOptions,
    on_failure: Callable[[FailedImage], None],
    on_progress: Callable[[IndexStats], None],
    address: str | None = None,
    custom_model: str | None = None,
) -> IndexStats:
    """Index ``sources`` on Ray (a local one started for the run unless ``address`` or an
    already initialised Ray says otherwise); the counts, as :meth:`Indexer.run` returns them.

    Raises:
        BadRequest: ``custom_model`` is given, or an argument names nothing.
        ConfigError: not Elasticsearch, Ray missing, or Elasticsearch or Triton misconfigured.
        RayRunFailed: Ray failed for a reason of its own.
    """
    if custom_model is not None:
        raise BadRequest("--model is not supported with --engine ray yet")
    require_elasticsearch(settings)
    ray = import_ray()
    stats = IndexStats()
    items = [source_row(source) for source in collect.expand(sources, stdin)]
    try:
        if items:
            with triton_for(settings) as triton:
                checked = asyncio.run(_preflight(settings, triton.endpoints))
                with ray_session(ray, address):
                    _stream(
                        ray,
                        settings,
                        triton.endpoints,
                        checked,
                        items,
                        options,
                        stats,
                        on_failure,
                        on_progress,
                    )
    finally:
        stats.finished = time.perf_counter()
    on_progress(stats)
    return stats


@dataclass(frozen=True)
class Preflight:
    """What the driver learnt before Ray started."""

    enricher: Enricher  # the one every Classify actor uses
    instances: int  # model instances the endpoints run in all


async def _preflight(settings: Settings, endpoints: tuple[Endpoint, ...]) -> Preflight:
    """Fail before Ray starts on what would fail every actor; what the actors are built from.

    The index is created here once, rather than raced for by the writers.
    """
    backend = await open_backend(
        settings, "es", writer=True, retry=RetryPolicy(settings.retry_window_s)
    )
    await backend.close()
    pool = triton_pool(settings, endpoints)
    try:
        instances = (await pool.connect()).instances
    finally:
        await pool.close()
    enricher = load_enricher(
        settings.model_repository / settings.text_model, settings.concept_threshold
    )
    return Preflight(enricher, instances)


@contextmanager
def ray_session(ray: ModuleType, address: str | None) -> Iterator[None]:
    """Ray for the run: one already initialised is used and left running; else Ray is
    started (or joined, with ``address``) and shut down after."""
    if ray.is_initialized():
        yield
        return
    local: dict[str, Any] = {} if address else {"num_cpus": os.cpu_count() or 1}
    ray.init(
        address=address or None,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        **local,
    )
    try:
        yield
    finally:
        ray.shutdown()


def _stream(
    ray: ModuleType,
    settings: Settings,
    endpoints: tuple[Endpoint, ...],
    checked: Preflight,
    items: list[dict[str, str]],
    options: IndexOptions,
    stats: IndexStats,
    on_failure: Callable[[FailedImage], None],
    on_progress: Callable[[IndexStats], None],
) -> None:
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    plan = plan_for(
        cpus, len(endpoints), options.chunk_size, checked.instances, settings.index_in_flight
    )
    # Workers rebuild the driver's settings; paths made absolute, as the workers' cwd differs.
    shipped = settings.model_copy(
        update={"model_repository": settings.model_repository.resolve()}
    ).model_dump()
    stages = StageArgs(shipped, tuple(str(e) for e in endpoints), checked.enricher, options)
    with quiet_data_context(ray):
        dataset = build_dataset(ray, items, plan, stages)
        copies = CopyRecorder(settings, stats)
        try:
            for block in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                rows = to_rows(block)
                _count(rows, stats, on_failure)
                copies.add(rows)
                on_progress(stats)
            copies.flush()
        except Exception as e:
            cause = deeptag_cause(e)
            if isinstance(cause, OutageTooLong):
                # What was written stays written (ids are content hashes): a re-run resumes.
                stats.stopped_by = cause.message
            elif cause is not None:
                raise cause from None
            else:
                raise RayRunFailed(f"the Ray run failed: {_first_line(e)}") from e


class CopyRecorder:
    """The skipped rows that are the same photo at another place: their places are added to
    the document in the driver, as the single-process indexer does (no inference)."""

    #: Places recorded per call, so a resumed run over a million known photos stays flat.
    BATCH = 1000

    def __init__(self, settings: Settings, stats: IndexStats) -> None:
        self.settings = settings
        self.stats = stats
        self.pending: list[tuple[str, Location]] = []

    def add(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row["status"] == Status.SKIPPED and row["sha256"]:
                seen = json.loads(row["seen"]) if row["seen"] else [None, None]
                self.pending.append((row["sha256"], Location(row["uri"], seen[0], seen[1])))
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        recorded = asyncio.run(self._record(self.pending))
        self.pending = []
        self.stats.skipped -= recorded.added
        self.stats.copies += recorded.added

    async def _record(self, copies: list[tuple[str, Location]]) -> RecordedCopies:
        retry = RetryPolicy(self.settings.retry_window_s)
        backend = await open_backend(self.settings, "es", writer=True, retry=retry)
        try:
            return await record_copies(backend, copies)
        finally:
            await backend.close()


def _count(
    rows: list[dict[str, Any]], stats: IndexStats, on_failure: Callable[[FailedImage], None]
) -> None:
    for row in rows:
        failure = failure_of(row)
        if failure is not None:
            stats.failed += 1
            on_failure(failure)
        elif row["status"] == Status.SKIPPED:
            stats.skipped += 1
        elif row["status"] == Status.INDEXED:
            stats.indexed += 1


def deeptag_cause(error: BaseException) -> DeeptagError | None:
    """The deeptag error a stage raised, out of the Ray exceptions wrapped around it.

    Ray re-raises a task's exception as a class deriving from both ``RayTaskError`` and the
    original (whose ``cause`` it is), or, when it cannot, as a plain ``RayTaskError`` still
    carrying it in ``cause``; Python's own chain may hold it too.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        if isinstance(cause, DeeptagError):
            return cause
        if isinstance(current, DeeptagError) and type(current).__module__.startswith(
            "orchestrator"
        ):
            return current
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
