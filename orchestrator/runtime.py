"""Build the long-lived clients a command or the server needs, and tear them down after."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import AsyncIterator, Iterator, Sequence
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
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port, is_ready
from orchestrator.triton.model_info import ModelInfo
from orchestrator.triton.pool import TritonPool
from orchestrator.triton.runtime_repository import ShimOptions, cpu_layout


@dataclass(frozen=True)
class TritonHandle:
    endpoints: tuple[Endpoint, ...]
    metrics_url: str | None
    local: LocalTriton | None

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


def shim_options(
    settings: Settings, cores: int | None = None, *, bulk: bool = False
) -> ShimOptions:
    """How a local Triton given ``cores`` (default: all this process may use) runs
    onnxruntime, from the settings (pure but for counting the cores).

    Unless the settings say how many model instances, one for a Triton that answers one call
    at a time (a lone batch then gets every core: 16 images in 120 ms rather than 200), one
    per core for a ``bulk`` job that keeps a batch in each (`deeptag index`: 5-10 % more
    images per second on 2 cores, docs/explanation/performance.md).
    """
    wanted = settings.triton_cpu_instances or (0 if bulk else 1)
    instances, threads = cpu_layout(cores or usable_cores(), wanted)
    if cores is None and instances == 1:
        threads = 0  # onnxruntime's own choice for a whole machine: one per physical core
    return ShimOptions(
        intra_op_threads=threads,
        instances=instances,
        memory_arena=settings.triton_cpu_memory_arena,
        spinning=settings.triton_cpu_spinning,
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


@contextmanager
def triton_for(
    settings: Settings,
    *,
    bulk: bool = False,
    every_model: bool = False,
    models: frozenset[str] | None = None,
) -> Iterator[TritonHandle]:
    """The configured Triton; else a local one already running on the configured port;
    else a local one started on free ports for as long as the block runs (laid out for a
    ``bulk`` job, see :func:`shim_options`; with ``models`` when the caller needs only those,
    else those :func:`served_models` says)."""
    if settings.triton_url:
        yield TritonHandle(configured_endpoints(settings), None, None)
        return
    if is_ready(settings.triton_http_port, timeout=0.5):
        port = (
            settings.triton_grpc_port
            if settings.local_triton_protocol == "grpc"
            else settings.triton_http_port
        )
        yield TritonHandle(
            (Endpoint(settings.local_triton_protocol, f"127.0.0.1:{port}"),),
            f"http://127.0.0.1:{settings.triton_metrics_port}/metrics",
            None,
        )
        return
    ports = TritonPorts(free_port(), free_port(), free_port())
    with LocalTriton(
        settings.model_repository,
        settings.state_dir / "triton",
        ports,
        start_timeout_s=settings.triton_start_timeout_s,
        shim=shim_options(settings, bulk=bulk),
        only=models if models is not None else served_models(settings, every_model),
    ) as local:
        address = (
            local.grpc_url
            if settings.local_triton_protocol == "grpc"
            else f"127.0.0.1:{ports.http}"
        )
        yield TritonHandle(
            (Endpoint(settings.local_triton_protocol, address),), local.metrics_url, local
        )


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
