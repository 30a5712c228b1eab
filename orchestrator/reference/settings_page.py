"""``docs/reference/settings.md``: every ``DEEPTAG_*`` variable, from :class:`Settings` itself.

Each field's ``description`` is the one text about it; the page adds its variable name, type,
default and constraints, grouped under the section comments of ``orchestrator/settings.py``.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from orchestrator.reference.markdown import code, generated_note, prose
from orchestrator.settings import Settings

PREFIX = "DEEPTAG_"
#: What a default computed when the settings are read means, said for every machine.
FACTORY_DEFAULTS: Mapping[str, str] = {
    "data_dir": "the user data directory of `deeptag` (platformdirs): "
    "`~/.local/share/deeptag` on Linux",
    "model_repository": "`./model_repository` when it exists, else the one of the checkout "
    "deeptag runs from",
}
_SECTION = re.compile(r"^    # (?P<title>[^:.]+)")
_FIELD = re.compile(r"^    (?P<name>[a-z_][a-z0-9_]*)\s*:")
_BYTES_UNITS = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def variable(name: str) -> str:
    """The environment variable of setting ``name``."""
    return PREFIX + name.upper()


def anchor(name: str) -> str:
    """The anchor of setting ``name``'s heading on the page (what the toc extension makes)."""
    return variable(name).lower()


def sections(settings: type[Settings] = Settings) -> list[tuple[str, list[str]]]:
    """The fields in source order, grouped under the comment that opens each section.

    A section starts at a comment line after a blank line (a comment right under a field
    explains that field); its title is the comment up to the first colon or full stop.
    """
    groups: list[tuple[str, list[str]]] = [("General", [])]
    previous_blank = False
    for line in inspect.getsource(settings).splitlines():
        section = _SECTION.match(line)
        field = _FIELD.match(line)
        if section and previous_blank:
            groups.append((section.group("title").strip(), []))
        elif field and field.group("name") in settings.model_fields:
            groups[-1][1].append(field.group("name"))
        previous_blank = not line.strip()
    listed = {name for _, names in groups for name in names}
    # Whatever the layout, every field is on the page.
    rest = [name for name in settings.model_fields if name not in listed]
    if rest:
        groups.append(("Other", rest))
    return [(title, names) for title, names in groups if names]


def _members(annotation: Any) -> tuple[list[Any], bool]:
    """The types a union allows, and whether None (unset) is one of them."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return members, len(members) < len(get_args(annotation))
    return [annotation], False


def _one_type(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(code(str(choice)) for choice in get_args(annotation))
    if origin is list:
        (item,) = get_args(annotation)
        return "comma-separated list of " + ("paths" if item is Path else "names")
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(code(str(member.value)) for member in annotation)
    if annotation is SecretStr:
        return "secret string"
    if annotation is Path:
        return "path"
    return code(annotation.__name__ if isinstance(annotation, type) else str(annotation))


def type_text(field: FieldInfo) -> str:
    """What a value of the variable looks like: ``bool``, ``one of http, grpc``, …"""
    members, optional = _members(field.annotation)
    text = " or ".join(_one_type(member) for member in members)
    bounds = _bounds(field)
    if bounds:
        text += f" ({bounds})"
    if optional:
        text += ", or unset"
    return text


def _bounds(field: FieldInfo) -> str:
    low = high = ""
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge):
            low = f"{_number(rule.ge)} ≤ "
        elif isinstance(rule, annotated_types.Gt):
            low = f"{_number(rule.gt)} < "
        elif isinstance(rule, annotated_types.Le):
            high = f" ≤ {_number(rule.le)}"
        elif isinstance(rule, annotated_types.Lt):
            high = f" < {_number(rule.lt)}"
    return f"{low}x{high}" if low or high else ""


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def default_text(name: str, field: FieldInfo) -> str:
    """The default as one would write it in the variable, or what it means when computed.

    Raises:
        ValueError: A computed default nobody has described in :data:`FACTORY_DEFAULTS`
            (its value would depend on the machine that built the page).
    """
    if name in FACTORY_DEFAULTS:
        return FACTORY_DEFAULTS[name]
    if field.default_factory is not None:
        factory: Callable[[], Any] = field.default_factory  # type: ignore[assignment]
        value = factory()
        if value == []:
            return "empty"
        raise ValueError(f"describe the default of {name} in FACTORY_DEFAULTS")
    value = field.default
    if value is None or isinstance(value, SecretStr):
        return "unset"
    if isinstance(value, bool):
        return code(str(value).lower())
    if isinstance(value, enum.Enum):
        return code(str(value.value))
    if isinstance(value, int | float):
        text = code(_number(value))
        units = [(unit, size) for unit, size in _BYTES_UNITS if value and value % size == 0]
        if name.endswith("_bytes") and units:
            unit, size = units[0]
            text += f" ({value // size} {unit})"
        elif name.endswith("_s") and value >= 3600 and value % 3600 == 0:
            text += f" ({_number(value / 3600)} h)"
        return text
    return code(str(value))


def _linked(description: str, names: frozenset[str]) -> str:
    """Settings named by their field name (``es_url``) become links to their variable."""
    # Not inside a word, a path (./model_repository) or a variable ($DEEPTAG_DATA_DIR).
    alternatives = "|".join(sorted(names, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w`$/.])({alternatives})(?![\w`/])")
    pieces: list[str] = []
    for index, piece in enumerate(re.split(r"(`[^`]*`)", description)):
        if index % 2:
            pieces.append(piece)
        else:
            pieces.append(pattern.sub(lambda m: f"`{variable(m.group(1))}`", piece))
    return prose("".join(pieces))


def render(settings: type[Settings] = Settings) -> str:
    """The whole page."""
    lines = [
        "# Settings",
        "",
        generated_note("`orchestrator/settings.py`"),
        "",
        "Every setting is an environment variable: `DEEPTAG_` and the setting's name in "
        "capitals. Command-line options override them for one command (for example "
        "`--triton-url` over `DEEPTAG_TRITON_URL`). Booleans take `true` or `false` "
        "(also `1`/`0`, `yes`/`no`, `on`/`off`); lists are comma-separated. A value of the "
        "wrong type stops the command with a message naming the setting.",
        "",
    ]
    with_underscore = frozenset(name for name in settings.model_fields if "_" in name)
    for title, names in sections(settings):
        lines += [f"## {title}", ""]
        for name in names:
            field = settings.model_fields[name]
            lines += [
                f"### `{variable(name)}`",
                "",
                f"Type: {type_text(field)}. Default: {default_text(name, field)}.",
                "",
                _linked(field.description or "", with_underscore),
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"
