"""The ``deeptag`` typer application: every command hangs off this.

A command's module, and what it imports (Triton's client, the tagging pipeline, the server), is
imported only when that command runs: ``deeptag search --like ID`` loads the search backend and
nothing of the pipeline, and answers about half a second sooner. ``deeptag --help`` and the
reference pages build the whole application.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import import_module

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

HELP = "Tag images with a deep network served by Triton; search them in Elasticsearch."
#: Command name -> (module, function), in the order ``deeptag --help`` lists them.
COMMANDS = {
    "predict": ("orchestrator.cli.predict", "predict"),
    "demo": ("orchestrator.cli.demo", "demo"),
    "index": ("orchestrator.cli.index", "index"),
    "search": ("orchestrator.cli.search", "search"),
    "serve": ("orchestrator.cli.serve", "serve"),
    "sync": ("orchestrator.cli.sync", "sync"),
    "remove": ("orchestrator.cli.remove", "remove"),
    "watch": ("orchestrator.cli.watch", "watch"),
    "duplicates": ("orchestrator.cli.duplicates", "duplicates"),
    "train": ("orchestrator.cli.train", "train_command"),
}
#: Command groups: name -> (module, typer app).
GROUPS = {
    "triton": ("orchestrator.cli.triton", "triton_app"),
    "models": ("orchestrator.cli.models", "models_app"),
}


def build(only: str | None = None) -> typer.Typer:
    """The application with every command, or with only the command (or group) ``only``."""
    app = typer.Typer(help=HELP, no_args_is_help=True, pretty_exceptions_enable=False)

    @app.callback()
    def commands() -> None:
        # A callback keeps `deeptag NAME ...` a command of a group even when only NAME is
        # registered (typer would otherwise run a lone command without its name).
        pass

    for name, (module, attribute) in COMMANDS.items():
        if only in (None, name):
            app.command(name=name)(getattr(import_module(module), attribute))
    for name, (module, attribute) in GROUPS.items():
        if only in (None, name):
            app.add_typer(getattr(import_module(module), attribute), name=name)
    return app


def command_of(args: Sequence[str]) -> str | None:
    """The command ``args`` name first, if it is one (pure); None for ``--help`` and typos,
    which the whole application answers."""
    if args and (args[0] in COMMANDS or args[0] in GROUPS):
        return args[0]
    return None


def flags_as_flags(command: TyperCommand | TyperGroup) -> None:
    """``command`` (and its subcommands) with each on/off option shown as the flag it is:
    typer's help writes ``--reindex <bool>``, which reads as if it took a value."""
    # --help too: it is made (once) on first use, not one of the params.
    for param in (*command.params, command.get_help_option(typer.Context(command))):
        if isinstance(param, TyperOption) and param.is_flag and not param.count:
            param.metavar = ""
    if isinstance(command, TyperGroup):
        for child in command.commands.values():
            if isinstance(child, TyperCommand | TyperGroup):
                flags_as_flags(child)


def main() -> None:
    command = typer.main.get_command(build(command_of(sys.argv[1:])))
    if isinstance(command, TyperCommand | TyperGroup):
        flags_as_flags(command)
    command(prog_name="deeptag")
