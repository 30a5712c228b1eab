"""What decides whether a lingering local Triton can serve the next command."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from orchestrator.triton.lingering import LingerState, describe_idle, repository_version
from orchestrator.triton.processes import process_alive
from orchestrator.triton.runtime_repository import ShimOptions


def _repository(root: Path) -> Path:
    model = root / "model_repository" / "tagger"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text('name: "tagger"')
    (model / "1" / "model.onnx").write_bytes(b"weights")
    return root / "model_repository"


def test_a_model_exported_again_or_another_layout_is_another_version(tmp_path: Path) -> None:
    repository = _repository(tmp_path)
    shim = ShimOptions(intra_op_threads=1, instances=2)
    before = repository_version(repository, shim)
    assert repository_version(repository, shim) == before

    onnx = repository / "tagger" / "1" / "model.onnx"
    onnx.write_bytes(b"new weights")
    os.utime(onnx, ns=(1, 1))
    exported = repository_version(repository, shim)
    assert exported != before

    assert repository_version(repository, ShimOptions(intra_op_threads=2)) != exported
    (repository / "probe").mkdir()
    (repository / "probe" / "config.pbtxt").write_text('name: "probe"')
    assert repository_version(repository, shim) != exported


def test_a_state_file_that_cannot_be_read_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "triton-lingering.json"
    path.write_text('{"pid": 12')  # what a command killed mid-write would leave
    assert LingerState.load(path) is None
    assert not path.exists()
    assert LingerState.load(path) is None


def test_idle_times_read_as_a_person_says_them() -> None:
    assert describe_idle(900) == "15 min"
    assert describe_idle(90) == "90 s"
    assert describe_idle(0.5) == "0.5 s"


def test_an_exited_process_not_yet_reaped_is_not_running() -> None:
    # A lingering Triton's exit is reaped by init, late: stop must not wait for that.
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not process_alive(child.pid)
    child.wait()
    assert process_alive(os.getpid())
