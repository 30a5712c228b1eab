"""Duplicate groups and keepers (pure), and moving duplicates aside and back (files)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from orchestrator.dedupe_moves import (
    check_target,
    free_name,
    move_back,
    move_out,
    planned,
    read_manifest,
)
from orchestrator.duplicates import Kind, build_groups, choose_keeper, is_near, members_of
from orchestrator.errors import BadRequest
from orchestrator.photo import PhotoMetadata
from orchestrator.search.base import Category, ImageDocument, Location


def doc(
    doc_id: str,
    *paths: str,
    size: tuple[int, int] = (800, 600),
    fmt: str = "JPEG",
    taken: str | None = None,
    phash: str | None = "0" * 16,
    nbytes: int = 1000,
) -> ImageDocument:
    return ImageDocument(
        id=doc_id,
        uri=paths[0],
        categories=(Category("n1 dog", 0.9),),
        tags=("dog",),
        embedding=None,
        width=size[0],
        height=size[1],
        model="m/1",
        indexed_at="2026-01-01T00:00:00Z",
        photo=PhotoMetadata(format=fmt, taken_at=taken),
        locations=tuple(Location(p, nbytes, 1.0) for p in paths),
        phash=phash,
    )


def test_the_keeper_has_the_most_pixels_then_an_original_format_then_the_earliest_date() -> None:
    big = members_of(doc("a", "/p/big.jpg", size=(4000, 3000)))[0]
    small = members_of(doc("b", "/p/small.jpg", size=(2000, 1500)))[0]
    assert choose_keeper([small, big]) == (big, "most pixels (4000x3000)")
    png = members_of(doc("c", "/p/x.png", fmt="PNG"))[0]
    jpeg = members_of(doc("d", "/p/x.jpg"))[0]
    assert choose_keeper([jpeg, png]) == (png, "original format (PNG)")
    old = members_of(doc("e", "/p/old.jpg", taken="2019-07-14T10:30:00"))[0]
    new = members_of(doc("f", "/p/new.jpg", taken="2021-01-01T00:00:00"))[0]
    assert choose_keeper([new, old]) == (old, "earliest date (2019-07-14T10:30:00)")
    a, b = members_of(doc("g", "/photos/deep/down/a.jpg", "/photos/a.jpg"))
    assert choose_keeper([a, b]) == (b, "shortest path")
    # Copies of one file: the one modified first is the original, whatever its path.
    older = dataclasses.replace(a, mtime=0.5)
    assert choose_keeper([b, older]) == (older, "the oldest file")


def test_exact_copies_and_confirmed_near_pairs_make_groups() -> None:
    documents = {
        "copy": doc("copy", "/p/a.jpg", "/p/sub/a.jpg"),
        "orig": doc("orig", "/p/orig.png", fmt="PNG", size=(1000, 800)),
        "resized": doc("resized", "/p/resized.jpg", size=(500, 400)),
        "alone": doc("alone", "/p/alone.jpg"),
    }
    groups = build_groups(documents, [("orig", "resized")])
    kinds = {g.kind: g for g in groups}
    assert set(kinds) == {Kind.exact, Kind.near}
    assert kinds[Kind.near].keeper.location == "/p/orig.png"
    assert [m.location for m in kinds[Kind.near].members] == ["/p/orig.png", "/p/resized.jpg"]
    assert kinds[Kind.exact].keeper.location == "/p/a.jpg"
    # Only what lies under the folders asked about counts.
    assert build_groups(documents, [("orig", "resized")], ["/p/sub/"]) == []


def library(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    root = tmp_path / "photos"
    (root / "2019").mkdir(parents=True)
    files = {
        "keep": root / "2019" / "cat.jpg",
        "copy": root / "cat-copy.jpg",
    }
    for path in files.values():
        path.write_bytes(b"the same bytes")
    return root, files


def test_move_to_then_undo_leaves_the_tree_as_it_was(tmp_path: Path) -> None:
    root, files = library(tmp_path)
    (root / "other.jpg").write_bytes(b"another photo")
    before = tree(root)
    sha = hashlib.sha256(b"the same bytes").hexdigest()
    prefix = str(root) + "/"
    groups = build_groups({sha: doc(sha, str(files["keep"]), str(files["copy"]))}, [])
    target = check_target(tmp_path / "aside", [prefix])
    manifest = target / "moves.jsonl"
    # A file already in the way is not overwritten: the moved one gets a numbered name.
    clash = target / "photos" / "cat-copy.jpg"
    clash.parent.mkdir(parents=True)
    clash.write_bytes(b"someone else's file")
    outcome = move_out(list(planned(groups, target, [prefix])), manifest)
    assert [Path(m.target).name for m in outcome.moved] == ["cat-copy (1).jpg"]
    assert clash.read_bytes() == b"someone else's file"
    assert not files["copy"].exists()
    assert files["keep"].exists()
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert set(lines[0]) == {"from", "to", "sha256", "group", "keeper"}
    assert lines[0]["keeper"] == str(files["keep"])
    back = move_back(read_manifest(manifest))
    assert len(back.moved) == 1
    assert tree(root) == before


def test_a_file_that_changed_since_indexed_is_not_moved(tmp_path: Path) -> None:
    root, files = library(tmp_path)
    sha = hashlib.sha256(b"the same bytes").hexdigest()
    groups = build_groups({sha: doc(sha, str(files["keep"]), str(files["copy"]))}, [])
    files["copy"].write_bytes(b"edited since")
    outcome = move_out(
        list(planned(groups, tmp_path / "aside", [str(root) + "/"])), tmp_path / "m.jsonl"
    )
    assert outcome.moved == ()
    assert "bytes changed" in outcome.skipped[0]
    assert files["copy"].read_bytes() == b"edited since"


def test_the_target_may_not_lie_inside_a_folder_being_deduplicated(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="inside"):
        check_target(tmp_path / "photos" / "dups", [str(tmp_path / "photos") + "/"])
    with pytest.raises(BadRequest, match="needs the FOLDER"):
        check_target(tmp_path / "dups", [])


def test_a_manifest_that_is_not_one_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"from": "/a"}\n')
    with pytest.raises(BadRequest, match="line 1 is not a move"):
        read_manifest(bad)
    assert free_name(bad) == tmp_path / "m (1).jsonl"


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("cosine", "bits", "near"),
    [
        (0.84, 0, True),  # a PNG and its JPEG at quality 40: the hash is sure, the embedding moved
        (0.93, 16, True),  # a 10 % crop: the hash moved, the embedding is close
        (0.887, 4, False),  # two shots of one motorbike, a few centimetres apart
        (0.97, 30, False),  # a mirrored copy
        (0.79, 0, False),  # too far by embedding whatever the hash
    ],
)
def test_what_makes_a_near_duplicate(cosine: float, bits: int, near: bool) -> None:
    assert is_near(cosine, bits, 0.90, 20) is near
