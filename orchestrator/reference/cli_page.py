"""``docs/reference/cli.md``: every ``deeptag`` command and option, walked from the typer app.

Only what the app declares is read (names, help, defaults, ranges), never a formatted
``--help``, so the page does not depend on the terminal's width or colours.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import typer
import typer.main
from rich.text import Text

from orchestrator.reference.markdown import code, generated_note, prose, table

PROGRAM = "deeptag"
#: ``--help`` is on every command; the page says so once instead.
SKIPPED_OPTIONS = frozenset({"--help"})
#: typer's help records end in ``  [default: 5; 1<=x<=100]``: what the command's --help shows.
_EXTRAS = re.compile(r"\s{2}\[(?P<extras>[^\[\]]*)\]$")


class _ClickCommand(Protocol):
    """What the page reads of a command (typer's click-compatible command objects)."""

    help: str | None
    hidden: bool

    def get_params(self, ctx: typer.Context) -> list[Any]: ...


@dataclass(frozen=True)
class Param:
    """One argument or option as the page shows it."""

    spelling: str  # "--best <int range>", "sources... <list[str]>"
    help: str
    default: str
    notes: tuple[str, ...]  # "required", "1<=x<=100", …


@dataclass(frozen=True)
class Command:
    """One command (a group too) with its full name, help, usage and parameters."""

    path: str
    help: str
    usage: str
    arguments: tuple[Param, ...]
    options: tuple[Param, ...]
    subcommands: tuple[tuple[str, str], ...]  # (name, first line of help)


def plain(markup: str | None) -> str:
    """A docstring or help string as plain text: rich markup and click's markers gone."""
    if not markup:
        return ""
    text = inspect.cleandoc(markup).split("\f")[0]
    lines = [line for line in text.splitlines() if line.strip() != "\b"]
    return Text.from_markup("\n".join(lines)).plain.strip()


def first_line(markup: str | None) -> str:
    """The first paragraph of a help text, joined into one line."""
    return " ".join(plain(markup).split("\n\n")[0].split())


def _param(param: typer.core.TyperArgument | typer.core.TyperOption, ctx: typer.Context) -> Param:
    record = param.get_help_record(ctx)
    spelling, record_help = record if record else (param.name or "", "")
    match = _EXTRAS.search(record_help)
    extras = [part.strip() for part in match.group("extras").split(";")] if match else []
    default = next((e.removeprefix("default: ") for e in extras if e.startswith("default:")), "")
    notes = tuple(e for e in extras if not e.startswith("default:"))
    help_text = plain(param.help)
    if param.multiple and "repeatable" not in help_text.lower():
        notes += ("repeatable",)
    return Param(spelling, help_text, default, notes)


def _note(note: str) -> str:
    """One of typer's extras as a sentence: ``required``, a range such as ``1<=x<=100``."""
    if note in ("required", "repeatable"):
        return f"{note.capitalize()}."
    if "x" in note and ("<" in note or ">" in note):
        return f"Range: `{note}`."
    return f"{note}."


def _usage(path: str, arguments: list[typer.core.TyperArgument], group: bool) -> str:
    pieces = [path, "[OPTIONS]"]
    for argument in arguments:
        name = (argument.name or "").upper() + ("..." if argument.nargs == -1 else "")
        pieces.append(name if argument.required else f"[{name}]")
    if group:
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def commands(app: typer.Typer) -> Iterator[Command]:
    """Every command of ``app``, the app itself first, depth first in declaration order."""
    root = typer.main.get_command(app)
    yield from _walk(root, typer.Context(root, info_name=PROGRAM), PROGRAM)


def _walk(command: _ClickCommand, ctx: typer.Context, path: str) -> Iterator[Command]:
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    arguments = [p for p in params if isinstance(p, typer.core.TyperArgument)]
    options = [
        p
        for p in params
        if isinstance(p, typer.core.TyperOption) and not SKIPPED_OPTIONS & set(p.opts)
    ]
    group = isinstance(command, typer.core.TyperGroup)
    children = (
        [
            (name, child)
            for name in command.list_commands(ctx)
            if (child := command.get_command(ctx, name)) is not None and not child.hidden
        ]
        if isinstance(command, typer.core.TyperGroup)
        else []
    )
    yield Command(
        path=path,
        help=plain(command.help),
        usage=_usage(path, arguments, group),
        arguments=tuple(_param(p, ctx) for p in arguments),
        options=tuple(_param(p, ctx) for p in options),
        subcommands=tuple((name, first_line(child.help)) for name, child in children),
    )
    for name, child in children:
        yield from _walk(child, typer.Context(child, info_name=name, parent=ctx), f"{path} {name}")


def anchor(path: str) -> str:
    """The anchor the toc extension gives the heading of command ``path``."""
    return path.replace(" ", "-")


def _params_table(params: tuple[Param, ...], title: str) -> list[str]:
    if not params:
        return []
    rows = [
        (
            code(param.spelling),
            prose(" ".join(filter(None, [param.help, *map(_note, param.notes)]))),
            code(param.default) if param.default else "",
        )
        for param in params
    ]
    return [f"**{title}**", "", table((title[:-1], "Meaning", "Default"), rows), ""]


def _section(command: Command) -> list[str]:
    lines = [f"## `{command.path}`", ""]
    for paragraph in filter(None, command.help.split("\n\n")):
        lines += [prose(paragraph), ""]
    lines += ["```", command.usage, "```", ""]
    lines += _params_table(command.arguments, "Arguments")
    lines += _params_table(command.options, "Options")
    if command.subcommands:
        rows = [
            (
                f"[{code(f'{command.path} {name}')}](#{anchor(f'{command.path} {name}')})",
                prose(summary),
            )
            for name, summary in command.subcommands
        ]
        lines += ["**Commands**", "", table(("Command", "What it does"), rows), ""]
    return lines


def render(app: typer.Typer | None = None) -> str:
    """The whole page for ``app`` (the ``deeptag`` app by default)."""
    if app is None:
        from orchestrator.cli.app import build

        app = build()
    lines = [
        "# Command line",
        "",
        generated_note("the `deeptag` command's own definitions (`orchestrator/cli/`)"),
        "",
        "Every command also takes `--help`, which says the same as its section here. Options "
        "override the [settings](settings.md) of the same name for that one command.",
        "",
    ]
    for command in commands(app):
        lines += _section(command)
    return "\n".join(lines).rstrip() + "\n"
