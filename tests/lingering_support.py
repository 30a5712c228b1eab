"""`deeptag` commands as a user runs them with no Triton configured: the lingering one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from orchestrator.triton.launcher import LocalTriton, free_port
from orchestrator.triton.lingering import LingerPaths
from tests.conftest import REPO_ROOT
from tests.environment import clean_environment

STARTED = "started a local Triton on 127.0.0.1:"


class Lingering:
    """deeptag commands sharing one data directory, lingering on, no Triton configured."""

    def __init__(self, data_dir: Path, idle_s: float) -> None:
        self.data_dir = data_dir
        self.paths = LingerPaths.of(data_dir / "run")
        self.env = {
            **clean_environment(),
            "COLUMNS": "200",
            "DEEPTAG_DATA_DIR": str(data_dir),
            "DEEPTAG_TRITON_LINGER": "true",
            "DEEPTAG_TRITON_IDLE_S": str(idle_s),
            # Nothing listens there: no `deeptag triton start` of the machine is used.
            "DEEPTAG_TRITON_HTTP_PORT": str(free_port()),
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "orchestrator", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO_ROOT,
            env=self.env,
        )

    def state(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.paths.state.read_text())
        return loaded

    def index_through(self, triton: LocalTriton, *paths: Path) -> None:
        """Index ``paths`` through ``triton`` (the suite's), so no lingering one starts."""
        done = subprocess.run(
            self.command("index", *(str(p) for p in paths)),
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO_ROOT,
            env={**self.env, "DEEPTAG_TRITON_URL": triton.http_url},
        )
        assert done.returncode == 0, done.stderr
