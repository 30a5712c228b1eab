"""Build the long-lived clients a command or the server needs, and tear them down after."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from orchestrator.analysis.registry import ANALYSES, AnalysisSpec, enabled
from orchestrator.analysis.registry import build as build_analysis
from orchestrator.enrichment import load_enricher
from orchestrator.errors import ConfigError
from orchestrator.fetch import FetchPolicy, SourceReader, build_http_client
from orchestrator.metrics import Metrics
from orchestrator.pipeline import Tagger
from orchestrator.retry import NO_RETRY, RetryPolicy, Waiting, not_waiting
from orchestrator.settings import Settings
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import (
    LocalTriton,
    TritonPorts,
    free_port,
    is_ready,
    runtime_repository_path,
)
from orchestrator.triton.lingering import LingerSpec, lingering_triton
from orchestrator.triton.model_info import ModelInfo
from orchestrator.triton.pool import TritonPool
from orchestrator.triton.runtime_repository import ShimOptions, cpu_layout


@dataclass(frozen=True)
class TritonHandle:
    endpoints: tuple[Endpoint, ...]
    metrics_url: str | None
    #: The local Triton this command started and stops, if any.
    local: LocalTriton | None
    #: The runtime repository of a local Triton deeptag started (to publish trained models).
    runtime_repository: Path | None = None
    #: Seconds the command waited for Triton: starting it, or loading models it lacked.
    startup_s: float = 0.0

    @property
    def endpoint(self) -> Endpoint:
        """The first endpoint: the one single-server operations (loading models) talk to."""
        return self.endpoints[0]


def configured_endpoints(settings: Settings) -> tuple[Endpoint, ...]:
    """The endpoints of ``DEEPTAG_TRITON_URL`` (one or several, comma-separated)."""
    assert settings.triton_url
    try:
        return Endpoint.parse_list(settings.triton_url, settings.triton_protocol)
    except ValueError as e:
        raise ConfigError(f"DEEPTAG_TRITON_URL: {e}") from e


def shim_options(settings: Settings, cores: int | None = None) -> ShimOptions:
    """How a local Triton given ``cores`` (default: all this process may use) runs
    onnxruntime, from the settings (pure but for counting the cores).

    Unless the settings say how many model instances, one per core, each on one thread, for
    every local Triton: the layout that indexed fastest (bench/triton_layout.py); a small batch
    alone on the server runs on every core (``alone_threads``), so lone calls are as fast as
    on one instance. One layout, so a running `deeptag triton start` or a lingering Triton
    indexes as fast as a Triton started for the job.
    """
    given = cores or usable_cores()
    instances, threads = cpu_layout(given, settings.triton_cpu_instances)
    if cores is None and instances == 1:
        threads = 0  # onnxruntime's own choice for a whole machine: one per physical core
    return ShimOptions(
        intra_op_threads=threads,
        instances=instances,
        memory_arena=settings.triton_cpu_memory_arena,
        spinning=settings.triton_cpu_spinning,
        # A batch alone on the server gets all the cores: lone calls as fast as on one
        # instance on every core.
        alone_threads=given if instances > 1 and given > threads else 0,
    )


def usable_cores() -> int:
    """The cores this process may run on (its affinity, which a container may narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def served_models(settings: Settings, every_model: bool = False) -> frozenset[str] | None:
    """The model folders a local Triton loads: not the models of the analyses the settings
    leave off (each is a process and a second of start-up), unless ``every_model`` (a server:
    its ``/predict`` may ask for any analysis), and then only those exported; None: every
    folder of the repository."""
    repository = settings.model_repository
    if not repository.is_dir():
        return None
    on = enabled(settings)
    left_out = {
        model
        for spec in ANALYSES
        if spec not in on
        and not (every_model and all(_exported(repository / m) for m in spec.models))
        for model in spec.models
    }
    if not left_out:
        return None
    return (
        frozenset(p.name for p in repository.iterdir() if (p / "config.pbtxt").is_file()) - left_out
    )


def _exported(model_dir: Path) -> bool:
    return any(model_dir.glob("[0-9]*/model.onnx"))


def say(message: str) -> None:
    """How a command tells its user about the Triton it started: on stderr, apart from the
    output a script may read."""
    print(message, file=sys.stderr, flush=True)


@contextmanager
def triton_for(
    settings: Settings,
    *,
    every_model: bool = False,
    models: frozenset[str] | None = None,
    announce: Callable[[str], None] = say,
) -> Iterator[TritonHandle]:
    """The configured Triton; else a local one already running on the configured port
    (`deeptag triton start`); else the lingering local one, started if there is none
    (:mod:`orchestrator.triton.lingering`); else, with lingering off, a local one for as
    long as the block runs. ``models``: those the caller needs ready (default: those
    :func:`served_models` says)."""
    if settings.triton_url:
        yield TritonHandle(configured_endpoints(settings), None, None)
        return
    if is_ready(settings.triton_http_port, timeout=0.5):
        yield _started_by_user(settings)
        return
    needed = models if models is not None else served_models(settings, every_model)
    if settings.triton_linger:
        spec = LingerSpec(
            repository=settings.model_repository,
            state_dir=settings.state_dir,
            shim=shim_options(settings),
            # Every model exported: the next command may need another one, loaded then.
            serve=served_models(settings, every_model=True),
            load=needed,
            idle_s=settings.triton_idle_s,
            start_timeout_s=settings.triton_start_timeout_s,
            started_by=command_name(),
        )
        started = time.perf_counter()
        with lingering_triton(spec, announce) as state:
            yield TritonHandle(
                (_local_endpoint(settings, state.ports),),
                f"http://127.0.0.1:{state.ports.metrics}/metrics",
                None,
                Path(state.runtime_repository),
                time.perf_counter() - started,
            )
        return
    ports = TritonPorts(free_port(), free_port(), free_port())
    started = time.perf_counter()
    with LocalTriton(
        settings.model_repository,
        settings.state_dir / "triton",
        ports,
        start_timeout_s=settings.triton_start_timeout_s,
        shim=shim_options(settings),
        only=needed,
    ) as local:
        yield TritonHandle(
            (_local_endpoint(settings, ports),),
            local.metrics_url,
            local,
            local.runtime_repository,
            time.perf_counter() - started,
        )


def _started_by_user(settings: Settings) -> TritonHandle:
    ports = TritonPorts(
        settings.triton_http_port, settings.triton_grpc_port, settings.triton_metrics_port
    )
    runtime = runtime_repository_path(settings.state_dir / "triton", ports.http)
    return TritonHandle(
        (_local_endpoint(settings, ports),),
        f"http://127.0.0.1:{ports.metrics}/metrics",
        None,
        runtime if runtime.is_dir() else None,
    )


def _local_endpoint(settings: Settings, ports: TritonPorts) -> Endpoint:
    protocol = settings.local_triton_protocol
    return Endpoint(protocol, f"127.0.0.1:{ports.grpc if protocol == 'grpc' else ports.http}")


def command_name() -> str:
    """The deeptag command this process runs, as its user typed it (``deeptag search``)."""
    words = [w for w in sys.argv[1:3] if not w.startswith("-")][:1]
    return " ".join(["deeptag", *words])


@dataclass
class TaggingSession:
    tagger: Tagger
    model: ModelInfo
    triton: TritonPool


def triton_pool(
    settings: Settings,
    endpoints: tuple[Endpoint, ...],
    model: str | None = None,
    *,
    retry: RetryPolicy = NO_RETRY,
    on_wait: Waiting = not_waiting,
    metrics: Metrics | None = None,
) -> TritonPool:
    """A (not yet connected) pool for ``model`` (default: the tagging model)."""
    return TritonPool(
        endpoints,
        model or settings.model,
        settings.triton_timeout_s,
        retry=retry,
        on_wait=on_wait,
        metrics=metrics,
        shared_memory=settings.triton_shared_memory,
    )


def source_reader(
    settings: Settings, http: httpx.AsyncClient, path_roots: tuple[Path, ...] | None
) -> SourceReader:
    """A reader under the configured fetch policy; ``path_roots`` None reads any path."""
    return SourceReader(
        http,
        FetchPolicy(
            max_bytes=settings.max_image_bytes,
            allow_private=settings.fetch_allow_private,
            path_roots=path_roots,
            max_redirects=settings.fetch_max_redirects,
        ),
        concurrency=settings.fetch_concurrency,
    )


@asynccontextmanager
async def tagging_session(
    settings: Settings,
    endpoints: tuple[Endpoint, ...],
    path_roots: tuple[Path, ...] | None,
    metrics: Metrics | None = None,
    *,
    retry: RetryPolicy = NO_RETRY,
    on_wait: Waiting = not_waiting,
    analyses: Sequence[AnalysisSpec] | None = None,
) -> AsyncIterator[TaggingSession]:
    """A tagger on the pool of ``endpoints``; ``retry`` lets its Triton calls ride out outages.

    It runs the analyses ``analyses`` names (default: those the settings turn on), whose
    models are checked here, once, so a missing one stops the command before any image."""
    chosen = enabled(settings) if analyses is None else analyses
    triton = triton_pool(settings, endpoints, retry=retry, on_wait=on_wait, metrics=metrics)
    model = await triton.connect()
    http = build_http_client(settings.fetch_timeout_s)
    try:
        built = [build_analysis(spec, settings) for spec in chosen]
        for spec in chosen:
            await triton.check_models(spec.models, spec.advice)
        reader = source_reader(settings, http, path_roots)
        enricher = load_enricher(
            settings.model_repository / settings.text_model, settings.concept_threshold
        )
        with decode_workers(settings.decode_workers) as pool:
            yield TaggingSession(
                Tagger(
                    reader,
                    triton,
                    settings.max_image_pixels,
                    metrics,
                    enricher=enricher,
                    decode_pool=pool,
                    with_location=settings.index_location,
                    analyses=built,
                    caller=triton,
                ),
                model,
                triton,
            )
    finally:
        await http.aclose()
        await triton.close()


@contextmanager
def decode_workers(count: int) -> Iterator[Executor]:
    """``count`` decode processes for a session, or one thread per core when 0.

    One thread per core, not asyncio's default pool (cores + 4): Pillow and hashlib release
    the GIL while they work, and more threads than cores only take turns on them (262 against
    212 images/s decoded on 2 cores). Processes are started by forkserver, not fork: this
    process already runs threads (HTTP clients, the index writer) that a forked child would
    inherit in whatever state they were.
    """
    pool: Executor = (
        ThreadPoolExecutor(usable_cores(), thread_name_prefix="decode")
        if count <= 0
        else ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("forkserver"))
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
