"""The reference pages of the documentation site, generated from the code they describe.

``python -m orchestrator.reference`` rewrites them under ``docs/reference/``; with ``--check``
it only says which are stale, so a test (and ``make test``) fails when the code moved on and
the pages did not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

#: Each generated page, relative to the docs folder, and what writes it.
PAGES: Mapping[str, str] = {
    "reference/settings.md": "orchestrator.reference.settings_page",
    "reference/cli.md": "orchestrator.reference.cli_page",
    "reference/http-api.md": "orchestrator.reference.http_page",
}


def _renderer(module: str) -> Callable[[], str]:
    # Imported on use: the HTTP page needs the whole server, the others do not.
    from importlib import import_module

    render: Callable[[], str] = import_module(module).render
    return render


def render_pages() -> dict[str, str]:
    """Every generated page's text, by its path under the docs folder."""
    return {page: _renderer(module)() for page, module in PAGES.items()}


def stale_pages(docs: Path, pages: Mapping[str, str] | None = None) -> list[str]:
    """The pages under ``docs`` that are missing or differ from what the code gives now."""
    pages = render_pages() if pages is None else pages
    return [
        page
        for page, text in pages.items()
        if not (docs / page).is_file() or (docs / page).read_text(encoding="utf-8") != text
    ]
