"""``deeptag index``: tag a whole collection and store it in the search backend, resumably."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from orchestrator import collect
from orchestrator.cli.analyses import OcrOption, SafetyOption, overrides
from orchestrator.cli.common import Sink, err_console, run_async, user_errors
from orchestrator.cli.refresh import refresh_metadata
from orchestrator.cli.refresh import summarise as summarise_refresh
from orchestrator.cli.run_log import (
    INDEXING,
    FailureLog,
    FailuresOption,
    OutageNotices,
    failure_log_path,
    summarise,
)
from orchestrator.errors import BadRequest, ModelNotFound
from orchestrator.indexing import (
    FailedImage,
    Indexer,
    IndexOptions,
    IndexStats,
    batches_in_flight,
)
from orchestrator.retry import RetryPolicy, Waiting
from orchestrator.runtime import tagging_session, triton_for, triton_pool
from orchestrator.search.base import BackendKind
from orchestrator.search.documents import check_metadata_keys
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings, load_settings
from orchestrator.training.repository import check_name
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.pool import TritonPool


class Engine(StrEnum):
    """Where `deeptag index` runs: this process, or a Ray cluster."""

    local = "local"
    ray = "ray"


#: sysexits' EX_TEMPFAIL: the run stopped for an outage; running it again resumes it.
EXIT_OUTAGE = 75


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} img/s"),
        TextColumn("[green]{task.fields[indexed]} indexed"),
        TextColumn("[dim]{task.fields[skipped]} skipped"),
        TextColumn("[red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def _shower(progress: Progress, task: TaskID) -> Callable[[IndexStats], None]:
    """The callback that puts a run's counts on its progress bar."""

    def show(stats: IndexStats) -> None:
        progress.update(
            task,
            completed=stats.done,
            rate=stats.images_per_s,
            indexed=stats.indexed,
            skipped=stats.skipped,
            failed=stats.failed,
        )

    return show


async def _index(
    settings: Settings,
    sources: list[str],
    kind: BackendKind | None,
    options: IndexOptions,
    failures: FailureLog,
    stdin: TextIO | None,
    custom_model: str | None = None,
) -> tuple[IndexStats, bool, float]:
    """(what the run did, whether Ctrl-C stopped it, seconds spent waiting for Triton)."""
    total = collect.count(sources)
    retry = RetryPolicy(settings.retry_window_s)
    progress = _progress()
    task = progress.add_task(INDEXING, total=total, rate=0.0, indexed=0, skipped=0, failed=0)
    notices = OutageNotices(progress, task)
    backend = await open_backend(settings, kind, writer=True, retry=retry, on_wait=notices)
    custom: TritonPool | None = None
    try:
        with triton_for(settings) as triton:
            if custom_model is not None:
                custom = await _connect_trained(settings, triton.endpoints, custom_model, notices)
            async with tagging_session(
                settings, triton.endpoints, path_roots=None, retry=retry, on_wait=notices
            ) as session:
                with progress:
                    show = _shower(progress, task)
                    in_flight = batches_in_flight(settings.index_in_flight, session.model.instances)
                    indexer = Indexer(
                        session.tagger,
                        session.model,
                        backend,
                        replace(options, in_flight=in_flight),
                        failures.write,
                        show,
                        custom=custom,
                    )
                    loop = asyncio.get_running_loop()
                    for signum in (signal.SIGINT, signal.SIGTERM):
                        loop.add_signal_handler(signum, _stopper(indexer, loop, signum))
                    try:
                        stats = await indexer.run(collect.expand(sources, stdin))
                    finally:
                        for signum in (signal.SIGINT, signal.SIGTERM):
                            loop.remove_signal_handler(signum)
                    show(stats)
                    return stats, indexer.stopped_early, triton.startup_s
    finally:
        if custom is not None:
            await custom.close()
        await backend.close()


async def _connect_trained(
    settings: Settings, endpoints: tuple[Endpoint, ...], name: str, on_wait: Waiting
) -> TritonPool:
    retry = RetryPolicy(settings.retry_window_s)
    client = triton_pool(settings, endpoints, name, retry=retry, on_wait=on_wait)
    try:
        await client.connect()
    except ModelNotFound as e:
        raise ModelNotFound(
            f"--model {name}: no model of that name is served by Triton at {endpoints[0]}; "
            "`deeptag models list` shows the trained ones, `deeptag train` makes one"
        ) from e
    return client


def _stopper(indexer: Indexer, loop: asyncio.AbstractEventLoop, signum: int) -> Any:
    def stop() -> None:
        if indexer.stopped_early:
            # A second Ctrl-C means now: the default handler raises KeyboardInterrupt.
            loop.remove_signal_handler(signum)
            signal.raise_signal(signum)
            return
        err_console.print(
            "[yellow]stopping: finishing the images already read (Ctrl-C again to abort)"
        )
        indexer.stop()

    return stop


@user_errors
def index(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Image files, directories (recursive), globs, URLs, .txt lists of "
            "paths/URLs, or '-' to read such a list from stdin.",
            show_default=False,
        ),
    ],
    sink: Annotated[
        Sink | None,
        typer.Option(help="Default: es when DEEPTAG_ES_URL is set, else embedded."),
    ] = None,
    reindex: Annotated[
        bool, typer.Option("--reindex", help="Tag and store images already indexed again.")
    ] = False,
    failures: FailuresOption = None,
    best: Annotated[int, typer.Option(min=1, max=100, help="Categories kept per image.")] = 5,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, max=1024, help="Images read and classified together (DEEPTAG_INFER_BATCH_SIZE)."
        ),
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="KEY=VALUE stored with every image (repeatable)."),
    ] = None,
    triton_url: Annotated[
        str | None, typer.Option(help="Use this Triton instead of a local one.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Also store the categories of this model made by `deeptag train`; images "
            "indexed without them are tagged again.",
        ),
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            help="local: this process; ray: a Ray cluster (pip install 'deeptag\\[ray]'; "
            "Elasticsearch only)."
        ),
    ] = Engine.local,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="With --engine ray: the cluster ('auto', ray://head:10001); default a "
            "local Ray for the run."
        ),
    ] = None,
    ocr: OcrOption = False,
    safety: SafetyOption = False,
    refresh_metadata: Annotated[
        bool,
        typer.Option(
            "--refresh-metadata",
            help="Only read what the photos say about themselves (date, camera, place, "
            "keywords) into the documents already indexed; no model runs.",
        ),
    ] = False,
) -> None:
    """Tag images and store them in the search index; re-running skips what is done."""
    began = time.perf_counter()
    settings = load_settings(
        triton_url=triton_url, infer_batch_size=batch_size, **overrides(ocr, safety)
    )
    failures = failure_log_path(settings, failures, "index")
    if refresh_metadata:
        _refresh_only(settings, sources, sink, failures, reindex or bool(meta) or bool(model))
        return
    custom_model = None if model is None else check_name(model)
    if custom_model == settings.model:
        raise BadRequest(f"--model {custom_model}: that is the model every image is tagged with")
    # An argument that names nothing is a failure of its own; the others are indexed.
    sources, missing = collect.usable(sources)
    options = IndexOptions(
        reindex=reindex,
        chunk_size=settings.infer_batch_size,
        best=best,
        metadata=_metadata(meta or []),
    )
    if ray_address is not None and engine is not Engine.ray:
        raise BadRequest("--ray-address needs --engine ray")
    if engine is Engine.ray and sink is not None:
        settings = settings.model_copy(update={"search_backend": sink.kind})
    with FailureLog(failures) as log:
        for argument, why in missing:
            err_console.print(f"[red]{argument}: {why}[/] (the other arguments are indexed)")
            log.write(FailedImage(argument, "read", "not_found", f"{argument}: {why}"))
        startup = 0.0
        if engine is Engine.ray:
            stats = _index_on_ray(settings, sources, options, log, ray_address, custom_model)
            stopped = False
        else:
            stats, stopped, startup = _index_here(
                settings, sources, sink, options, log, custom_model
            )
    stats.failed += len(missing)
    summarise(stats, stopped, failures, time.perf_counter() - began, startup)
    if stats.stopped_by is not None:
        raise typer.Exit(EXIT_OUTAGE)
    if stats.indexed + stats.skipped + stats.copies == 0:
        raise typer.Exit(1)


def _refresh_only(
    settings: Settings, sources: list[str], sink: Sink | None, failures: Path, tagging: bool
) -> None:
    if tagging:
        raise BadRequest(
            "--refresh-metadata reads metadata only: it takes no --reindex, --meta or --model"
        )
    collect.check(sources)
    with FailureLog(failures) as log:
        stats = refresh_metadata(settings, sources, sink.kind if sink else None, log.write)
    summarise_refresh(stats, str(failures))
    if stats.updated + stats.unchanged == 0:
        raise typer.Exit(1)


def _index_here(
    settings: Settings,
    sources: list[str],
    sink: Sink | None,
    options: IndexOptions,
    log: FailureLog,
    custom_model: str | None,
) -> tuple[IndexStats, bool, float]:
    return run_async(
        _index(
            settings,
            sources,
            sink.kind if sink else None,
            options,
            log,
            sys.stdin if "-" in sources else None,
            custom_model,
        )
    )


def _index_on_ray(
    settings: Settings,
    sources: list[str],
    options: IndexOptions,
    log: FailureLog,
    address: str | None,
    custom_model: str | None,
) -> IndexStats:
    """The same job on Ray Data (orchestrator.distributed), with the same progress bar."""
    from orchestrator.distributed import run_on_ray

    progress = _progress()
    task = progress.add_task(
        INDEXING, total=collect.count(sources), rate=0.0, indexed=0, skipped=0, failed=0
    )
    show = _shower(progress, task)
    with progress:
        stats = run_on_ray(
            settings,
            sources,
            sys.stdin if "-" in sources else None,
            options,
            log.write,
            show,
            address=address,
            custom_model=custom_model,
        )
        show(stats)
    return stats


def _metadata(pairs: list[str]) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadRequest(f"--meta {pair!r}: expected KEY=VALUE")
        try:
            check_metadata_keys([key])
        except ValueError as e:
            raise BadRequest(f"--meta {pair!r}: {e}") from e
        metadata[key] = value
    return metadata
