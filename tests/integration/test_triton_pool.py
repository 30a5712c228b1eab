"""Several Tritons as one pool: spread, failover when one dies, back when it returns, and one
that serves another model version refused by name."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import ModelMismatch
from orchestrator.metrics import Metrics
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port
from orchestrator.triton.pool import TritonPool

pytestmark = pytest.mark.integration

MODEL = "efficientnet_lite0"
PIXELS = [np.full((224, 224, 3), shade, dtype=np.uint8) for shade in (0, 90, 180, 255)]


def calls(metrics: Metrics, endpoint: str, outcome: str = "ok") -> float:
    value = metrics.registry.get_sample_value(
        "deeptag_triton_requests_total", {"endpoint": endpoint, "outcome": outcome}
    )
    return value or 0.0


def ready_gauge(metrics: Metrics, endpoint: str) -> float | None:
    return metrics.registry.get_sample_value(
        "deeptag_triton_endpoint_ready", {"endpoint": endpoint}
    )


async def until_ready(pool: TritonPool, count: int, timeout_s: float) -> None:
    """Polls what the pool reports (its probe runs in the background), as /metrics would."""
    deadline = time.monotonic() + timeout_s
    while len(pool.ready_endpoints()) < count and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


def only_image_model(source: Path, target: Path, version: str) -> Path:
    """A repository with the image model alone, its ONNX file under ``version``."""
    model = target / MODEL
    (model / version).mkdir(parents=True)
    for name in ("config.pbtxt", "labels.txt"):
        shutil.copyfile(source / MODEL / name, model / name)
    (model / version / "model.onnx").symlink_to((source / MODEL / "1" / "model.onnx").resolve())
    return target


def test_batches_spread_fail_over_and_come_back(
    exported_model: Path, triton: LocalTriton, tmp_path: Path
) -> None:
    repository = only_image_model(exported_model, tmp_path / "repo", "1")
    ports = TritonPorts(free_port(), free_port(), free_port())
    second = LocalTriton(repository, tmp_path / "b", ports)
    second.start()
    a, b = Endpoint.parse(triton.http_url), Endpoint.parse(second.http_url)
    metrics = Metrics()

    async def scenario() -> None:
        pool = TritonPool([a, b], MODEL, 30.0, metrics=metrics, probe_interval_s=0.2)
        await pool.connect()
        try:
            await asyncio.gather(*(pool.classify(PIXELS, 3) for _ in range(12)))
            # Least-in-flight routing sends concurrent batches to both servers.
            assert calls(metrics, str(a)) > 0
            assert calls(metrics, str(b)) > 0

            assert second.pid is not None
            os.killpg(second.pid, signal.SIGKILL)
            await asyncio.to_thread(second.wait)
            results = await asyncio.gather(*(pool.classify(PIXELS, 3) for _ in range(6)))
            # Every batch answered, whichever server it was first sent to.
            assert all(len(r.labels) == len(PIXELS) for r in results)
            assert ready_gauge(metrics, str(b)) == 0
            assert pool.ready_endpoints() == (a,)

            restarted = LocalTriton(repository, tmp_path / "b", ports)
            await asyncio.to_thread(restarted.start)
            try:
                await until_ready(pool, 2, 30)
                assert pool.ready_endpoints() == (a, b)
                assert ready_gauge(metrics, str(b)) == 1
                before = calls(metrics, str(b))
                await asyncio.gather(*(pool.classify(PIXELS, 3) for _ in range(12)))
                assert calls(metrics, str(b)) > before
            finally:
                await asyncio.to_thread(restarted.stop)
        finally:
            await pool.close()

    try:
        asyncio.run(scenario())
    finally:
        second.stop()


def test_endpoints_serving_different_versions_are_refused(
    exported_model: Path, triton: LocalTriton, tmp_path: Path
) -> None:
    repository = only_image_model(exported_model, tmp_path / "repo", "2")
    with LocalTriton(
        repository, tmp_path / "v2", TritonPorts(free_port(), free_port(), free_port())
    ) as other:
        pool = TritonPool([Endpoint.parse(triton.http_url), Endpoint.parse(other.http_url)], MODEL)
        with pytest.raises(ModelMismatch) as info:
            asyncio.run(pool.connect())
    message = info.value.message
    assert triton.http_url in message
    assert other.http_url in message
    assert "version 1" in message
    assert "version 2" in message
