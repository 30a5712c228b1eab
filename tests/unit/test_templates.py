import json

import pytest

from orchestrator.errors import TemplateError
from orchestrator.server.routes.predict import template_context
from orchestrator.sinks.http import media_type, normalise_ndjson
from orchestrator.templates import compile_template, render

TRICKY = 'http://x/a.jpg?q="quoted"&b=\\back\\slash&é\n'
CLASSES = '{{#classes}}"{{cat}}"{{^last}},{{/last}}{{/classes}}'


def test_json_escaping_keeps_any_uri_valid_json() -> None:
    template = compile_template('{"uri": "{{uri}}", "raw": "{{{uri}}}", "amp": "{{& uri}}"}')
    out = json.loads(render(template, {"uri": TRICKY}))
    assert out == {"uri": TRICKY, "raw": TRICKY, "amp": TRICKY}


def test_html_and_none_escaping() -> None:
    assert render(compile_template("{{v}}", "html"), {"v": 'a&"b'}) == "a&amp;&quot;b"
    assert render(compile_template("{{v}}", "none"), {"v": 'a&"b'}) == 'a&"b'


def test_syntax_errors_name_the_problem() -> None:
    with pytest.raises(TemplateError, match='"classes" was never closed'):
        compile_template("{{#classes}}{{cat}}")


def test_last_works_at_both_levels() -> None:
    response = {
        "status": {"code": 200, "msg": "OK"},
        "body": {
            "predictions": [
                {
                    "uri": "a",
                    "classes": [{"cat": "x", "prob": 0.5}, {"cat": "y", "prob": 0.1, "last": True}],
                },
                {"uri": "bad", "classes": [], "error": {"msg": "bad: no such file"}},
                {
                    "uri": "b",
                    "classes": [
                        {"cat": "z", "prob": 0.9},
                        {"cat": "w", "prob": 0.05, "last": True},
                    ],
                    "last": True,
                },
            ]
        },
    }
    template = compile_template(
        "[{{#body}}{{#predictions}}[" + CLASSES + "]{{^last}},{{/last}}{{/predictions}}{{/body}}]"
    )
    assert json.loads(render(template, template_context(response))) == [["x", "y"], ["z", "w"]]
    errors = render(
        compile_template("{{#body}}{{#errors}}{{uri}}{{/errors}}{{/body}}"),
        template_context(response),
    )
    assert errors == "bad"


def test_bulk_bodies_become_ndjson_with_a_final_newline() -> None:
    rendered = ' { "index": {} }\n {"doc": {"a": 1}}\n  \n { "index": {} }\n {"doc": {"a": 2}}\n  }'
    assert (
        normalise_ndjson(rendered)
        == '{ "index": {} }\n{"doc": {"a": 1}}\n{ "index": {} }\n{"doc": {"a": 2}}\n'
    )
    with pytest.raises(TemplateError, match="line 2"):
        normalise_ndjson('{"index": {}}\n{"doc": oops}\n')


@pytest.mark.parametrize(
    ("content_type", "url", "expected"),
    [
        ("Content-Type: application/json", "http://es/i/_doc", "application/json"),
        ("application/x-ndjson", "http://es/i/_bulk", "application/x-ndjson"),
        (None, "http://es/i/_bulk", "application/x-ndjson"),
        (None, "http://es/i/_doc", "application/json"),
    ],
)
def test_content_type_forms(content_type: str | None, url: str, expected: str) -> None:
    assert media_type(content_type, url) == expected
