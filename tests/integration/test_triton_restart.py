"""A crashed local Triton can be started again on the same ports at once, as a supervisor would."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port, is_ready

pytestmark = pytest.mark.integration


def test_restart_on_the_same_ports_right_after_kill_9(exported_model: Path, tmp_path: Path) -> None:
    ports = TritonPorts(free_port(), free_port(), free_port())
    first = LocalTriton(exported_model, tmp_path / "work", ports)
    first.start()
    try:
        # Clients with keep-alive connections open, as a serving Triton has.
        with httpx.Client(base_url=first.http_url) as client, httpx.Client() as scraper:
            for _ in range(3):
                assert client.get("/v2/health/ready").status_code == 200
                assert scraper.get(first.metrics_url).status_code == 200
            assert first.pid is not None
            # The crash: the server and its python stubs die without closing anything.
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
            # The clients notice and drop their connections, which leaves them in TIME_WAIT.
            with pytest.raises(httpx.TransportError):
                client.get("/v2/health/ready")
    finally:
        first.stop()

    second = LocalTriton(exported_model, tmp_path / "work", ports)
    second.start()
    try:
        assert is_ready(ports.http)
        model = httpx.get(f"{second.http_url}/v2/models/efficientnet_lite0/ready", timeout=5)
        assert model.status_code == 200
    finally:
        second.stop()


def test_a_killed_servers_shared_memory_is_removed_by_the_next_start_and_by_stop(
    exported_model: Path, tmp_path: Path
) -> None:
    """The python backend's /dev/shm files outlive a SIGKILL; left there they pile up."""
    ports = TritonPorts(free_port(), free_port(), free_port())
    first = LocalTriton(exported_model, tmp_path / "work", ports)
    first.start()
    assert first.pid is not None
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    left = set(Path("/dev/shm").glob(f"{first.shm_prefix}*"))
    assert left, "expected the killed server's stub memory under /dev/shm"

    # As a supervisor would: a new launcher on the same ports, the dead one never stopped.
    second = LocalTriton(exported_model, tmp_path / "work", ports)
    second.start()
    try:
        assert not any(path.exists() for path in left)
        assert list(Path("/dev/shm").glob(f"{second.shm_prefix}*"))
    finally:
        second.stop()
        first.stop()
    assert not list(Path("/dev/shm").glob(f"{second.shm_prefix}*"))
