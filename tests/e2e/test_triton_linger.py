"""The local Triton a command starts stays up for the next command, then stops when idle."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.triton.launcher import LocalTriton
from orchestrator.triton.lingering import stop_current
from orchestrator.triton.processes import process_alive
from tests.conftest import REPO_ROOT
from tests.lingering_support import STARTED, Lingering

pytestmark = pytest.mark.e2e


def _pid(world: Lingering) -> int:
    pid = world.state()["pid"]
    assert isinstance(pid, int)
    return pid


def test_the_next_command_uses_the_triton_the_first_started_and_stop_ends_it(
    lingering: Lingering, samples: dict[str, Path], triton: LocalTriton
) -> None:
    # A photo to search, indexed through the suite's Triton.
    lingering.index_through(triton, samples["chelsea"])
    assert not lingering.paths.state.exists()
    first = lingering.run("search", "kitten")
    assert first.returncode == 0, first.stderr
    assert STARTED in first.stderr
    assert "stops after 2 min idle" in first.stderr
    pid = _pid(lingering)
    assert process_alive(pid), "the Triton stopped with the command that started it"

    # A search by meaning needed the text model only; predict loads the image model into the
    # same Triton, and says nothing about starting one.
    status = lingering.run("triton", "status")
    assert status.returncode == 0, status.stderr
    assert "models: minilm_l6;" in status.stdout
    second = lingering.run("predict", str(samples["chelsea"]), "--best", "2")
    assert second.returncode == 0, second.stderr
    assert "cat" in second.stdout
    assert STARTED not in second.stderr
    assert _pid(lingering) == pid

    status = lingering.run("triton", "status")
    assert status.returncode == 0, status.stderr
    ports = lingering.state()["ports"]
    assert isinstance(ports, dict)
    assert f"lingering Triton on 127.0.0.1:{ports['http']} (pid {pid}" in status.stdout
    assert "models: efficientnet_lite0, minilm_l6;" in status.stdout
    assert "started by `deeptag search`" in status.stdout

    stopped = lingering.run("triton", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped the lingering Triton (pid {pid})" in stopped.stdout
    assert not process_alive(pid)
    assert not lingering.paths.state.exists()
    leftovers = subprocess.run(
        ["pgrep", "-f", str(lingering.data_dir)], capture_output=True, text=True
    )
    assert leftovers.stdout.strip() == "", "the watcher or a python stub outlived the stop"


def test_two_commands_started_together_start_one_triton(
    lingering: Lingering, samples: dict[str, Path]
) -> None:
    commands = [
        subprocess.Popen(
            lingering.command("predict", str(samples[name]), "--best", "1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=lingering.env,
        )
        for name in ("chelsea", "coffee")
    ]
    outputs = [command.communicate(timeout=180) for command in commands]
    assert [command.returncode for command in commands] == [0, 0], outputs
    assert sum(STARTED in stderr for _, stderr in outputs) == 1, outputs
    tritons = subprocess.run(
        ["pgrep", "-f", f"tritonserver.*{lingering.data_dir}"], capture_output=True, text=True
    )
    assert len(tritons.stdout.split()) == 1


def test_an_idle_triton_stops_itself_and_a_stale_state_file_is_replaced(
    exported_model: Path, tmp_path: Path, samples: dict[str, Path]
) -> None:
    world = Lingering(tmp_path / "data", idle_s=1)
    world.paths.state.parent.mkdir(parents=True)
    # What a Triton killed with the machine leaves: a state file naming a dead process.
    world.paths.state.write_text(
        json.dumps(
            {
                "pid": 2**22 + 17,  # above Linux's largest pid: no such process
                "ports": {"http": 1, "grpc": 2, "metrics": 3},
                "repository": str(exported_model),
                "version": "old",
                "runtime_repository": str(tmp_path / "nothing"),
                "log_path": str(tmp_path / "nothing.log"),
                "idle_s": 900.0,
                "started_at": 0.0,
                "started_by": "deeptag index",
            }
        )
    )
    try:
        done = world.run("predict", str(samples["chelsea"]), "--best", "1")
        assert done.returncode == 0, done.stderr
        assert STARTED in done.stderr
        pid = _pid(world)
        runtime = Path(str(world.state()["runtime_repository"]))
        assert runtime.is_dir()
        deadline = time.monotonic() + 60
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not process_alive(pid), "the idle Triton did not stop itself"
        while world.paths.state.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not world.paths.state.exists()
        assert not runtime.exists()
    finally:
        stop_current(world.paths.state.parent)
