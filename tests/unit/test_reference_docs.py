"""The generated reference pages: current, complete, and refreshed by one command."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from pydantic import Field

from orchestrator.cli.app import build
from orchestrator.reference import PAGES, render_pages, settings_page
from orchestrator.reference.__main__ import main
from orchestrator.reference.http_page import METHODS, openapi_document
from orchestrator.reference.markdown import prose
from orchestrator.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return render_pages()


def section(page: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = page.index(f"\n{heading}\n")
    following = re.compile(rf"\n#{{1,{len(level)}}} ")
    end = following.search(page, start + len(heading) + 2)
    return page[start : end.start() if end else len(page)]


def cli_commands() -> dict[str, list[str]]:
    """Every command of the app (by its full name) with its options, walked independently."""
    found: dict[str, list[str]] = {}

    def walk(command: Any, ctx: typer.Context, path: str) -> None:
        found[path] = [
            opt
            for param in command.get_params(ctx)
            if isinstance(param, typer.core.TyperOption)
            for opt in param.opts
            if opt != "--help"
        ]
        if isinstance(command, typer.core.TyperGroup):
            for name in command.list_commands(ctx):
                child = command.get_command(ctx, name)
                walk(child, typer.Context(child, info_name=name, parent=ctx), f"{path} {name}")

    root = typer.main.get_command(build())
    walk(root, typer.Context(root, info_name="deeptag"), "deeptag")
    return found


def test_committed_pages_are_current(pages: dict[str, str]) -> None:
    stale = [
        page for page, text in pages.items() if (DOCS / page).read_text(encoding="utf-8") != text
    ]
    assert stale == [], "stale: run `python -m orchestrator.reference` (make docs-reference)"


def test_settings_page_has_every_variable_with_its_default(pages: dict[str, str]) -> None:
    page = pages["reference/settings.md"]
    for name in Settings.model_fields:
        assert f"### `DEEPTAG_{name.upper()}`" in page
    assert "Default: `8080`." in section(page, "### `DEEPTAG_PORT`")
    assert "one of `http`, `grpc`" in section(page, "### `DEEPTAG_TRITON_PROTOCOL`")
    assert "comma-separated list of paths" in section(page, "### `DEEPTAG_IMAGE_ROOTS`")
    # A secret's default is never printed, and the machine's own paths never leak in.
    assert "Default: unset." in section(page, "### `DEEPTAG_API_KEY`")
    assert str(Path.home()) not in page


def test_settings_are_grouped_under_their_sections(pages: dict[str, str]) -> None:
    page = pages["reference/settings.md"]
    assert "### `DEEPTAG_ES_URL`" in section(page, "## Elasticsearch")
    assert "### `DEEPTAG_TRITON_URL`" in section(page, "## Triton")


def test_a_computed_default_must_be_described() -> None:
    class More(Settings):
        cache_dir: Path = Field(default_factory=Path.cwd, description="A cache.")

    with pytest.raises(ValueError, match="cache_dir"):
        settings_page.render(More)


def test_cli_page_has_every_command_and_option(pages: dict[str, str]) -> None:
    page = pages["reference/cli.md"]
    commands = cli_commands()
    assert {"deeptag index", "deeptag triton start", "deeptag models export"} <= set(commands)
    for path, options in commands.items():
        text = section(page, f"## `{path}`")
        missing = [opt for opt in options if f"`{opt}" not in text]
        assert missing == [], path


def test_cli_page_does_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.reference import cli_page

    monkeypatch.setenv("COLUMNS", "33")
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert cli_page.render() == (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")


def test_http_page_has_every_operation(pages: dict[str, str]) -> None:
    page = pages["reference/http-api.md"]
    document = openapi_document()
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                assert f"\n### {method.upper()} {path}\n" in page
    assert "(deepdetect.md)" in page
    guarded = section(page, "### POST /predict")
    assert "Needs the API key" in guarded
    assert "Needs the API key" not in section(page, "### GET /health")


def test_check_names_the_stale_page_and_writing_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    for page in PAGES:
        (docs / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DOCS / page, docs / page)
    cli = docs / "reference" / "cli.md"
    cli.write_text(cli.read_text(encoding="utf-8") + "\nhand edit\n", encoding="utf-8")

    assert main(["--check", "--docs", str(docs)]) == 1
    err = capsys.readouterr().err
    assert "reference/cli.md" in err
    assert "settings.md" not in err
    assert "hand edit" in cli.read_text(encoding="utf-8")  # --check writes nothing

    assert main(["--docs", str(docs)]) == 0
    assert main(["--check", "--docs", str(docs)]) == 0


def test_text_reads_as_written() -> None:
    # Help and descriptions are prose: a <key> or a pipe must not become HTML or a table cell.
    assert prose("needs 'Bearer <key>' | or `a|b <c>`") == (
        "needs 'Bearer &lt;key&gt;' &#124; or `a|b <c>`"
    )
