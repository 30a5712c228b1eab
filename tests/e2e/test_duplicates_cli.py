"""``deeptag duplicates`` as a user runs it: real photos tagged by the test Triton, groups in
JSON, duplicates moved aside with the index following, and put back byte for byte."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from orchestrator.triton.launcher import LocalTriton
from tests.e2e.test_index_cli import Deeptag
from tests.e2e.test_sync import locations

pytestmark = pytest.mark.e2e


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_groups_then_move_aside_then_undo(
    triton: LocalTriton, elasticsearch_url: str, samples: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    (folder / "mail").mkdir(parents=True)
    (folder / "backup").mkdir()
    coffee = Image.open(samples["coffee"]).convert("RGB")
    coffee.save(folder / "coffee.png")
    coffee.resize((coffee.width // 2, coffee.height // 2)).save(folder / "mail" / "coffee.jpg")
    coffee.save(folder / "coffee-q40.jpg", "JPEG", quality=40)
    shutil.copy(samples["chelsea"], folder / "chelsea.png")
    shutil.copy(samples["chelsea"], folder / "backup" / "chelsea.png")
    # Two shots of one motorbike, from places a few centimetres apart: not duplicates.
    shutil.copy(samples["motorcycle"], folder / "bike-left.png")
    shutil.copy(samples["motorcycle"].with_name("motorcycle_right.png"), folder / "bike-right.png")
    cli = Deeptag("embedded", triton, elasticsearch_url, tmp_path / "data")
    assert cli.run("index", str(folder)).returncode == 0
    before_files, before_index = tree(folder), locations(cli)

    listed = cli.run("duplicates", str(folder), "--json")
    assert listed.returncode == 0, listed.stderr
    groups = {g["kind"]: g for g in json.loads(listed.stdout)["groups"]}
    root = str(folder)
    assert groups["near"]["keeper"] == f"{root}/coffee.png"
    near = sorted(m["location"] for m in groups["near"]["members"])
    assert near == [f"{root}/coffee-q40.jpg", f"{root}/coffee.png", f"{root}/mail/coffee.jpg"]
    assert sorted(m["location"] for m in groups["exact"]["members"]) == [
        f"{root}/backup/chelsea.png",
        f"{root}/chelsea.png",
    ]
    member = groups["near"]["members"][0]
    assert {"location", "keeper", "width", "height", "bytes", "format"} <= set(member)
    assert len(groups) == 2  # the two bikes are not grouped

    aside = tmp_path / "aside"
    moved = cli.run("duplicates", str(folder), "--move-to", str(aside))
    assert moved.returncode == 0, moved.stderr
    (manifest,) = aside.glob("deeptag-moved-*.jsonl")
    assert len(manifest.read_text().splitlines()) == 3
    assert (aside / "photos" / "mail" / "coffee.jpg").is_file()
    assert not (folder / "mail" / "coffee.jpg").exists()
    assert (folder / "coffee.png").is_file()
    # The index followed: no document points at a moved file.
    indexed = {path for paths in locations(cli).values() for path in paths}
    assert not any(path.startswith(str(aside)) for path in indexed)
    assert f"{root}/mail/coffee.jpg" not in indexed
    assert f"{root}/chelsea.png" in indexed

    undone = cli.run("duplicates", "--undo", str(manifest))
    assert undone.returncode == 0, undone.stderr
    manifest.unlink()
    assert tree(folder) == before_files
    # The exact copy's path is back on its document; the near duplicates had left the index,
    # and the command says how to bring them back.
    assert f"{root}/backup/chelsea.png" in {p for ps in locations(cli).values() for p in ps}
    assert "deeptag sync" in undone.stderr
    assert cli.run("sync", str(folder)).returncode == 0
    assert sorted(map(sorted, locations(cli).values())) == sorted(
        map(sorted, before_index.values())
    )
