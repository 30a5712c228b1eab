"""Mustache output templates (chevron), with escaping chosen for what the output is.

DeepDetect escapes template values for HTML, which turns a URL with ``&`` into ``&amp;`` and
lets a ``"`` in a URL break the JSON a template builds. deeptag escapes values for JSON
strings by default, so ``"{{uri}}"`` stays valid JSON whatever the URL holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import chevron
from chevron.tokenizer import ChevronError, tokenize

from orchestrator.errors import TemplateError

EscapeMode = Literal["json", "html", "none"]


@dataclass(frozen=True)
class CompiledTemplate:
    tokens: tuple[tuple[str, str], ...]
    escape: EscapeMode


def compile_template(source: str, escape: EscapeMode = "json") -> CompiledTemplate:
    """Parse a template once; a syntax error is a :class:`TemplateError` naming the problem."""
    try:
        tokens = tuple(tokenize(source))
    except ChevronError as e:
        problem = " ".join(str(e).split())
        raise TemplateError(f"output.template is not valid Mustache: {problem}") from e
    if escape != "html":
        # Values are escaped (or not) before rendering, so chevron must not HTML-escape them.
        tokens = tuple(
            ("no escape", key) if kind == "variable" else (kind, key) for kind, key in tokens
        )
    return CompiledTemplate(tokens=tokens, escape=escape)


def _json_escaped(value: Any) -> Any:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)[1:-1]
    if isinstance(value, Mapping):
        return {k: _json_escaped(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_json_escaped(v) for v in value]
    return value


def render(template: CompiledTemplate, context: Mapping[str, Any]) -> str:
    data = _json_escaped(context) if template.escape == "json" else dict(context)
    try:
        rendered: str = chevron.render(list(template.tokens), data)
    except ChevronError as e:
        raise TemplateError(f"output.template could not be rendered: {e}") from e
    return rendered
