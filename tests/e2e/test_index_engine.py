"""`deeptag index --engine ray` as typed: refused clearly where it cannot run, before any work.

The distributed run itself is tested in tests/integration/test_ray_index.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.environment import clean_environment

pytestmark = pytest.mark.e2e


def deeptag(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = clean_environment()
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, "COLUMNS": "200", **env},
        check=False,
    )


def test_ray_with_the_embedded_index_is_refused_with_what_to_use(
    samples: dict[str, Path], tmp_path: Path
) -> None:
    done = deeptag(
        "index", "--engine", "ray", str(samples["coffee"]), env={"DEEPTAG_DATA_DIR": str(tmp_path)}
    )
    assert done.returncode != 0
    assert "DEEPTAG_ES_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_ray_address_without_the_ray_engine_is_refused(
    samples: dict[str, Path], tmp_path: Path
) -> None:
    done = deeptag(
        "index",
        "--ray-address",
        "auto",
        str(samples["coffee"]),
        env={"DEEPTAG_DATA_DIR": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "--ray-address needs --engine ray" in done.stderr
