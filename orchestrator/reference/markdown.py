"""Small, pure helpers that write Markdown for the generated reference pages.

Text from docstrings, help strings and descriptions is prose with `code` spans; everything
outside the spans is escaped so that a ``<key>`` or a ``|`` reads as written instead of
becoming an HTML tag or a table cell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: Characters Markdown would read as markup, with what stands for them literally.
_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "|": "&#124;",
    "*": "&#42;",
    "[": "&#91;",
    "]": "&#93;",
    "\\": "&#92;",
}
_ESCAPE = re.compile("|".join(re.escape(char) for char in _ESCAPES))
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def escape(text: str) -> str:
    """``text`` with every Markdown/HTML special character written as an entity."""
    return _ESCAPE.sub(lambda match: _ESCAPES[match.group(0)], text)


def prose(text: str) -> str:
    """``text`` as Markdown: `code` spans kept, the rest escaped, lines joined."""
    parts: list[str] = []
    position = 0
    for match in _CODE_SPAN.finditer(text):
        parts.append(escape(text[position : match.start()]))
        parts.append(code(match.group(2)))
        position = match.end()
    parts.append(escape(text[position:]))
    return " ".join("".join(parts).split())


def code(text: str) -> str:
    """``text`` as one inline code span, however many backticks it holds."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    # Python-Markdown's tables do not split a row at a pipe inside a code span.
    return f"{fence}{pad}{text}{pad}{fence}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table; cells are Markdown already (see :func:`prose`)."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines.extend("| " + " | ".join(cell or " " for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def generated_note(source: str) -> str:
    """The line under a generated page's title: where it comes from, how to refresh it."""
    return (
        f"*Generated from {source} by `python -m orchestrator.reference` "
        "(`make docs-reference`); do not edit it by hand.*"
    )
