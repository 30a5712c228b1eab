"""Removing images on purpose: ``deeptag remove ID|PATH...`` and ``DELETE /index/{id}``."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import httpx
import pytest

from orchestrator.triton.launcher import LocalTriton
from tests.conftest import ServerFactory
from tests.e2e.test_index_cli import Deeptag

pytestmark = pytest.mark.e2e


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(params=["embedded", "es"])
def library(
    request: pytest.FixtureRequest,
    triton: LocalTriton,
    elasticsearch_url: str,
    samples: dict[str, Path],
    tmp_path: Path,
) -> tuple[Deeptag, Path]:
    """coffee, chelsea and rocket in one folder, and a second copy of coffee in another."""
    folder = tmp_path / "Pictures"
    (folder / "trip").mkdir(parents=True)
    for name in ("coffee", "chelsea", "rocket"):
        shutil.copy(samples[name], folder / f"{name}.png")
    shutil.copy(samples["coffee"], folder / "trip" / "coffee-again.png")
    cli = Deeptag(request.param, triton, elasticsearch_url, tmp_path / "data")
    result = cli.run("index", str(folder))
    assert result.returncode == 0, result.stderr
    return cli, folder


def locations(cli: Deeptag) -> dict[str, list[str]]:
    """Each document's locations, by the name of its first file."""
    result = cli.run("search", "*", "--json", "--size", "50")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)["hits"]
    return {Path(h["uri"]).name: sorted(h["locations"]) for h in hits}


def test_removing_by_id_and_by_path(library: tuple[Deeptag, Path]) -> None:
    cli, folder = library
    coffee, copy = folder / "coffee.png", folder / "trip" / "coffee-again.png"
    assert locations(cli)["coffee.png"] == sorted([str(coffee), str(copy)])

    # The first copy's path leaves its document; the photo is still found at the second.
    result = cli.run("remove", str(coffee))
    assert result.returncode == 0, result.stderr
    assert "0 document(s), 1 location(s)" in result.stderr
    assert locations(cli)["coffee-again.png"] == [str(copy)]

    # By id: the whole document goes, whatever its locations.
    result = cli.run("remove", sha256(folder / "rocket.png"))
    assert result.returncode == 0, result.stderr
    assert set(locations(cli)) == {"coffee-again.png", "chelsea.png"}

    # A folder: every document located only under it goes; the files stay on disk.
    result = cli.run("remove", str(folder / "trip"))
    assert result.returncode == 0, result.stderr
    assert set(locations(cli)) == {"chelsea.png"}
    assert copy.exists()


def test_removing_what_is_not_indexed_says_so(library: tuple[Deeptag, Path]) -> None:
    cli, folder = library
    result = cli.run("remove", "0" * 64, str(folder / "never-indexed.jpg"))
    assert result.returncode == 1
    assert "not in the index" in result.stderr
    assert "never-indexed.jpg" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(locations(cli)) == 3


def test_delete_route_needs_the_key_and_answers_404_after(
    library: tuple[Deeptag, Path], start_deeptag: ServerFactory
) -> None:
    cli, folder = library
    server = start_deeptag({**cli.env, "DEEPTAG_API_KEY": "remove-key"})
    doc_id = sha256(folder / "chelsea.png")
    url = f"{server.url}/index/{doc_id}"
    assert httpx.delete(url, timeout=30).status_code == 401
    key = {"Authorization": "Bearer remove-key"}
    answer = httpx.delete(url, headers=key, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"]["code"] == 200
    again = httpx.delete(url, headers=key, timeout=30)
    assert again.status_code == 404
    assert doc_id in again.json()["status"]["dd_msg"]
    bad = httpx.delete(f"{server.url}/index/not-an-id", headers=key, timeout=30)
    assert bad.status_code == 400
    assert "not-an-id" in bad.json()["status"]["dd_msg"]
    assert "chelsea.png" not in locations(cli)
