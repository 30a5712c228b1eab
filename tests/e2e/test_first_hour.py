"""What a new user meets in the first hour, each defect found by trying deeptag as one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.triton.launcher import LocalTriton
from tests.environment import clean_environment
from tests.lingering_support import STARTED, Lingering

pytestmark = pytest.mark.e2e


def test_a_page_past_the_result_window_is_refused_before_triton_starts(
    lingering: Lingering, samples: dict[str, Path], triton: LocalTriton
) -> None:
    lingering.index_through(triton, samples["chelsea"])
    refused = lingering.run("search", "kitten", "--from", "9500", "--size", "1000")
    assert refused.returncode != 0
    assert "from + size must be at most 10000" in refused.stdout + refused.stderr
    # Refused at once: no Triton was started for a search that could not run.
    assert STARTED not in refused.stderr
    assert not lingering.paths.state.exists()


@pytest.mark.parametrize("command", [("index",), ("triton", "start"), ()])
def test_on_off_options_read_as_flags_in_help(command: tuple[str, ...]) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "orchestrator", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean_environment(), "COLUMNS": "200"},
        check=True,
    ).stdout
    assert "--help" in shown
    # `--reindex <bool>` reads as if it took a value; a flag takes none.
    assert "<bool>" not in shown


def test_the_time_reported_is_the_time_waited_with_triton_start_up_apart(
    lingering: Lingering, samples: dict[str, Path]
) -> None:
    first = lingering.run("index", str(samples["coffee"]))
    assert first.returncode == 0, first.stderr
    said = re.search(
        r"in ([\d.]+) s \([\d.]+ images/s\), ([\d.]+) s of it starting Triton", first.stderr
    )
    assert said, first.stderr
    waited, startup = float(said.group(1)), float(said.group(2))
    # Before, the summary gave the indexing alone (0.4 s) after a 6.9 s wait.
    assert startup > 0.5
    assert waited > startup

    # The Triton it left is running: the next command waits for nothing and says nothing.
    searched = lingering.run("search", "espresso")
    assert searched.returncode == 0, searched.stderr
    assert re.search(r"1 hit in [\d.]+ m?s\b", searched.stdout), searched.stdout
    assert "starting Triton" not in searched.stdout

    assert lingering.run("triton", "stop").returncode == 0
    again = lingering.run("search", "espresso")
    assert re.search(r"1 hit in [\d.]+ s \([\d.]+ s of it starting Triton\)", again.stdout), (
        again.stdout
    )
