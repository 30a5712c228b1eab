"""`/predict` with a warm server: p50/p95 for 1 image and for 16 images per call, and the
throughput of 16-image calls sent 32 at a time.

Starts a local Triton, a local image server and `deeptag serve`, then prints a table.
Run: .venv/bin/python bench/predict_latency.py [--calls 40] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from PIL import Image
from rich.console import Console
from rich.table import Table

from orchestrator.runtime import shim_options
from orchestrator.samples import sample_photos
from orchestrator.settings import load_settings
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port

REPO = Path(__file__).resolve().parents[1]


class ImageHTTPServer(ThreadingHTTPServer):
    # The default backlog of 5 drops concurrent connections and costs 1 s SYN retries.
    request_queue_size = 128


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve_folder(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    server = ImageHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def write_jpegs(folder: Path, count: int) -> list[str]:
    names = []
    photos = sample_photos()
    for i in range(count):
        image = Image.open(photos[i % len(photos)]).convert("RGB")
        # Different crops, so no two requests carry identical bytes.
        image = image.crop((i % 7, i % 5, image.width - i % 3, image.height))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=90)
        name = f"img{i:03d}.jpg"
        (folder / name).write_bytes(out.getvalue())
        names.append(name)
    return names


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@contextmanager
def deeptag_serve(
    triton_url: str, data_dir: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A healthy `deeptag serve` on a free port (its URL and process), stopped on exit."""
    port = free_port()
    environment = {
        **os.environ,
        "DEEPTAG_TRITON_URL": triton_url,
        "DEEPTAG_DATA_DIR": str(data_dir),
        "DEEPTAG_FETCH_ALLOW_PRIVATE": "true",
        **(env or {}),
    }
    command = [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)]
    server = subprocess.Popen([*command, "--log-level", "warning"], env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, server
    finally:
        server.terminate()
        server.wait()


@dataclass(frozen=True)
class Stack:
    url: str  # of `deeptag serve`
    images: list[str]  # URLs of the served JPEGs
    triton: LocalTriton
    server: subprocess.Popen[bytes]  # `deeptag serve`


@contextmanager
def predict_stack(image_count: int = 64) -> Iterator[Stack]:
    """JPEGs on a local image server, a local Triton and `deeptag serve` on it, all stopped
    on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        names = write_jpegs(folder, image_count)
        image_server, image_url = serve_folder(folder)
        images = [f"{image_url}/{name}" for name in names]
        ports = TritonPorts(free_port(), free_port(), free_port())
        with (
            LocalTriton(
                REPO / "model_repository",
                Path(tmp) / "triton",
                ports,
                shim=shim_options(load_settings()),
            ) as triton,
            # As deeptag speaks to a local Triton by default: over gRPC.
            deeptag_serve(f"grpc://{triton.grpc_url}", Path(tmp) / "data") as (url, server),
        ):
            yield Stack(url, images, triton, server)
        image_server.shutdown()


def measure(url: str, images: list[str], per_call: int, calls: int) -> list[float]:
    times = []
    with httpx.Client(timeout=120) as http:
        for call in range(calls + 3):
            data = [images[(call * per_call + i) % len(images)] for i in range(per_call)]
            started = time.perf_counter()
            response = http.post(
                f"{url}/predict",
                json={"service": "imageserv", "parameters": {"output": {"best": 3}}, "data": data},
            )
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            if call >= 3:  # the first calls warm caches and connections
                times.append(elapsed)
    return times


def throughput(url: str, images: list[str], per_call: int, concurrency: int, calls: int) -> float:
    """Images/s of ``calls`` calls of ``per_call`` images, ``concurrency`` in flight at once."""
    from concurrent.futures import ThreadPoolExecutor

    def call(i: int, http: httpx.Client) -> None:
        data = [images[(i * per_call + j) % len(images)] for j in range(per_call)]
        body = {"service": "imageserv", "parameters": {"output": {"best": 3}}, "data": data}
        http.post(f"{url}/predict", json=body).raise_for_status()

    limits = httpx.Limits(max_connections=concurrency)
    with httpx.Client(timeout=300, limits=limits) as http, ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda i: call(i, http), range(concurrency)))  # warm
        started = time.perf_counter()
        list(pool.map(lambda i: call(i, http), range(calls)))
        return calls * per_call / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with predict_stack() as stack:
        rows = [(n, measure(stack.url, stack.images, n, args.calls)) for n in (1, 16)]
        rate = throughput(stack.url, stack.images, 16, args.concurrency, 3 * args.concurrency)
    title = f"/predict, warm server, local Triton on CPU ({os.cpu_count()} cores)"
    table = Table(title=f"{title}, {args.calls} calls each")
    for column in ("images per call", "p50", "p95", "images/s at p50"):
        table.add_column(column, justify="right")
    for per_call, times in rows:
        p50 = percentile(times, 50)
        table.add_row(
            str(per_call),
            f"{p50 * 1000:.0f} ms",
            f"{percentile(times, 95) * 1000:.0f} ms",
            f"{per_call / p50:.1f}",
        )
    Console().print(table)
    Console().print(
        f"16 images per call, {args.concurrency} calls in flight: {rate:.1f} images/s",
        highlight=False,
    )


if __name__ == "__main__":
    main()
