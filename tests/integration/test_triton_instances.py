"""``deeptag triton start|status|stop --instances 2``: two real local Tritons, side by side."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from orchestrator.cli.triton import start_all
from orchestrator.errors import ModelNotFound, PortInUse
from orchestrator.triton.detached import stop_detached
from orchestrator.triton.launcher import (
    LocalTriton,
    TritonPorts,
    check_port_free,
    free_port,
    is_ready,
)
from orchestrator.triton.processes import terminate_group

pytestmark = pytest.mark.integration

DEEPTAG = [sys.executable, "-m", "orchestrator"]
REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "efficientnet_lite0"
STRIDE = 10  # instance i listens on each base port + 10*i


def deeptag(
    *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEEPTAG, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200", **env},
    )


def _free(port: int) -> bool:
    try:
        check_port_free(port, "test port")
    except PortInUse:
        return False
    return True


def base_ports(count: int = 3, instances: int = 2) -> list[int]:
    """``count`` base ports whose +10 neighbours are free too, none on another's."""
    chosen: list[int] = []
    taken: set[int] = set()
    for _ in range(200):
        port = free_port()
        wanted = {port + STRIDE * i for i in range(instances)}
        if max(wanted) <= 65535 and not wanted & taken and all(_free(p) for p in wanted):
            chosen.append(port)
            taken |= wanted
            if len(chosen) == count:
                return chosen
    raise AssertionError("found no free ports with free +10 neighbours")


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (reaping it is its new parent's business)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _pids(output: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"^Triton \d+ ready.*?\(pid (\d+)\)", output, re.M)]


def test_two_detached_tritons_serve_report_and_stop_together(
    exported_model: Path, tmp_path: Path
) -> None:
    http, grpc, metrics = base_ports()
    env = {"DEEPTAG_DATA_DIR": str(tmp_path), "DEEPTAG_TRITON_PROTOCOL": "http"}
    ports = ["--http-port", str(http)]
    both = (http, http + STRIDE)
    try:
        started = deeptag(
            "triton",
            "start",
            "--instances",
            "2",
            "--detach",
            *ports,
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
            env=env,
        )
        assert started.returncode == 0, started.stderr
        assert (
            f"export DEEPTAG_TRITON_URL=http://127.0.0.1:{http},http://127.0.0.1:{http + STRIDE}"
            in started.stdout
        )
        pids = _pids(started.stdout)
        assert len(set(pids)) == 2, started.stdout
        for port in both:
            assert httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200
            model = httpx.get(f"http://127.0.0.1:{port}/v2/models/{MODEL}/ready")
            assert model.status_code == 200, f"{MODEL} is not served on {port}"
        # Each instance really has its own gRPC port too.
        with socket.create_connection(("127.0.0.1", grpc + STRIDE), timeout=2):
            pass

        status = deeptag("triton", "status", "--instances", "2", *ports, env=env)
        assert status.returncode == 0, status.stderr
        for port in both:
            assert f"Triton on HTTP port {port} is ready" in status.stdout

        stopped = deeptag("triton", "stop", "--instances", "2", *ports, env=env)
        assert stopped.returncode == 0, stopped.stderr
        for port, pid in zip(both, pids, strict=True):
            assert f"stopped Triton (pid {pid}) on HTTP port {port}" in stopped.stdout
        assert not any(is_ready(port, timeout=1.0) for port in both)
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(pid) for pid in pids), "a stopped Triton is still running"

        after = deeptag("triton", "status", "--instances", "2", *ports, env=env)
        assert after.returncode == 1
        assert f"no Triton is ready on HTTP port {http + STRIDE}" in after.stderr
    finally:
        for port in both:
            stop_detached(tmp_path / "run", port)


def test_a_port_in_use_fails_before_any_instance_starts(
    exported_model: Path, tmp_path: Path
) -> None:
    http, grpc, metrics = base_ports()
    env = {"DEEPTAG_DATA_DIR": str(tmp_path)}
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", grpc + STRIDE))  # instance 1's gRPC port
        blocker.listen()
        try:
            result = deeptag(
                "triton",
                "start",
                "--instances",
                "2",
                "--detach",
                "--http-port",
                str(http),
                "--grpc-port",
                str(grpc),
                "--metrics-port",
                str(metrics),
                env=env,
            )
            assert result.returncode == 1
            assert f"Triton 1: port {grpc + STRIDE} (grpc port) is already in use" in result.stderr
            assert "Traceback" not in result.stderr
            assert not is_ready(http, timeout=1.0), "instance 0 was left running"
            assert not list((tmp_path / "run").glob("triton-*.json"))
        finally:
            for port in (http, http + STRIDE):
                stop_detached(tmp_path / "run", port)


def test_in_the_foreground_one_dying_stops_the_other(exported_model: Path, tmp_path: Path) -> None:
    http, grpc, metrics = base_ports()
    process = subprocess.Popen(
        [
            *DEEPTAG,
            "triton",
            "start",
            "--instances",
            "2",
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200", "DEEPTAG_DATA_DIR": str(tmp_path)},
    )
    pids: list[int] = []
    try:
        assert process.stdout is not None
        seen = ""
        for line in process.stdout:
            seen += line
            if "Ctrl-C stops them" in line:
                break
        pids = _pids(seen)
        assert len(pids) == 2, seen
        assert is_ready(http)
        assert is_ready(http + STRIDE)

        os.kill(pids[1], signal.SIGKILL)  # a server of the command's, killed from outside
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 1
        assert f"Triton 1 (HTTP port {http + STRIDE}) was killed by SIGKILL" in stderr
        assert f"tritonserver-{http + STRIDE}.log" in stderr
        assert "Traceback" not in stderr
        assert not is_ready(http, timeout=1.0), "Triton 0 outlived its sibling"
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        # Both servers die with the command; this only covers a command that hung.
        for pid in pids:
            if not _gone(pid):
                terminate_group(pid, grace_s=5)


def test_an_instance_that_fails_to_start_stops_those_started_before_it(
    exported_model: Path, tmp_path: Path
) -> None:
    http, grpc, metrics = base_ports()
    first = LocalTriton(exported_model, tmp_path, TritonPorts(http, grpc, metrics))
    # The second fails after the first is up: its model repository is not there.
    missing = tmp_path / "no-such-repository"
    ports = TritonPorts(http + STRIDE, grpc + STRIDE, metrics + STRIDE)
    second = LocalTriton(missing, tmp_path, ports)
    try:
        with pytest.raises(ModelNotFound) as failure:
            start_all([first, second], LocalTriton.start, LocalTriton.stop)
        message = str(failure.value)
        assert message.startswith("Triton 1 did not start; stopped the 1 started before it")
        assert str(missing) in message
        assert first.pid is None, "Triton 0 was left running"
        assert not is_ready(http, timeout=1.0)
    finally:
        first.stop()
        second.stop()
