"""`deeptag index --engine ray` against the single-process indexer: images/s on one folder.

Makes N distinct 1-3 MP JPEGs (as bench/index_throughput.py does), starts noida-db (the
Elasticsearch API) and one or more local Tritons, then indexes the folder twice into fresh
indexes: with the single-process Indexer, and with run_on_ray on a local Ray using every
core. Ray's start is timed apart from the run, since a cluster is started once for many runs.

Run: .venv/bin/python bench/ray_index.py [--count 200] [--tritons 1] [--photos DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from index_throughput import make_photos, start_noida
from rich.console import Console
from rich.table import Table

from orchestrator import collect
from orchestrator.distributed import run_on_ray
from orchestrator.indexing import Indexer, IndexOptions, IndexStats
from orchestrator.retry import RetryPolicy
from orchestrator.runtime import configured_endpoints, tagging_session
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port

REPO = Path(__file__).resolve().parents[1]


def settings_for(es_url: str, triton_url: str, data_dir: Path) -> Settings:
    return Settings(
        triton_url=triton_url,
        model_repository=REPO / "model_repository",
        data_dir=data_dir,
        search_backend="es",
        es_url=es_url,
        es_index=f"bench-{uuid.uuid4().hex[:8]}",
    )


async def single_process(settings: Settings, folder: Path, options: IndexOptions) -> IndexStats:
    retry = RetryPolicy(settings.retry_window_s)
    backend = await open_backend(settings, writer=True, retry=retry)
    try:
        endpoints = configured_endpoints(settings)
        async with tagging_session(settings, endpoints, None, retry=retry) as session:
            indexer = Indexer(session.tagger, session.model, backend, options)
            return await indexer.run(collect.expand([str(folder)]))
    finally:
        await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--tritons", type=int, default=1, help="Local Tritons to spread over.")
    parser.add_argument("--photos", type=Path, help="Keep generated photos here (reused).")
    args = parser.parse_args()
    console = Console(width=120)
    options = IndexOptions()
    import ray

    with tempfile.TemporaryDirectory(prefix="deeptag-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        folder = (args.photos or work / "photos") / f"set_{args.count}"
        mean_mb = make_photos(folder, args.count)
        console.print(f"{args.count} photos of 1-3 MP in {folder} (mean {mean_mb:.2f} MB)")
        noida, es_url = start_noida(work)
        stack.callback(os.killpg, noida.pid, signal.SIGTERM)
        urls = []
        for i in range(args.tritons):
            ports = TritonPorts(free_port(), free_port(), free_port())
            triton = LocalTriton(REPO / "model_repository", work / f"triton-{i}", ports)
            urls.append(stack.enter_context(triton).http_url)
        triton_url = ",".join(urls)

        alone = settings_for(es_url, urls[0], work / "alone")
        stats = asyncio.run(single_process(alone, folder, options))

        started = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        stack.callback(ray.shutdown)
        ray_start_s = time.perf_counter() - started
        on_ray = settings_for(es_url, triton_url, work / "ray")
        ray_stats = run_on_ray(on_ray, [str(folder)], None, options, print, lambda _: None)

        table = Table(title=f"index {args.count} photos into Elasticsearch, {os.cpu_count()} cores")
        for column in ("engine", "Tritons", "indexed", "failed", "seconds", "images/s"):
            table.add_column(column, justify="right")
        for engine, tritons, result in (
            ("single process", 1, stats),
            ("ray", args.tritons, ray_stats),
        ):
            table.add_row(
                engine,
                str(tritons),
                str(result.indexed),
                str(result.failed),
                f"{result.elapsed_s:.1f}",
                f"{result.images_per_s:.1f}",
            )
        console.print(table)
        console.print(f"ray.init: {ray_start_s:.1f} s (not counted above)")


if __name__ == "__main__":
    main()
