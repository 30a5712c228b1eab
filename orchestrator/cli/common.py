"""What every command shares: settings from options, user-facing errors, async entry."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from orchestrator.errors import DeeptagError
from orchestrator.search.base import BackendKind

#: Piped output is read by scripts and grep: rows as wide as their data (a deep path stays on
#: one line) rather than folded at the 80 columns Rich assumes without a terminal.
PIPE_WIDTH = 240
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPE_WIDTH)
err_console = Console(stderr=True)


class Sink(StrEnum):
    """The ``--sink`` choices."""

    es = "es"
    embedded = "embedded"

    @property
    def kind(self) -> BackendKind:
        return "es" if self is Sink.es else "embedded"


P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Report deeptag errors as one clear line and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except DeeptagError as e:
            raise fail(str(e)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", code=130) from None

    return wrapper


def run_async(coro: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(coro)
