"""``deeptag watch``: the index follows a folder as files come, move and go."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from orchestrator.triton.launcher import LocalTriton
from tests.conftest import ServerFactory
from tests.e2e.test_index_cli import Deeptag
from tests.e2e.test_sync import locations, photos

pytestmark = pytest.mark.e2e
WAIT_S = 90


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT_S} s: {what}")
        time.sleep(0.3)


def test_the_index_follows_the_folder_and_sigterm_stops_cleanly(
    triton: LocalTriton, elasticsearch_url: str, samples: dict[str, Path], tmp_path: Path
) -> None:
    cli = Deeptag("embedded", triton, elasticsearch_url, tmp_path / "data")
    cli.env.update({"DEEPTAG_WATCH_DEBOUNCE_MS": "300", "DEEPTAG_SYNC_MAX_REMOVE_FRACTION": "1"})
    folder = tmp_path / "photos"
    photos(folder, samples, ("coffee", "chelsea"))
    root = str(folder)
    watcher = cli.start("watch", root)
    try:
        # The first sync indexes what is there.
        wait_for(lambda: len(locations(cli)) == 2, "the start-up sync")
        photos(folder / "new", samples, ("rocket",))
        (folder / "coffee.png").rename(folder / "renamed.png")
        (folder / "chelsea.png").unlink()
        expected = sorted([[f"{root}/new/rocket.png"], [f"{root}/renamed.png"]])
        wait_for(lambda: sorted(locations(cli).values()) == expected, "the changes")
        # The watcher is the index's one writer while it runs: another writer is told so,
        # and nothing is changed behind its back.
        other = cli.run("remove", f"{root}/renamed.png")
        assert other.returncode != 0
        assert "is locked" in other.stderr, other.stderr
        assert "`watch`" in other.stderr
        assert sorted(locations(cli).values()) == expected
    finally:
        watcher.send_signal(signal.SIGTERM)
        _, stderr = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_serve_watch_follows_the_folder_beside_index_and_search(
    triton: LocalTriton,
    elasticsearch_url: str,
    samples: dict[str, Path],
    tmp_path: Path,
    start_deeptag: ServerFactory,
) -> None:
    """The server's watcher and ``POST /index`` share the embedded index's single writer, and
    searches answer all along."""
    cli = Deeptag("embedded", triton, elasticsearch_url, tmp_path / "data")
    folder = tmp_path / "photos"
    photos(folder, samples, ("coffee",))
    uploads = tmp_path / "uploads"
    photos(uploads, samples, ("chelsea",))
    server = start_deeptag(
        {
            **cli.env,
            "DEEPTAG_WATCH": str(folder),
            "DEEPTAG_WATCH_DEBOUNCE_MS": "300",
            "DEEPTAG_IMAGE_ROOTS": str(uploads),
        }
    )

    def total() -> int:
        answer = httpx.get(f"{server.url}/search", params={"q": "*"}, timeout=30)
        assert answer.status_code == 200, answer.text
        count: int = answer.json()["total"]
        return count

    info = httpx.get(f"{server.url}/info", timeout=30).json()
    assert info["head"]["watch"]["folders"] == [str(folder)]
    wait_for(lambda: total() == 1, "the start-up sync of the watched folder")

    photos(folder / "new", samples, ("rocket",))
    indexed = httpx.post(
        f"{server.url}/index", json={"data": [str(uploads / "chelsea.png")]}, timeout=120
    )
    assert indexed.status_code == 200, indexed.text
    wait_for(lambda: total() == 3, "the watcher's new file beside the uploaded one")
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert re.search(r"^deeptag_watch_events_total [1-9]", metrics, re.MULTILINE), metrics
    assert re.search(r'^deeptag_sync_changes_total\{change="new"\} [1-9]', metrics, re.MULTILINE)
