"""Expand ``deeptag index`` arguments into a lazy stream of image sources.

Arguments may be files, directories (walked recursively), glob patterns, text files listing
URLs or paths (one per line), ``-`` for such a list on stdin, or URLs. Nothing is read ahead:
a list of a million URLs is streamed, never held in memory.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from orchestrator.errors import BadRequest
from orchestrator.types import ImageSource, SourceKind

#: Top-level files with these suffixes are lists of sources, not images.
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list", ".urls"})
_GLOB_CHARS = frozenset("*?[")
#: A URL's scheme: ``htp://x`` is a mistyped URL, not a relative path to look for.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _path_source(path: Path) -> ImageSource:
    text = str(path.absolute())
    return ImageSource(uri=text, kind=SourceKind.PATH, location=text)


def _line_source(line: str, base: Path) -> ImageSource | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.lower().startswith(("http://", "https://")):
        return ImageSource(uri=text, kind=SourceKind.URL, location=text)
    text = text.removeprefix("file://")
    # Relative paths in a list file are relative to the list, as in playlists.
    return _path_source(base / text if not os.path.isabs(text) else Path(text))


def walk(directory: Path) -> Iterator[Path]:
    """Every regular file under ``directory``, in a stable order, hidden entries skipped."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def read_list(lines: Iterable[str], base: Path) -> Iterator[ImageSource]:
    for line in lines:
        source = _line_source(line, base)
        if source is not None:
            yield source


def expand(arguments: Iterable[str], stdin: TextIO | None = None) -> Iterator[ImageSource]:
    """Sources in argument order; an argument that names nothing raises :class:`BadRequest`."""
    for argument in arguments:
        yield from _expand_one(argument, stdin)


def _expand_one(argument: str, stdin: TextIO | None) -> Iterator[ImageSource]:
    if argument == "-":
        if stdin is None:
            raise BadRequest("'-' reads a list of sources from stdin, but there is no stdin")
        yield from read_list(stdin, Path.cwd())
        return
    if argument.lower().startswith(("http://", "https://")):
        yield ImageSource(uri=argument, kind=SourceKind.URL, location=argument)
        return
    path = Path(argument.removeprefix("file://")).expanduser()
    if path.is_dir():
        yield from (_path_source(p) for p in walk(path))
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        with path.open(encoding="utf-8", errors="replace") as listing:
            yield from read_list(listing, path.parent)
    elif path.exists():
        # Unreadable or not an image: the reader reports it as that image's failure.
        yield _path_source(path)
    elif _GLOB_CHARS & set(argument):
        matches = sorted(glob.iglob(os.path.expanduser(argument), recursive=True))
        if not matches:
            raise BadRequest(f"{argument}: the pattern matches no files")
        for match in map(Path, matches):
            if match.is_dir():
                yield from (_path_source(p) for p in walk(match))
            elif match.is_file():
                yield _path_source(match)
    else:
        raise BadRequest(f"{argument}: {problem(argument) or 'no such file, directory or URL'}")


def problem(argument: str) -> str | None:
    """Why ``argument`` names nothing to read, or None when it names something."""
    if argument == "-" or argument.lower().startswith(("http://", "https://")):
        return None
    scheme = _SCHEME.match(argument)
    if scheme is not None and scheme.group(1).lower() != "file":
        return (
            f"the {scheme.group(1)}:// scheme is not supported: give a path, a file:// path "
            "or an http(s):// URL"
        )
    path = Path(argument.removeprefix("file://")).expanduser()
    if path.exists():
        return None
    if not (_GLOB_CHARS & set(argument)):
        return "no such file, directory or URL"
    if next(glob.iglob(os.path.expanduser(argument), recursive=True), None) is None:
        return "the pattern matches no files"
    return None


def usable(arguments: Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The arguments that name something, and (argument, why) for those that do not: a
    typo in one of several folders should not keep the others from being indexed.

    Raises:
        BadRequest: no argument names anything (before any work, rather than midway).
    """
    good: list[str] = []
    bad: list[tuple[str, str]] = []
    for argument in arguments:
        why = problem(argument)
        if why is None:
            good.append(argument)
        else:
            bad.append((argument, why))
    if not good:
        raise BadRequest("; ".join(f"{argument}: {why}" for argument, why in bad))
    return good, bad


def check(arguments: Iterable[str]) -> None:
    """Fail before any work when an argument names nothing, rather than midway."""
    for argument in arguments:
        why = problem(argument)
        if why is not None:
            raise BadRequest(f"{argument}: {why}")


def count(arguments: Iterable[str]) -> int | None:
    """How many sources :func:`expand` will yield, or None when that needs reading stdin."""
    arguments = list(arguments)
    if "-" in arguments:
        return None
    try:
        return sum(1 for _ in expand(arguments))
    except BadRequest:
        return None
