"""``deeptag duplicates [FOLDER...]``: exact copies and near duplicates, a keeper for each
group, and moving the rest aside (``--move-to``) or back (``--undo``)."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.common import Sink, console, err_console, run_async, user_errors
from orchestrator.dedupe import DEFAULT_THRESHOLD, Found, find_groups, found_json
from orchestrator.dedupe_moves import (
    check_target,
    forget_moved,
    move_back,
    move_out,
    planned,
    read_manifest,
    restore_places,
)
from orchestrator.errors import BadRequest
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings, load_settings
from orchestrator.sync import check_folders, folder_prefix


def _table(found: Found) -> Table:
    table = Table(title=f"{len(found.groups)} group(s) of duplicates", title_justify="left")
    for column in ("group", "kind", "keep", "location", "pixels", "bytes", "format", "taken"):
        table.add_column(column, overflow="fold")
    for number, group in enumerate(found.groups, start=1):
        for member in group.members:
            keep = f"keep: {group.why}" if member is group.keeper else ""
            table.add_row(
                str(number),
                group.kind.value,
                keep,
                escape(member.location),
                f"{member.width}x{member.height}",
                str(member.bytes or ""),
                member.format or "",
                (member.taken_at or "")[:10],
            )
    return table


def _csv(found: Found) -> None:
    out = csv.writer(sys.stdout)
    out.writerow(["group", "kind", "keeper", "location", "width", "height", "bytes", "format"])
    for number, group in enumerate(found.groups, start=1):
        for m in group.members:
            keeper = m is group.keeper
            row = [number, group.kind.value, keeper, m.location, m.width, m.height, m.bytes]
            out.writerow([*row, m.format or ""])


async def _find(settings: Settings, roots: list[str], threshold: float, kind: Sink | None) -> Found:
    backend = await open_backend(settings, kind.kind if kind else None)
    try:
        return await find_groups(backend, [folder_prefix(r) for r in roots], threshold)
    finally:
        await backend.close()


async def _move(
    settings: Settings, roots: list[str], threshold: float, target: Path, kind: Sink | None
) -> None:
    prefixes = [folder_prefix(r) for r in roots]
    backend = await open_backend(settings, kind.kind if kind else None, writer=True)
    try:
        found = await find_groups(backend, prefixes, threshold)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")
        manifest = target / f"deeptag-moved-{stamp}.jsonl"
        outcome = move_out(list(planned(found.groups, target, prefixes)), manifest)
        removed = await forget_moved(backend, outcome.moved)
    finally:
        await backend.close()
    for line in outcome.skipped:
        err_console.print(f"[yellow]skipped:[/] {escape(line)}", highlight=False)
    err_console.print(
        f"moved {len(outcome.moved)} file(s) of {len(found.groups)} group(s) to {target}; "
        f"{removed} document(s) left the index. Manifest: {manifest}\n"
        f"undo: deeptag duplicates --undo {manifest}",
        highlight=False,
        soft_wrap=True,
    )


async def _undo(settings: Settings, manifest: Path, kind: Sink | None) -> None:
    moves = read_manifest(manifest)
    outcome = move_back(moves)
    backend = await open_backend(settings, kind.kind if kind else None, writer=True)
    try:
        missing = await restore_places(backend, outcome.moved)
    finally:
        await backend.close()
    for line in outcome.skipped:
        err_console.print(f"[yellow]skipped:[/] {escape(line)}", highlight=False)
    err_console.print(f"put back {len(outcome.moved)} of {len(moves)} file(s)", highlight=False)
    if missing:
        folders = sorted({str(Path(p).parent) for p in missing})
        err_console.print(
            f"{len(missing)} of them had left the index: `deeptag sync "
            f"{' '.join(folders[:3])}{' ...' if len(folders) > 3 else ''}` indexes them again",
            highlight=False,
            soft_wrap=True,
        )


@user_errors
def duplicates(
    folders: Annotated[
        list[str] | None,
        typer.Argument(help="Only images under these folders (default: the whole index)."),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="The least embedding cosine of two near duplicates; higher finds fewer.",
        ),
    ] = DEFAULT_THRESHOLD,
    as_json: Annotated[bool, typer.Option("--json", help="Print the groups as JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print one CSV row per member.")] = False,
    move_to: Annotated[
        Path | None,
        typer.Option(
            help="Move every copy but the keeper into this folder (under its path relative to "
            "FOLDER) and write a manifest there. Never deletes or overwrites a file."
        ),
    ] = None,
    undo: Annotated[
        Path | None,
        typer.Option(help="Put back every file a --move-to manifest moved."),
    ] = None,
    sink: Annotated[
        Sink | None,
        typer.Option(help="Default: es when DEEPTAG_ES_URL is set, else embedded."),
    ] = None,
) -> None:
    """Find exact copies and near duplicates (resized, re-encoded, lightly cropped or
    edited) among indexed images, each group with a suggested keeper."""
    settings = load_settings()
    if undo is not None:
        if folders or move_to is not None:
            raise BadRequest("--undo takes only the manifest")
        run_async(_undo(settings, undo, sink))
        return
    roots = check_folders(folders or [])
    if move_to is not None:
        target = check_target(move_to, [folder_prefix(r) for r in roots])
        run_async(_move(settings, roots, threshold, target, sink))
        return
    found = run_async(_find(settings, roots, threshold, sink))
    if as_json:
        typer.echo(json.dumps(found_json(found)))
    elif as_csv:
        _csv(found)
    elif found.groups:
        console.print(_table(found))
    else:
        err_console.print("no duplicates found", highlight=False)
    if found.unhashed:
        err_console.print(
            f"{found.unhashed} image(s) indexed before deeptag computed perceptual hashes "
            "were not compared: `deeptag index --refresh-metadata FOLDER` adds them",
            highlight=False,
        )
