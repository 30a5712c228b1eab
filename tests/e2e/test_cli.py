"""``deeptag`` as a user runs it: a subprocess, its output and its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.triton.launcher import LocalTriton, free_port

pytestmark = pytest.mark.e2e

DEEPTAG = [sys.executable, "-m", "orchestrator"]
REPO_ROOT = Path(__file__).resolve().parents[2]


def deeptag(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEEPTAG, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_predict_json_has_deepdetect_shape_and_isolates_bad_files(
    triton: LocalTriton, samples: dict[str, Path], bad_images: dict[str, Path], tmp_path: Path
) -> None:
    result = deeptag(
        "predict",
        str(samples["coffee"]),
        str(bad_images["text"]),
        "--best",
        "3",
        "--json",
        env={"DEEPTAG_TRITON_URL": triton.http_url, "DEEPTAG_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["status"]["code"] == 200
    assert response["head"]["method"] == "/predict"
    coffee, text = response["body"]["predictions"]
    assert coffee["uri"] == str(samples["coffee"])
    assert coffee["classes"][0]["cat"] == "n07920052 espresso"
    assert len(coffee["classes"]) == 3
    assert coffee["classes"][-1]["last"] is True
    assert str(bad_images["text"]) in text["error"]["msg"]


def test_predict_table_starts_and_stops_its_own_triton(
    exported_model: Path, samples: dict[str, Path], tmp_path: Path
) -> None:
    env = {
        "DEEPTAG_DATA_DIR": str(tmp_path),
        # Nothing listens here, so predict must start (and stop) a local Triton itself.
        "DEEPTAG_TRITON_HTTP_PORT": str(free_port()),
    }
    env.pop("DEEPTAG_TRITON_URL", None)
    result = deeptag("predict", str(samples["chelsea"]), "--best", "2", env=env)
    assert result.returncode == 0, result.stderr
    assert "cat" in result.stdout
    assert str(samples["chelsea"].name) in result.stdout
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def test_predict_with_only_bad_inputs_exits_non_zero(triton: LocalTriton, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    result = deeptag("predict", str(missing), env={"DEEPTAG_TRITON_URL": triton.http_url})
    assert result.returncode == 1
    assert str(missing) in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_missing_model_tells_how_to_export(
    repository_copy: Path, tmp_path: Path, samples: dict[str, Path]
) -> None:
    result = deeptag(
        "predict",
        str(samples["coffee"]),
        env={
            "DEEPTAG_MODEL_REPOSITORY": str(repository_copy),
            "DEEPTAG_DATA_DIR": str(tmp_path),
            "DEEPTAG_TRITON_HTTP_PORT": str(free_port()),
        },
    )
    assert result.returncode == 1
    assert "deeptag models export" in result.stderr
    assert "Traceback" not in result.stderr


def test_triton_start_detach_status_stop(exported_model: Path, tmp_path: Path) -> None:
    ports = [str(free_port()) for _ in range(3)]
    env = {"DEEPTAG_DATA_DIR": str(tmp_path)}
    started = deeptag(
        "triton",
        "start",
        "--detach",
        "--http-port",
        ports[0],
        "--grpc-port",
        ports[1],
        "--metrics-port",
        ports[2],
        env=env,
    )
    assert started.returncode == 0, started.stderr
    try:
        status = deeptag("triton", "status", "--http-port", ports[0], env=env)
        assert status.returncode == 0
        assert "ready" in status.stdout
        again = deeptag("triton", "start", "--detach", "--http-port", ports[0], env=env)
        assert again.returncode == 1
        assert f"port {ports[0]}" in again.stderr
    finally:
        stopped = deeptag("triton", "stop", "--http-port", ports[0], env=env)
    assert stopped.returncode == 0, stopped.stderr
    after = deeptag("triton", "status", "--http-port", ports[0], env=env)
    assert after.returncode == 1
    assert "no Triton is ready" in after.stderr


def test_search_by_meaning_starts_a_triton_of_its_own_for_the_text_model(
    triton: LocalTriton, samples: dict[str, Path], tmp_path: Path
) -> None:
    indexed = {"DEEPTAG_TRITON_URL": triton.http_url, "DEEPTAG_DATA_DIR": str(tmp_path)}
    assert deeptag("index", *(str(p) for p in samples.values()), env=indexed).returncode == 0
    env = {**os.environ, "DEEPTAG_DATA_DIR": str(tmp_path)}
    env.pop("DEEPTAG_TRITON_URL", None)
    # No Triton configured nor running on its port: the command starts one, loads the text
    # model alone (the one a query needs) and stops it.
    env["DEEPTAG_TRITON_HTTP_PORT"] = str(free_port())
    result = deeptag("search", "kitten", "--json", env=env)
    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout)
    assert page["mode"] == "hybrid"
    assert "notice" not in page, page.get("notice")
    assert Path(page["hits"][0]["uri"]).name == samples["chelsea"].name
