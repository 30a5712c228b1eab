"""Fault injection for `deeptag index`: real servers killed and restarted mid-run.

Shared by tests/e2e/test_outages.py (which asserts what a user sees) and bench/faults.py
(which times the same scenarios).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from orchestrator.triton.launcher import LocalTriton
from tests.environment import clean_environment

DEEPTAG = [sys.executable, "-m", "orchestrator"]
SUMMARY = re.compile(r"(\d+) indexed, (\d+) skipped \(already indexed\), (\d+) failed")
_INFERENCES = re.compile(r'^nv_inference_count\{model="efficientnet_lite0"[^}]*\}\s+(\S+)', re.M)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds it took ``condition`` to hold; AssertionError naming ``what`` past the timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - started


def inferences(triton: LocalTriton) -> int:
    """Images the image model has classified on ``triton`` (Triton's own counter)."""
    try:
        text = httpx.get(triton.metrics_url, timeout=2).text
    except httpx.HTTPError:
        return 0
    return int(sum(float(v) for v in _INFERENCES.findall(text)))


def killed_after(triton: LocalTriton, images: int) -> Callable[[], None]:
    """A fault: ``triton`` killed with SIGKILL once it has classified ``images`` images."""

    def fault() -> None:
        wait_until(lambda: inferences(triton) >= images, 120, f"{images} images classified")
        kill_9(triton)

    return fault


def kill_9(triton: LocalTriton) -> None:
    """The crash: the server and its python stubs die at once, connections left open."""
    assert triton.pid is not None
    os.killpg(triton.pid, signal.SIGKILL)
    triton.wait()
    triton.stop()


@dataclass
class Noida:
    """noida-db (the Elasticsearch API) on a fixed port, so it can be restarted on it."""

    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = Path(sys.executable).parent / "noida-db"
        log = (self.data_dir / "noida.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(binary),
                "start",
                "--only",
                "elasticsearch",
                "--host",
                "127.0.0.1",
                "--elasticsearch-port",
                str(self.port),
                "--data-dir",
                str(self.data_dir / "data"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            # A wrapper runs the real binary as a child: signal the group.
            start_new_session=True,
        )
        log.close()
        try:
            wait_until(self.answers, 30, f"noida-db answering on port {self.port}")
        except AssertionError as e:
            self.stop()
            raise AssertionError(
                f"{e}; its log:\n{(self.data_dir / 'noida.log').read_text()}"
            ) from e

    def answers(self) -> bool:
        try:
            return httpx.get(self.url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def count(self, index: str) -> int:
        try:
            response = httpx.get(f"{self.url}/{index}/_count", timeout=2)
        except httpx.HTTPError:
            return 0
        return int(response.json().get("count", 0)) if response.status_code == 200 else 0

    def stop(self) -> None:
        """A clean stop (SIGTERM): what it acknowledged is on disk."""
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


@dataclass(frozen=True)
class IndexRun:
    returncode: int
    stderr: str
    indexed: int
    skipped: int
    failed: int
    elapsed_s: float


def run_index(
    folder: Path,
    env: dict[str, str],
    cwd: Path,
    fault: Callable[[], None],
    command: str = "index",
) -> IndexRun:
    """`deeptag index FOLDER` (or another ``command`` taking a folder) as a user runs it, with
    ``fault()`` done while it runs."""
    environment = {
        **clean_environment(),
        "COLUMNS": "200",
        **env,
    }
    log_path = cwd / f"{command}.stderr"
    started = time.monotonic()
    with log_path.open("w") as stderr:
        process = subprocess.Popen(
            [*DEEPTAG, command, str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=cwd,
            env=environment,
        )
        try:
            fault()
            process.wait(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    elapsed = time.monotonic() - started
    text = log_path.read_text()
    match = SUMMARY.search(text)
    indexed, skipped, failed = (int(g) for g in match.groups()) if match else (-1, -1, -1)
    return IndexRun(process.returncode, text, indexed, skipped, failed, elapsed)
