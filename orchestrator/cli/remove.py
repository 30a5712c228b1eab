"""``deeptag remove ID|PATH...``: take images out of the index on purpose (files untouched)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import Sink, err_console, run_async, user_errors
from orchestrator.errors import BadRequest, quote_input
from orchestrator.search.base import Location, SearchBackend, is_document_id
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings, load_settings


@dataclass
class Removal:
    documents: int = 0  # removed whole
    locations: int = 0  # paths taken off documents that live on elsewhere
    unmatched: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PathTarget:
    """A file's path, or a folder's: which recorded locations it names."""

    prefix: str  # the folder to look under, ending in a separator
    exact: str | None  # the file's path; None for a whole folder

    @classmethod
    def of(cls, target: str) -> PathTarget:
        path = Path(target).expanduser().absolute()
        if path.is_dir() or target.endswith(os.sep):
            return cls(str(path).rstrip(os.sep) + os.sep, None)
        return cls(str(path.parent).rstrip(os.sep) + os.sep, str(path))

    def names(self, location: Location) -> bool:
        if self.exact is None:
            return location.uri.startswith(self.prefix)
        return location.uri == self.exact


async def _remove_path(backend: SearchBackend, target: PathTarget, removal: Removal) -> bool:
    """Take ``target`` off the documents located there (the files need not exist any more:
    documents are found by the locations they recorded); False when none was."""
    matched = False
    async for doc_id, locations in backend.located_under(target.prefix):
        kept: list[Location] = [loc for loc in locations if not target.names(loc)]
        if len(kept) == len(locations):
            continue
        matched = True
        if kept:
            await backend.set_locations(doc_id, kept)
            removal.locations += len(locations) - len(kept)
        elif await backend.delete([doc_id]):
            removal.documents += 1
    return matched


async def _remove(
    settings: Settings, targets: list[tuple[str, str | PathTarget]], kind: Sink | None
) -> Removal:
    """Each ``(as typed, document id or path target)`` taken out of the index."""
    removal = Removal()
    backend = await open_backend(settings, kind.kind if kind else None, writer=True)
    try:
        for typed, target in targets:
            if isinstance(target, PathTarget):
                found = await _remove_path(backend, target, removal)
            else:
                found = bool(await backend.delete([target]))
                removal.documents += found
            if not found:
                removal.unmatched.append(typed)
    finally:
        await backend.close()
    return removal


@user_errors
def remove(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="Document ids (the 64-hex SHA-256 `deeptag search --json` shows), or paths "
            "of files or folders: their locations leave the documents, and a document with "
            "no location left is removed.",
            show_default=False,
        ),
    ],
    sink: Annotated[
        Sink | None,
        typer.Option(help="Default: es when DEEPTAG_ES_URL is set, else embedded."),
    ] = None,
) -> None:
    """Remove images from the search index; the files themselves are never touched."""
    parsed: list[tuple[str, str | PathTarget]] = []
    for target in targets:
        if not target.strip():
            raise BadRequest("an empty argument names no document or path")
        parsed.append((target, target if is_document_id(target) else PathTarget.of(target)))
    removal = run_async(_remove(load_settings(), parsed, sink))
    err_console.print(
        f"[bold]removed:[/] {removal.documents} document(s), {removal.locations} location(s) "
        "of documents that live on elsewhere",
        highlight=False,
    )
    if removal.unmatched:
        names = ", ".join(quote_input(t, 120) for t in removal.unmatched[:5])
        more = len(removal.unmatched) - 5
        err_console.print(
            f"[yellow]not in the index:[/] {names}" + (f" and {more} more" if more > 0 else ""),
            highlight=False,
        )
        raise typer.Exit(1)
