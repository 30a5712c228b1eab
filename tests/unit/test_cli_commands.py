"""``deeptag`` imports only the command it runs: a search by words or by an indexed image
loads no tagging pipeline, no Triton client and no server."""

from __future__ import annotations

import subprocess
import sys

from orchestrator.cli.app import COMMANDS, GROUPS, build, command_of

HEAVY = ("orchestrator.pipeline", "orchestrator.runtime", "tritonclient", "fastapi")
PROBE = """
import sys
from orchestrator.cli.app import main
sys.argv = ["deeptag", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("loaded:", *sorted(m for m in sys.modules if m.startswith({heavy})))
"""


def loaded_after(*args: str) -> set[str]:
    probe = PROBE.format(heavy=repr(HEAVY))
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60
    )
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("loaded:")]
    return set(line.split()[1:])


def test_a_command_is_found_by_its_name_and_anything_else_gets_the_whole_app() -> None:
    assert command_of(["search", "kitten"]) == "search"
    assert command_of(["triton", "start"]) == "triton"
    assert command_of(["--help"]) is None
    assert command_of(["serach"]) is None
    assert command_of([]) is None


def test_the_whole_app_has_every_command() -> None:
    names = {command.name for command in build().registered_commands}
    groups = {group.name for group in build().registered_groups}
    assert names == set(COMMANDS)
    assert groups == set(GROUPS)


def test_search_imports_no_pipeline_until_it_needs_a_model() -> None:
    assert loaded_after("search", "--help") == set()


def test_the_whole_app_does_import_them() -> None:
    # The probe sees imports: without this, a broken probe would pass the test above.
    assert "orchestrator.pipeline" in loaded_after("--help")
