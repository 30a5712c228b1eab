"""``docs/reference/http-api.md``: the OpenAPI document ``deeptag serve`` publishes, as prose.

The document is the one ``/openapi.json`` serves (and the API fuzz test checks the server
against), built with an API key configured so the page shows which routes need it. Per
operation: method, path, what it does, parameters, request body fields, and responses; then
the response schemas they name.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import SecretStr

from orchestrator.reference.markdown import code, generated_note, prose, table

Schema = Mapping[str, Any]
#: How deep request-body fields are spelled out (``parameters.output.network.url``).
MAX_DEPTH = 4
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_REF = "#/components/schemas/"
#: The body of every error response.
ERROR_SCHEMA = "ErrorResponse"


def openapi_document() -> dict[str, Any]:
    """``/openapi.json`` of a server with an API key set, built without starting anything."""
    from orchestrator.server.app import create_app
    from orchestrator.settings import Settings

    # model_construct: the environment of whoever builds the page must not change it.
    settings = Settings.model_construct(api_key=SecretStr("documented"))
    return create_app(settings).openapi()


def schema_anchor(name: str) -> str:
    """The anchor of schema ``name``'s heading (set explicitly with attr_list)."""
    return f"schema-{name.lower()}"


def operation_anchor(method: str, path: str) -> str:
    """The anchor the toc extension gives the heading ``METHOD /path``."""
    slug = "".join(ch for ch in f"{method} {path}".lower() if ch.isalnum() or ch in " -_")
    return "-".join(slug.split())


def type_of(schema: Schema, components: Mapping[str, Schema]) -> str:
    """A schema's type as Markdown: ``string``, ``array of``…, a link to a named schema."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF):
        name = ref.removeprefix(_REF)
        return f"[{name}](#{schema_anchor(name)})"
    title = schema.get("title")
    if schema.get("type") == "object" and isinstance(title, str) and title in components:
        # An inline copy of a component (request bodies are inlined): link to the original.
        return f"[{title}](#{schema_anchor(title)})"
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return " or ".join(type_of(member, components) for member in schema[combinator])
    if "enum" in schema:
        return "one of " + ", ".join(code(_json(value)) for value in schema["enum"])
    if "const" in schema:
        return code(_json(schema["const"]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(type_of({**schema, "type": one}, components) for one in kind)
    if kind == "array":
        return "array of " + type_of(schema.get("items", {}), components)
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra and "properties" not in schema:
            return "object of " + type_of(extra, components)
        return str(title) if title and "properties" in schema else "object"
    if kind is None:
        return "any"
    fmt = schema.get("format") or schema.get("contentEncoding")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _json(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text.endswith((".", "!", "?", ")")) else text + "."


def _describe(schema: Schema) -> str:
    """A field's description, then its range and default (objects' defaults are their fields')."""
    parts = [_sentence(str(schema.get("description") or ""))]
    bounds = [
        wording.format(_json(schema[key]))
        for key, wording in (
            ("minimum", "at least {}"),
            ("exclusiveMinimum", "over {}"),
            ("maximum", "at most {}"),
            ("exclusiveMaximum", "under {}"),
            ("minLength", "length at least {}"),
            ("maxLength", "length at most {}"),
            ("minItems", "items at least {}"),
            ("maxItems", "items at most {}"),
        )
        if key in schema
    ]
    if bounds:
        parts.append(f"Range: {', '.join(bounds)}.")
    default = schema.get("default")
    if default is not None and not isinstance(default, dict | list):
        parts.append(f"Default: {code(_json(default))}.")
    return " ".join(part for part in parts if part)


def _inline_object(schema: Schema) -> Schema | None:
    """The object with properties a field holds directly, if any (not a named one)."""
    members = schema.get("anyOf") or schema.get("oneOf") or [schema]
    objects = [m for m in members if m.get("type") == "object" and "properties" in m]
    return objects[0] if len(objects) == 1 and "$ref" not in schema else None


def fields(
    schema: Schema, components: Mapping[str, Schema], prefix: str = "", depth: int = 0
) -> Iterator[tuple[str, str, str, str]]:
    """``(name, type, required, description)`` of an object's fields, nested ones dotted."""
    required = set(schema.get("required", ()))
    for name, field in schema.get("properties", {}).items():
        dotted = f"{prefix}{name}"
        yield (
            dotted,
            type_of(field, components),
            "yes" if name in required else "",
            prose(_describe(field)),
        )
        if depth + 1 >= MAX_DEPTH:
            continue
        inner = _inline_object(field)
        if inner is not None and inner.get("title") not in components:
            yield from fields(inner, components, f"{dotted}.", depth + 1)
        items = field.get("items")
        if field.get("type") == "array" and isinstance(items, dict):
            inner = _inline_object(items)
            if inner is not None and inner.get("title") not in components:
                yield from fields(inner, components, f"{dotted}[].", depth + 1)


def _fields_table(schema: Schema, components: Mapping[str, Schema]) -> str:
    rows = [(code(name), kind, req, text) for name, kind, req, text in fields(schema, components)]
    return table(("Field", "Type", "Required", "Meaning"), rows) if rows else ""


def _parameters(operation: Schema, components: Mapping[str, Schema]) -> list[str]:
    rows = [
        (
            code(param["name"]),
            param.get("in", ""),
            type_of(param.get("schema", {}), components),
            "yes" if param.get("required") else "",
            prose(_describe({**param.get("schema", {}), **param})),
        )
        for param in operation.get("parameters", ())
    ]
    if not rows:
        return []
    return ["**Parameters**", "", table(("Name", "In", "Type", "Required", "Meaning"), rows), ""]


def _body(operation: Schema, components: Mapping[str, Schema]) -> list[str]:
    body = operation.get("requestBody")
    if not body:
        return []
    lines: list[str] = []
    for media, content in body.get("content", {}).items():
        schema = content.get("schema", {})
        name = schema.get("title") or type_of(schema, components)
        lines += [f"**Request body** ({code(media)}, {code(str(name))})", ""]
        if schema.get("description"):
            lines += [prose(str(schema["description"])), ""]
        rendered = _fields_table(schema, components)
        lines += [rendered, ""] if rendered else []
    return lines


def _is_error(status: str, response: Schema) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    named = schema.get("$ref", "").removeprefix(_REF) or schema.get("title")
    return status[:1] in "45" and named == ERROR_SCHEMA


def common_errors(document: Schema) -> dict[str, Schema]:
    """Per error status, the response most operations give (the page lists these once)."""
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    responses: dict[tuple[str, str], Schema] = {}
    for _, _, operation in operations(document):
        for status, response in operation.get("responses", {}).items():
            if _is_error(status, response):
                description = str(response.get("description", ""))
                seen[status][description] += 1
                responses[status, description] = response
    return {
        status: responses[status, counts.most_common(1)[0][0]]
        for status, counts in sorted(seen.items())
    }


def _meaning(response: Schema) -> str:
    meaning = prose(str(response.get("description", "")))
    headers = response.get("headers", {})
    if headers:
        meaning += " Headers: " + ", ".join(code(name) for name in headers) + "."
    return meaning


def _inline_bodies(response: Schema, components: Mapping[str, Schema]) -> Iterator[Schema]:
    for content in response.get("content", {}).values():
        schema = content.get("schema", {})
        # /predict answers JSON of one shape or a rendered template: anyOf [object, any].
        for member in [schema, *schema.get("anyOf", ())]:
            inner = _inline_object(member)
            if inner is not None and inner.get("title") not in components:
                yield inner
                break


def _responses(
    operation: Schema, components: Mapping[str, Schema], errors: Mapping[str, Schema]
) -> list[str]:
    rows: list[tuple[str, str, str]] = []
    collapsed: list[str] = []
    bodies: list[tuple[str, Schema]] = []
    for status, response in sorted(operation.get("responses", {}).items()):
        common = errors.get(status)
        if common is not None and response.get("description") == common.get("description"):
            collapsed.append(status)
            continue
        media = [
            f"{code(kind)}: {type_of(content['schema'], components)}"
            if content.get("schema")
            else code(kind)
            for kind, content in response.get("content", {}).items()
        ]
        rows.append((code(status), _meaning(response), "<br>".join(media)))
        bodies += [(status, body) for body in _inline_bodies(response, components)]
    lines = ["**Responses**", "", table(("Status", "Meaning", "Body"), rows), ""]
    if collapsed:
        statuses = ", ".join(f"[{code(s)}](#errors)" for s in collapsed)
        lines += [
            f"Errors: {statuses}, with an [{ERROR_SCHEMA}]({_schema_link(ERROR_SCHEMA)}).",
            "",
        ]
    for status, body in bodies:
        lines += [f"**{code(status)} body** ({code(str(body.get('title', 'object')))})", ""]
        lines += [_fields_table(body, components), ""]
    return lines


def _schema_link(name: str) -> str:
    return f"#{schema_anchor(name)}"


def operations(document: Schema) -> Iterator[tuple[str, str, Schema]]:
    """``(METHOD, path, operation)`` in the document's order."""
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def summary(operation: Schema) -> str:
    """The first sentence of what an operation does (its docstring), else its name."""
    description = " ".join(str(operation.get("description") or "").split())
    if description:
        return description.split(". ")[0].rstrip(".") + "."
    return str(operation.get("summary", ""))


def _operation(
    method: str,
    path: str,
    operation: Schema,
    components: Mapping[str, Schema],
    errors: Mapping[str, Schema],
) -> list[str]:
    lines = [f"### {method} {path}", ""]
    description = str(operation.get("description") or operation.get("summary") or "")
    lines += [prose(paragraph) + "\n" for paragraph in description.split("\n\n")]
    if operation.get("security"):
        lines += [
            "Needs the API key when `DEEPTAG_API_KEY` is set: `Authorization: Bearer <key>`.",
            "",
        ]
    lines += _parameters(operation, components)
    lines += _body(operation, components)
    lines += _responses(operation, components, errors)
    return lines


def render(document: Schema | None = None) -> str:
    """The whole page for ``document`` (the server's own by default)."""
    if document is None:
        document = openapi_document()
    components: Mapping[str, Schema] = document.get("components", {}).get("schemas", {})
    info = document.get("info", {})
    lines = [
        "# HTTP API",
        "",
        generated_note(
            "the OpenAPI document `deeptag serve` publishes at `/openapi.json` (browse it at "
            "`/docs` on a running server)"
        ),
        "",
        prose(str(info.get("description", ""))),
        "",
        "How the DeepDetect routes differ from DeepDetect's own: "
        "[DeepDetect compatibility](deepdetect.md).",
        "",
    ]
    schemes = document.get("components", {}).get("securitySchemes", {})
    for scheme in schemes.values():
        lines += [f"**Authentication.** {prose(str(scheme.get('description', '')))}", ""]
    rows = [
        (
            f"[{code(f'{method} {path}')}](#{operation_anchor(method, path)})",
            prose(summary(operation)),
        )
        for method, path, operation in operations(document)
    ]
    lines += ["## Routes", "", table(("Route", "What it does"), rows), ""]
    errors = common_errors(document)
    lines += [
        "## Errors",
        "",
        f"Every error has the same body, an [{ERROR_SCHEMA}]({_schema_link(ERROR_SCHEMA)}) "
        "(DeepDetect's shape). What each status means, wherever a route lists it:",
        "",
        table(("Status", "Meaning"), [(code(s), _meaning(r)) for s, r in errors.items()]),
        "",
    ]
    lines += ["## Operations", ""]
    for method, path, operation in operations(document):
        lines += _operation(method, path, operation, components, errors)
    lines += ["## Schemas", "", "The response bodies the operations above name.", ""]
    for name, schema in sorted(components.items()):
        lines += [f"### {name} {{ #{schema_anchor(name)} }}", ""]
        if schema.get("description"):
            lines += [prose(str(schema["description"])), ""]
        rendered = _fields_table(schema, components)
        lines += [rendered, ""] if rendered else [f"Type: {type_of(schema, components)}.", ""]
    return "\n".join(lines).rstrip() + "\n"
