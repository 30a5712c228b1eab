"""`deeptag train` on this machine: 3 categories x 30 images, then `/predict` latency.

Makes the training folder from the sample photos (augmented crops of one photo per category),
trains with an empty embedding cache (every image goes through Triton), prints the time to
embed and to fit, the held-out accuracy, and `/predict` latency (one image per call) of the new
service next to `imageserv`. Everything runs in a temporary folder with its own model
repository, local Triton and `deeptag serve`.

Run: .venv/bin/python bench/train_probe.py [--per-class 30] [--calls 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from orchestrator.runtime import TritonHandle
from orchestrator.samples import sample_dir
from orchestrator.settings import Settings
from orchestrator.training.fit import FitOptions
from orchestrator.training.sample_data import make_dataset
from orchestrator.training.trainer import TrainReport, TrainRequest, train
from orchestrator.triton.client import TritonClient
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = ("astronaut", "cat", "coffee")


def _repository(root: Path) -> Path:
    repository = root / "model_repository"
    source = REPO / "model_repository" / "efficientnet_lite0"
    target = repository / "efficientnet_lite0"
    (target / "1").mkdir(parents=True)
    for name in ("config.pbtxt", "labels.txt"):
        shutil.copy(source / name, target / name)
    (target / "1" / "model.onnx").symlink_to((source / "1" / "model.onnx").resolve())
    return repository


async def _train(settings: Settings, local: LocalTriton, folder: Path) -> TrainReport:
    handle = TritonHandle(Endpoint("http", f"127.0.0.1:{local.ports.http}"), None, local)
    backbone = TritonClient(handle.endpoint, settings.model)
    await backbone.connect()
    try:
        request = TrainRequest("bench", folder, FitOptions(test_split=0.2, seed=0))
        return await train(request, settings, handle, backbone)
    finally:
        await backbone.close()


def _latency(
    url: str, services: tuple[str, ...], image: Path, calls: int
) -> dict[str, list[float]]:
    """Per service, ms per call; the services take turns so machine noise hits both alike."""
    times: dict[str, list[float]] = {service: [] for service in services}
    with httpx.Client(timeout=60) as client:
        for i in range(calls + 3):
            for service in services:
                body = {
                    "service": service,
                    "parameters": {"output": {"best": 3}},
                    "data": [str(image)],
                }
                started = time.perf_counter()
                response = client.post(f"{url}/predict", json=body)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                if i >= 3:  # the first calls connect and warm up
                    times[service].append(elapsed)
    return times


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"deeptag serve did not start:\n{log.read_text()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        repository = _repository(root)
        folder = root / "images" / "train"
        make_dataset(folder, CATEGORIES, args.per_class, seed=0)
        photo = root / "images" / "astronaut.png"
        shutil.copy(sample_dir() / "astronaut.png", photo)
        data_dir = root / "data"
        ports = TritonPorts(free_port(), free_port(), free_port())
        settings = Settings(model_repository=repository, data_dir=data_dir)
        with LocalTriton(repository, data_dir / "run" / "triton", ports) as local:
            report = asyncio.run(_train(settings, local, folder))
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")},
                "DEEPTAG_MODEL_REPOSITORY": str(repository),
                "DEEPTAG_DATA_DIR": str(data_dir),
                "DEEPTAG_TRITON_HTTP_PORT": str(ports.http),
                "DEEPTAG_TRITON_METRICS_PORT": str(ports.metrics),
                "DEEPTAG_IMAGE_ROOTS": str(root / "images"),
            }
            port = free_port()
            server = _serve(env, port, root / "serve.log")
            try:
                url = f"http://127.0.0.1:{port}"
                httpx.put(
                    f"{url}/services/bench", json={"model": {"name": "bench"}}, timeout=30
                ).raise_for_status()
                latencies = _latency(url, ("imageserv", "bench"), photo, args.calls)
            finally:
                server.terminate()
                server.wait(timeout=15)
    evaluation = report.evaluation
    images = report.images
    table = Table(title=f"deeptag train: {len(CATEGORIES)} categories x {args.per_class} images")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("images embedded through Triton (cache empty)", str(images - report.cached))
    table.add_row("embedding", f"{report.embed_s:.2f} s ({images / report.embed_s:.0f} img/s)")
    table.add_row("fit (2 fits: held-out measure, then all images)", f"{report.fit_s:.2f} s")
    table.add_row("train total (incl. export and Triton load)", f"{report.total_s:.2f} s")
    if evaluation is not None:
        table.add_row(
            f"held-out accuracy ({evaluation.test_size} images)", f"{evaluation.accuracy:.3f}"
        )
    for service, times in latencies.items():
        p50 = statistics.median(times)
        p95 = statistics.quantiles(times, n=20)[-1]
        table.add_row(f"/predict 1 image, {service}: p50 / p95", f"{p50:.1f} / {p95:.1f} ms")
    console.print(table)
    console.print(
        "Each category is crops of one photo: the accuracy shows the mechanism works, "
        "not how well real categories would separate."
    )


if __name__ == "__main__":
    main()
