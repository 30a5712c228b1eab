"""``deeptag sync`` as a user runs it, on both backends, against the test Triton."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image

from orchestrator.search.base import SearchBackend
from orchestrator.triton.launcher import LocalTriton
from tests.e2e.test_index_cli import Deeptag
from tests.search_support import with_backend

pytestmark = pytest.mark.e2e
NAMES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right")


def photos(folder: Path, samples: dict[str, Path], names: tuple[str, ...] = NAMES) -> None:
    """Distinct PNGs named after ``names`` (the right motorcycle is the left one mirrored)."""
    folder.mkdir()
    for name in names:
        source = samples["motorcycle" if name.startswith("motorcycle") else name]
        image = Image.open(source).convert("RGB")
        if name == "motorcycle_right":
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image.save(folder / f"{name}.png")


@pytest.fixture(params=["embedded", "es"])
def cli(
    request: pytest.FixtureRequest, triton: LocalTriton, elasticsearch_url: str, tmp_path: Path
) -> Deeptag:
    return Deeptag(request.param, triton, elasticsearch_url, tmp_path / "data")


def inferences(triton: LocalTriton) -> int:
    """Images the tagging model has classified, from Triton's statistics API (exact and
    current, unlike the periodically refreshed metrics)."""
    stats = httpx.get(f"{triton.http_url}/v2/models/efficientnet_lite0/stats", timeout=5).json()
    return sum(int(model["inference_count"]) for model in stats["model_stats"])


def locations(cli: Deeptag) -> dict[str, list[str]]:
    """Every document's locations, as sorted file names relative to the photo folder."""

    async def read(backend: SearchBackend) -> dict[str, list[str]]:
        page = await backend.search("*", size=100)
        return {h.document.id: sorted(loc.uri for loc in h.document.places) for h in page.hits}

    return with_backend(cli.settings, read)


def sync_json(cli: Deeptag, *args: str) -> tuple[int, dict[str, object]]:
    result = cli.run("sync", *args, "--json")
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_sync_follows_deletes_moves_edits_and_copies(
    cli: Deeptag, samples: dict[str, Path], triton: LocalTriton, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    photos(folder, samples)
    start = inferences(triton)
    assert cli.run("index", str(folder)).returncode == 0
    # What a session costs besides its images (a check on connecting), measured, not assumed.
    per_session = inferences(triton) - start - len(NAMES)
    before = locations(cli)
    assert len(before) == len(NAMES)

    (folder / "astronaut.png").unlink()
    (folder / "chelsea.png").unlink()
    (folder / "sub").mkdir()
    for name in ("coffee", "rocket", "motorcycle_left"):
        (folder / f"{name}.png").rename(folder / "sub" / f"{name}.png")
    edited = folder / "motorcycle_right.png"
    Image.open(edited).convert("RGB").rotate(90).save(edited, "PNG")
    shutil.copy(folder / "sub" / "coffee.png", folder / "coffee-copy.png")

    dry_code, dry = sync_json(cli, str(folder), "--dry-run", "--yes")
    assert dry_code == 0
    assert locations(cli) == before  # a dry run changes nothing

    inferred = inferences(triton)
    code, counts = sync_json(cli, str(folder), "--yes")
    assert code == 0, counts
    expected = {"new": 1, "moved": 3, "edited": 1, "removed": 2, "unchanged": 0, "failed": 0}
    assert {k: counts[k] for k in expected} == expected
    assert {k: dry[k] for k in expected} == expected
    # Only the edited photo was classified: moves and the copy were recorded, not inferred.
    assert inferences(triton) - inferred == 1 + per_session

    after = locations(cli)
    root = str(folder)
    assert sorted(after.values()) == sorted(
        [
            [f"{root}/coffee-copy.png", f"{root}/sub/coffee.png"],
            [f"{root}/sub/rocket.png"],
            [f"{root}/sub/motorcycle_left.png"],
            [f"{root}/motorcycle_right.png"],
        ]
    )
    assert len(set(after) - set(before)) == 1  # the edit is a new document

    # Deleting the first copy of a duplicated photo keeps the document with the second.
    (folder / "sub" / "coffee.png").unlink()
    code, counts = sync_json(cli, str(folder), "--yes")
    assert (code, counts["removed"]) == (0, 1)
    assert [f"{root}/coffee-copy.png"] in locations(cli).values()

    # Unchanged: nothing read, nothing inferred (no Triton session at all).
    inferred = inferences(triton)
    code, counts = sync_json(cli, str(folder))
    assert inferences(triton) == inferred
    assert (code, counts["unchanged"], counts["new"], counts["removed"]) == (0, 4, 0, 0)


def test_a_folder_that_went_away_removes_nothing(
    cli: Deeptag, samples: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "drive"
    photos(folder, samples, NAMES[:3])
    assert cli.run("index", str(folder)).returncode == 0
    folder.rename(tmp_path / "elsewhere")

    result = cli.run("sync", str(folder))

    assert result.returncode == 1
    assert "no such folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(locations(cli)) == 3


def test_many_removals_wait_for_yes(cli: Deeptag, samples: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    photos(folder, samples, NAMES[:3])
    assert cli.run("index", str(folder)).returncode == 0
    (folder / f"{NAMES[0]}.png").unlink()

    code, counts = sync_json(cli, str(folder))

    assert code == 1
    assert counts["refused"]
    assert len(locations(cli)) == 3
    assert sync_json(cli, str(folder), "--yes")[0] == 0
    assert len(locations(cli)) == 2
