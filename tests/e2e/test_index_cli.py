"""``deeptag index`` and ``deeptag search`` as a user runs them, against both backends."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from orchestrator.phash import perceptual_hash
from orchestrator.search.base import Category, ImageDocument, SearchBackend
from orchestrator.settings import Settings
from orchestrator.triton.launcher import LocalTriton, free_port
from tests.conftest import MODEL_REPOSITORY
from tests.search_support import index_documents, mirrored_recrop, variants, with_backend

pytestmark = pytest.mark.e2e

DEEPTAG = [sys.executable, "-m", "orchestrator"]
SUMMARY = re.compile(r"(\d+) indexed, (\d+) skipped \(already indexed\), (\d+) failed")


class Deeptag:
    """Runs the CLI against one fresh index of the chosen backend."""

    def __init__(self, kind: str, triton: LocalTriton, es_url: str, data_dir: Path) -> None:
        self.kind = kind
        # The failure log lands in the working directory: keep it out of the checkout.
        self.cwd = data_dir.parent
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")},
            "COLUMNS": "200",
            "DEEPTAG_TRITON_URL": triton.http_url,
            "DEEPTAG_DATA_DIR": str(data_dir),
            "DEEPTAG_SEARCH_BACKEND": kind,
            "DEEPTAG_ES_URL": es_url,
            "DEEPTAG_ES_INDEX": f"deeptag-cli-{uuid.uuid4().hex[:8]}",
        }
        self.settings = Settings(
            triton_url=triton.http_url,
            model_repository=MODEL_REPOSITORY,
            data_dir=data_dir,
            search_backend=kind,  # type: ignore[arg-type]
            es_url=es_url,
            es_index=self.env["DEEPTAG_ES_INDEX"],
        )

    def run(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*DEEPTAG, *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=300,
            cwd=self.cwd,
            env={**self.env, **(env or {})},
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*DEEPTAG, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.cwd,
            env=self.env,
        )

    def count(self) -> int:
        if self.kind == "es":
            # What a killed run wrote without its closing refresh is stored (a re-run's
            # real-time mget sees it) but not yet counted: make it countable first.
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{self.settings.es_url}/{self.settings.es_index}/_refresh", timeout=5)
        try:
            return with_backend(self.settings, lambda backend: backend.count())
        except Exception:  # the index may not exist yet while the first run starts
            return 0

    def uris(self) -> list[str]:
        page = with_backend(self.settings, lambda backend: backend.search("*", size=1000))
        return [hit.document.uri for hit in page.hits]


@pytest.fixture(params=["embedded", "es"])
def cli(
    request: pytest.FixtureRequest, triton: LocalTriton, elasticsearch_url: str, tmp_path: Path
) -> Deeptag:
    return Deeptag(request.param, triton, elasticsearch_url, tmp_path / "data")


def summary(stderr: str) -> tuple[int, int, int]:
    match = SUMMARY.search(stderr)
    assert match, stderr
    indexed, skipped, failed = (int(g) for g in match.groups())
    return indexed, skipped, failed


def wait_for(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.2)


def test_bad_files_in_a_folder_are_logged_and_the_rest_indexed(
    cli: Deeptag, samples: dict[str, Path], bad_images: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(samples["coffee"], folder / "a-coffee.png")
    shutil.copy(bad_images["truncated"], folder / "b-truncated.jpg")
    shutil.copy(bad_images["text"], folder / "c-notes.jpg")
    (folder / "d-gone.jpg").symlink_to(tmp_path / "deleted.jpg")  # unreadable: dangling link
    shutil.copy(samples["chelsea"], folder / "nested" / "e-chelsea.png")
    failures = tmp_path / "failures.jsonl"

    result = cli.run("index", str(folder), "--failures", str(failures))

    assert result.returncode == 0, result.stderr
    assert summary(result.stderr) == (2, 0, 3)
    logged = {Path(r["source"]).name: r for r in map(json.loads, failures.read_text().splitlines())}
    assert set(logged) == {"b-truncated.jpg", "c-notes.jpg", "d-gone.jpg"}
    assert logged["b-truncated.jpg"]["reason"] == "corrupt"
    assert logged["c-notes.jpg"]["reason"] == "not_an_image"
    assert logged["d-gone.jpg"]["reason"] == "not_found"
    assert all(r["error"] for r in logged.values())
    assert sorted(Path(u).name for u in cli.uris()) == ["a-coffee.png", "e-chelsea.png"]


def test_interrupted_run_resumes_without_duplicates(
    cli: Deeptag, samples: dict[str, Path], tmp_path: Path
) -> None:
    total = 160
    folder = tmp_path / "many"
    variants(list(samples.values()), total, folder)
    first = cli.start("index", str(folder), "--batch-size", "8")
    try:
        wait_for(lambda: cli.count() >= 16 or first.poll() is not None)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    done_before = cli.count()
    assert 0 < done_before < total, "the first run was not interrupted midway"

    second = cli.run("index", str(folder), "--batch-size", "8")

    assert second.returncode == 0, second.stderr
    indexed, skipped, failed = summary(second.stderr)
    assert (skipped, failed) == (done_before, 0)
    assert indexed == total - done_before
    uris = cli.uris()
    assert len(uris) == len(set(uris)) == total


def test_ctrl_c_stops_after_flushing_what_was_read(
    cli: Deeptag, samples: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    variants(list(samples.values()), 400, folder)
    process = cli.start("index", str(folder), "--batch-size", "8")
    wait_for(lambda: cli.count() >= 8 or process.poll() is not None)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 0, stderr
    assert "stopped early" in stderr
    assert "run the same command again to resume" in stderr
    indexed, _, _ = summary(stderr)
    assert 0 < indexed < 400
    # What it says it indexed is exactly what is in the index: nothing lost, nothing claimed.
    assert cli.count() == indexed


def test_lists_globs_and_stdin_are_sources(
    cli: Deeptag, samples: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("coffee", "chelsea", "rocket"):
        shutil.copy(samples[name], folder / samples[name].name)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my photos\n{folder / 'coffee.png'}\n\nphotos/chelsea.png\n")

    from_list = cli.run("index", str(listing))
    from_glob = cli.run("index", str(folder / "*.jpg"))
    from_stdin = cli.run("index", "-", stdin=f"{folder / 'coffee.png'}\n")

    assert summary(from_list.stderr) == (2, 0, 0)
    assert summary(from_glob.stderr) == (1, 0, 0)  # rocket.jpg
    assert summary(from_stdin.stderr) == (0, 1, 0)
    assert cli.count() == 3


def test_a_photo_seen_again_much_later_in_the_run_is_indexed_once(
    cli: Deeptag, samples: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    shutil.copy(samples["coffee"], tmp_path / "first.png")
    first_variant = variants(list(samples.values()), 8, folder)[0]
    # One image per chunk. This copy follows its original at once, before it can be committed:
    # the run's memory of images in flight knows it.
    shutil.copy(first_variant, folder / "img_00000-again.jpg")
    # This one comes long after its original was committed: the backend knows it.
    shutil.copy(samples["coffee"], folder / "zz-coffee-again.png")
    result = cli.run("index", str(tmp_path / "first.png"), str(folder), "--batch-size", "1")
    # Neither copy is tagged again; each is recorded as another place of its photo.
    assert summary(result.stderr) == (9, 0, 0)
    assert "2 copies recorded" in result.stderr
    assert cli.count() == 9


def test_nothing_done_exits_non_zero(cli: Deeptag, bad_images: dict[str, Path]) -> None:
    result = cli.run("index", str(bad_images["text"]))
    assert result.returncode == 1
    assert summary(result.stderr) == (0, 0, 1)
    # In the data directory, not wherever the command was run from; its path is printed.
    log = cli.settings.data_dir / "index-failures.jsonl"
    assert f"failures and their reasons: {log}" in result.stderr
    assert not (cli.cwd / "deeptag-failures.jsonl").exists()
    (logged,) = log.read_text().splitlines()
    assert json.loads(logged)["source"] == str(bad_images["text"])


def test_a_missing_argument_fails_before_any_work(cli: Deeptag, tmp_path: Path) -> None:
    result = cli.run("index", str(tmp_path / "nowhere"), "htp://example.com/a.jpg")
    assert result.returncode == 1
    assert f"{tmp_path / 'nowhere'}: no such file, directory or URL" in result.stderr
    assert "htp://example.com/a.jpg: the htp:// scheme is not supported" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_argument_is_a_failure_and_the_others_are_indexed(
    cli: Deeptag, samples: dict[str, Path], tmp_path: Path
) -> None:
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(samples["coffee"], good / "coffee.jpg")
    result = cli.run("index", str(tmp_path / "missing"), str(good))
    assert result.returncode == 0, result.stderr
    assert summary(result.stderr) == (1, 0, 1)
    assert f"{tmp_path / 'missing'}: no such file, directory or URL" in result.stderr
    (logged,) = (cli.settings.data_dir / "index-failures.jsonl").read_text().splitlines()
    assert json.loads(logged)["source"] == str(tmp_path / "missing")
    assert cli.uris() == [str(good / "coffee.jpg")]


def test_metadata_may_not_replace_the_fields_deeptag_sets(
    cli: Deeptag, samples: dict[str, Path]
) -> None:
    result = cli.run("index", str(samples["coffee"]), "--meta", "tags=holiday")
    assert result.returncode == 1
    assert "--meta 'tags=holiday': metadata key(s) tags are fields deeptag sets" in result.stderr
    assert "Traceback" not in result.stderr


def test_search_by_words_and_by_example(
    cli: Deeptag, samples: dict[str, Path], tmp_path: Path
) -> None:
    indexed = cli.run("index", *(str(p) for p in samples.values()))
    assert indexed.returncode == 0, indexed.stderr

    words = cli.run("search", "espresso", "--json")
    assert words.returncode == 0, words.stderr
    hits = json.loads(words.stdout)["hits"]
    assert hits[0]["uri"] == str(samples["coffee"])
    assert hits[0]["categories"][0]["category"] == "n07920052 espresso"

    table = cli.run("search", '"tiger cat"')
    assert str(samples["chelsea"]) in table.stdout
    assert "tiger cat" in table.stdout

    copy = mirrored_recrop(samples["coffee"], tmp_path / "mirrored.jpg")
    like = cli.run("search", "--like", str(copy), "--size", "3", "--json")
    assert like.returncode == 0, like.stderr
    nearest = json.loads(like.stdout)["hits"]
    assert nearest[0]["uri"] == str(samples["coffee"])

    by_id = cli.run("search", "--like", nearest[0]["id"], "--json")
    assert json.loads(by_id.stdout)["hits"][0]["id"] == nearest[0]["id"]

    nothing = cli.run("search", "zzzznotathing")
    assert nothing.returncode == 0
    assert "no images match" in nothing.stdout

    bad = cli.run("search", "categories.score:((")
    assert bad.returncode == 1
    assert "categories.score:((" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_unreachable_elasticsearch_is_a_clear_error(
    triton: LocalTriton, samples: dict[str, Path], tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    cli = Deeptag("es", triton, dead, tmp_path / "data")
    result = cli.run("index", str(samples["coffee"]))
    assert result.returncode == 1
    assert dead in result.stderr
    assert "Traceback" not in result.stderr
    assert SUMMARY.search(result.stderr) is None  # nothing reported as indexed


def earlier_chelsea(samples: dict[str, Path]) -> ImageDocument:
    """Chelsea as an earlier deeptag stored it: labels only (no concepts, vectors or hash)."""
    return ImageDocument(
        id=hashlib.sha256(samples["chelsea"].read_bytes()).hexdigest(),
        uri=str(samples["chelsea"]),
        categories=(Category("n02123159 tiger cat", 0.6),),
        tags=("tiger cat",),
        embedding=None,
        width=451,
        height=300,
        model="efficientnet_lite0/1",
        indexed_at="2025-01-01T00:00:00Z",
    )


def test_search_modes_and_the_way_to_upgrade_old_documents(
    cli: Deeptag, samples: dict[str, Path]
) -> None:
    assert cli.run("index", str(samples["coffee"]), str(samples["motorcycle"])).returncode == 0
    # Chelsea as an earlier deeptag stored it: labels, no concepts, no semantic vector.
    assert index_documents(cli.settings, [earlier_chelsea(samples)]) == [True]

    before = cli.run("search", "kitten")
    assert before.returncode == 0, before.stderr
    assert "1 of 3 indexed images" in before.stderr
    assert "deeptag index --reindex" in before.stderr
    assert str(samples["chelsea"]) not in before.stdout

    upgraded = cli.run("index", "--reindex", str(samples["chelsea"]))
    assert summary(upgraded.stderr) == (1, 0, 0)
    after = cli.run("search", "kitten", "--json")
    body = json.loads(after.stdout)
    assert (body["mode"], "notice" in body) == ("hybrid", False)
    assert body["hits"][0]["uri"] == str(samples["chelsea"])
    assert "cat" in {c["concept"] for c in body["hits"][0]["concepts"]}

    words = json.loads(cli.run("search", "kitten", "--mode", "words", "--json").stdout)
    assert (words["mode"], words["hits"]) == ("words", [])
    vehicle = json.loads(cli.run("search", "vehicle", "--mode", "semantic", "--json").stdout)
    assert vehicle["hits"][0]["uri"] == str(samples["motorcycle"])
    structured = json.loads(cli.run("search", "tags:espresso", "--json").stdout)
    assert structured["mode"] == "words"
    assert [hit["uri"] for hit in structured["hits"]] == [str(samples["coffee"])]
    bad = cli.run("search", "cat", "--mode", "vibes")
    assert bad.returncode == 2
    assert "vibes" in bad.stderr


def test_a_second_copy_of_a_photo_is_recorded_not_tagged_again(
    cli: Deeptag, samples: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    (folder / "backup").mkdir(parents=True)
    shutil.copy(samples["coffee"], folder / "a-coffee.png")
    shutil.copy(samples["coffee"], folder / "backup" / "coffee-copy.png")
    first = cli.run("index", str(folder))
    assert first.returncode == 0, first.stderr
    assert summary(first.stderr) == (1, 0, 0)
    assert "1 copy recorded" in first.stderr
    found = json.loads(cli.run("search", "espresso", "--json").stdout)
    (hit,) = found["hits"]
    assert sorted(hit["locations"]) == sorted(
        [str(folder / "a-coffee.png"), str(folder / "backup" / "coffee-copy.png")]
    )
    assert hit["uri"] == hit["locations"][0]
    # Run again over the same paths: nothing new to record.
    second = cli.run("index", str(folder))
    assert summary(second.stderr) == (0, 2, 0)
    assert "0 copies recorded" in second.stderr


def test_documents_carry_a_perceptual_hash_and_refresh_gives_older_ones_theirs(
    cli: Deeptag, samples: dict[str, Path]
) -> None:
    indexed = cli.run("index", str(samples["coffee"]))
    assert summary(indexed.stderr) == (1, 0, 0)
    # Chelsea as an earlier deeptag stored it: labels, no perceptual hash.
    old = earlier_chelsea(samples)
    chelsea_id = old.id
    assert index_documents(cli.settings, [old]) == [True]
    coffee_id = hashlib.sha256(samples["coffee"].read_bytes()).hexdigest()

    def hashes() -> dict[str, str | None]:
        async def fetch(backend: SearchBackend) -> dict[str, str | None]:
            found = {doc_id: await backend.get(doc_id) for doc_id in (coffee_id, chelsea_id)}
            return {doc_id: d.phash if d else "missing" for doc_id, d in found.items()}

        return with_backend(cli.settings, fetch)

    before = hashes()
    assert re.fullmatch(r"[0-9a-f]{16}", before[coffee_id] or ""), before
    assert before[chelsea_id] is None

    # No model needed: Triton is out of reach.
    no_triton = {"DEEPTAG_TRITON_URL": f"http://127.0.0.1:{free_port()}"}
    refreshed = cli.run(
        "index",
        "--refresh-metadata",
        str(samples["coffee"]),
        str(samples["chelsea"]),
        env=no_triton,
    )
    assert refreshed.returncode == 0, refreshed.stderr
    assert "1 of them given a perceptual hash" in refreshed.stderr
    after = hashes()
    assert after[coffee_id] == before[coffee_id]  # kept as indexing stored it
    chelsea = perceptual_hash(Image.open(samples["chelsea"]).convert("RGB"))
    assert after[chelsea_id] == chelsea
    hit = with_backend(cli.settings, lambda backend: backend.get(chelsea_id))
    assert hit is not None
    assert hit.categories == old.categories  # nothing else of the document changes

    again = cli.run("index", "--refresh-metadata", str(samples["chelsea"]), env=no_triton)
    assert "perceptual hash" not in again.stderr
    assert "0 indexed images updated, 1 unchanged" in again.stderr


def test_meta_on_images_already_indexed_is_added_without_tagging_them_again(
    cli: Deeptag, samples: dict[str, Path]
) -> None:
    photos = [str(samples["coffee"]), str(samples["chelsea"])]
    assert summary(cli.run("index", *photos).stderr) == (2, 0, 0)
    tagged = _indexed_at(cli)

    again = cli.run("index", "--meta", "album=holiday", *photos)
    assert again.returncode == 0, again.stderr
    assert summary(again.stderr) == (0, 2, 0)
    assert "--meta added to 2 image(s) indexed before (not classified again)" in again.stderr
    found = with_backend(cli.settings, lambda backend: backend.search("album:holiday"))
    assert found.total == 2
    # Not tagged again: the documents are the ones the first run made.
    assert _indexed_at(cli) == tagged

    # Once they say so, a third run has nothing to add.
    third = cli.run("index", "--meta", "album=holiday", *photos)
    assert summary(third.stderr) == (0, 2, 0)
    assert "--meta added" not in third.stderr


def _indexed_at(cli: Deeptag) -> dict[str, str]:
    page = with_backend(cli.settings, lambda backend: backend.search("*", size=100))
    return {hit.document.uri: hit.document.indexed_at for hit in page.hits}
