"""Moving duplicates aside, and putting them back: ``deeptag duplicates --move-to`` / ``--undo``.

Every member but the keeper of each group is moved into a folder, under its path relative to
the deduplicated folder it lies in, and a manifest (JSON lines: from, to, sha256, group,
keeper) is written as each file moves, so even an interrupted run can be undone. Nothing is
deleted or overwritten: a name already taken gets a numbered suffix, a file that is not where
the index says (or whose bytes changed) is skipped and said. The index follows as a sync would:
a moved path leaves its document, and a document with no location left is removed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.duplicates import Group
from orchestrator.errors import BadRequest
from orchestrator.files import sha256_of
from orchestrator.search.base import Location, SearchBackend


@dataclass(frozen=True)
class Move:
    source: str
    target: str
    sha256: str
    group: int
    keeper: str


@dataclass(frozen=True)
class Outcome:
    moved: tuple[Move, ...]
    skipped: tuple[str, ...]  # "PATH: why"


def check_target(target: Path, roots: Sequence[str]) -> Path:
    """The folder duplicates go to, refused inside a folder being deduplicated (its files
    would be found again, and moved into themselves)."""
    if not roots:
        raise BadRequest("--move-to needs the FOLDER(s) to deduplicate (moves keep paths relative)")
    resolved = target.expanduser().absolute()
    for root in roots:
        if str(resolved).startswith(root) or str(resolved) + os.sep == root:
            raise BadRequest(
                f"--move-to {target}: inside {root.rstrip(os.sep)}, which is deduplicated"
            )
    return resolved


def planned(groups: Sequence[Group], target: Path, roots: Sequence[str]) -> Iterator[Move]:
    """One move per non-keeper member under ``roots`` (pure; the name is not checked yet)."""
    for number, group in enumerate(groups, start=1):
        for member in group.members[1:]:
            root = next((r for r in roots if member.location.startswith(r)), None)
            if root is None:
                continue
            relative = member.location[len(root) :]
            destination = target / Path(root.rstrip(os.sep)).name / relative
            yield Move(
                member.location, str(destination), member.doc_id, number, group.keeper.location
            )


def free_name(path: Path) -> Path:
    """``path``, or ``name (1).ext``, ``name (2).ext``... whichever does not exist."""
    candidate, n = path, 0
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
    return candidate


def move_out(moves: Sequence[Move], manifest: Path) -> Outcome:
    """Carry the moves out, writing each to ``manifest`` once done."""
    done: list[Move] = []
    skipped: list[str] = []
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with manifest.open("a", encoding="utf-8") as log:
        for move in moves:
            source = Path(move.source)
            if sha256_of(source) != move.sha256:
                skipped.append(f"{move.source}: not there, or its bytes changed since indexed")
                continue
            target = free_name(Path(move.target))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, target)
            final = Move(move.source, str(target), move.sha256, move.group, move.keeper)
            log.write(json.dumps(_line(final)) + "\n")
            log.flush()
            done.append(final)
    return Outcome(tuple(done), tuple(skipped))


def _line(move: Move) -> dict[str, object]:
    line = asdict(move)
    line["from"], line["to"] = line.pop("source"), line.pop("target")
    return line


def read_manifest(manifest: Path) -> list[Move]:
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise BadRequest(f"--undo {manifest}: cannot be read ({e.strerror or e})") from e
    moves = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            moves.append(
                Move(raw["from"], raw["to"], raw["sha256"], int(raw["group"]), raw["keeper"])
            )
        except (ValueError, KeyError, TypeError) as e:
            raise BadRequest(f"--undo {manifest}: line {number} is not a move ({e})") from e
    return moves


def move_back(moves: Sequence[Move]) -> Outcome:
    """Every file back where it was; one whose old place is taken again stays (and is said)."""
    done: list[Move] = []
    skipped: list[str] = []
    for move in reversed(moves):
        source, target = Path(move.target), Path(move.source)
        if target.exists():
            skipped.append(f"{move.source}: a file is there again; {move.target} left as it is")
            continue
        if not source.exists():
            skipped.append(f"{move.target}: no longer there")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
        done.append(move)
    return Outcome(tuple(done), tuple(skipped))


async def forget_moved(backend: SearchBackend, moved: Sequence[Move]) -> int:
    """Take the moved paths off their documents; the number of documents removed (no
    location left)."""
    removed = 0
    for move in moved:
        document = await backend.get(move.sha256)
        if document is None:
            continue
        kept = [place for place in document.places if place.uri != move.source]
        if kept:
            await backend.set_locations(move.sha256, kept)
        elif await backend.delete([move.sha256]):
            removed += 1
    return removed


async def restore_places(backend: SearchBackend, restored: Sequence[Move]) -> list[str]:
    """Put restored paths back on their documents; the paths whose document is gone (they
    must be indexed again, as a sync does for new files)."""
    missing = []
    for move in restored:
        document = await backend.get(move.sha256)
        if document is None:
            missing.append(move.source)
            continue
        stat = os.stat(move.source)
        place = Location(move.source, stat.st_size, stat.st_mtime)
        places = [p for p in document.places if p.uri != move.source] + [place]
        await backend.set_locations(move.sha256, places)
    return missing
