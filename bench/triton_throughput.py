"""Local Triton start-up, warm single-image `deeptag predict` latency, and batch throughput
through the Triton client versus onnxruntime in-process on the same tensors.

Run: .venv/bin/python bench/triton_throughput.py   (prints a table)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from rich.console import Console
from rich.table import Table

from orchestrator.preprocess import prepare
from orchestrator.samples import sample_photos
from orchestrator.sources import classify
from orchestrator.triton.client import TritonClient
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port
from orchestrator.types import ImageBytes

REPO = Path(__file__).resolve().parents[1] / "model_repository"
IMAGES = 256
BATCH = 32


def sample_tensors(count: int) -> np.ndarray:
    photos = [
        prepare(ImageBytes(classify(str(p), 0), p.read_bytes()), 10**8).pixels
        for p in sample_photos()
    ]
    return np.stack([photos[i % len(photos)] for i in range(count)])


def start_to_ready(work: Path, runs: int = 3) -> list[float]:
    times = []
    for _ in range(runs):
        ports = TritonPorts(free_port(), free_port(), free_port())
        started = time.perf_counter()
        with LocalTriton(REPO, work, ports):
            times.append(time.perf_counter() - started)
    return times


def cli_predict_latency(triton: LocalTriton, runs: int = 5) -> list[float]:
    coffee = str(sample_photos()[0])
    env = {**os.environ, "DEEPTAG_TRITON_URL": triton.http_url}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "orchestrator", "predict", coffee, "--json"],
            check=True,
            capture_output=True,
            env=env,
        )
        times.append(time.perf_counter() - started)
    return times


async def client_latency_and_throughput(
    triton: LocalTriton, tensors: np.ndarray
) -> tuple[list[float], float]:
    client = TritonClient(Endpoint.parse(triton.http_url), "efficientnet_lite0")
    await client.connect()
    try:
        single = []
        for i in range(10):
            started = time.perf_counter()
            await client.classify([tensors[i]], top_k=5)
            single.append(time.perf_counter() - started)
        await client.classify(list(tensors[:BATCH]), top_k=5)  # warm-up
        started = time.perf_counter()
        for i in range(0, len(tensors), BATCH):
            await client.classify(list(tensors[i : i + BATCH]), top_k=5)
        return single, len(tensors) / (time.perf_counter() - started)
    finally:
        await client.close()


def onnxruntime_throughput(tensors: np.ndarray) -> float:
    session = ort.InferenceSession(
        str(REPO / "efficientnet_lite0" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    session.run(None, {"image": tensors[:BATCH]})  # warm-up
    started = time.perf_counter()
    for i in range(0, len(tensors), BATCH):
        session.run(None, {"image": tensors[i : i + BATCH]})
    return len(tensors) / (time.perf_counter() - started)


def main() -> None:
    tensors = sample_tensors(IMAGES)
    table = Table(title=f"deeptag / Triton on CPU ({os.cpu_count()} cores)")
    table.add_column("measure")
    table.add_column("result", justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ready = start_to_ready(work)
        table.add_row(
            "local Triton start to ready (median of 3)", f"{statistics.median(ready):.2f} s"
        )
        ports = TritonPorts(free_port(), free_port(), free_port())
        with LocalTriton(REPO, work, ports) as triton:
            single, triton_ips = asyncio.run(client_latency_and_throughput(triton, tensors))
            cli = cli_predict_latency(triton)
        table.add_row(
            "`deeptag predict` 1 image, warm server (median of 5, incl. process start)",
            f"{statistics.median(cli) * 1000:.0f} ms",
        )
        table.add_row(
            "Triton client 1 image, warm (median of 10)",
            f"{statistics.median(single) * 1000:.1f} ms",
        )
        table.add_row(f"Triton client, {IMAGES} images at batch {BATCH}", f"{triton_ips:.1f} img/s")
    ort_ips = onnxruntime_throughput(tensors)
    table.add_row(
        f"onnxruntime in-process, {IMAGES} images at batch {BATCH}", f"{ort_ips:.1f} img/s"
    )
    table.add_row("Triton / in-process", f"{triton_ips / ort_ips:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
