"""Runs that ride through outages, with real servers killed and restarted mid-run.

`deeptag index` over a folder while Triton is killed with SIGKILL and restarted 5 s later, while
Elasticsearch (noida-db) is stopped and restarted, and while one of two Tritons dies for good:
each run finishes with every image indexed once and nothing failed. An outage longer than the
retry window stops the run cleanly and a re-run resumes it; `/predict` answers 503 during an
outage and serves again once Triton is back, without a restart.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from orchestrator.search.base import SearchBackend
from orchestrator.settings import Settings
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port
from tests.conftest import MODEL_REPOSITORY, ServerFactory
from tests.e2e.test_sync import inferences as exact_inferences
from tests.outage_support import Noida, inferences, kill_9, killed_after, run_index, wait_until
from tests.search_support import variants, with_backend

pytestmark = pytest.mark.e2e

#: Enough images that the run is still going when the fault comes (~4-8 s of work here).
IMAGES = 160
BATCH = "16"


@pytest.fixture
def photos(samples: dict[str, Path], tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    variants(list(samples.values()), IMAGES, folder, side=96)
    return folder


def own_triton(tmp_path: Path, name: str, ports: TritonPorts | None = None) -> LocalTriton:
    ports = ports or TritonPorts(free_port(), free_port(), free_port())
    return LocalTriton(MODEL_REPOSITORY, tmp_path / name, ports)


def embedded_env(tmp_path: Path, triton_url: str) -> dict[str, str]:
    return {
        "DEEPTAG_TRITON_URL": triton_url,
        "DEEPTAG_DATA_DIR": str(tmp_path / "data"),
        "DEEPTAG_SEARCH_BACKEND": "embedded",
        "DEEPTAG_INFER_BATCH_SIZE": BATCH,
    }


def embedded_count(tmp_path: Path) -> int:
    settings = Settings(
        data_dir=tmp_path / "data", search_backend="embedded", model_repository=MODEL_REPOSITORY
    )
    return with_backend(settings, lambda backend: backend.count())


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_triton_killed_and_restarted_5s_later(photos: Path, tmp_path: Path, protocol: str) -> None:
    first = own_triton(tmp_path, "triton")
    first.start()
    again = own_triton(tmp_path, "triton", first.ports)
    # gRPC is how deeptag speaks to a local Triton by default; a call it cuts reads differently.
    url = first.http_url if protocol == "http" else f"grpc://{first.grpc_url}"

    def fault() -> None:
        wait_until(lambda: inferences(first) >= 48, 120, "48 images classified")
        kill_9(first)
        time.sleep(5)
        again.start()

    try:
        run = run_index(photos, embedded_env(tmp_path, url), tmp_path, fault)
    finally:
        first.stop()
        again.stop()
    assert run.returncode == 0, run.stderr
    assert (run.indexed, run.skipped, run.failed) == (IMAGES, 0, 0), run.stderr
    # The wait was said, and its end.
    assert f"waiting: Triton at {url}" in run.stderr
    assert "resumed after" in run.stderr
    assert embedded_count(tmp_path) == IMAGES


def test_elasticsearch_stopped_and_restarted(
    photos: Path, tmp_path: Path, triton: LocalTriton
) -> None:
    noida = Noida(free_port(), tmp_path / "noida")
    noida.data_dir.mkdir()
    noida.start()

    def fault() -> None:
        wait_until(lambda: noida.count("photos") >= 32, 120, "32 documents in Elasticsearch")
        noida.stop()
        time.sleep(5)
        noida.start()

    env = {
        "DEEPTAG_TRITON_URL": triton.http_url,
        "DEEPTAG_DATA_DIR": str(tmp_path / "data"),
        "DEEPTAG_ES_URL": noida.url,
        "DEEPTAG_ES_INDEX": "photos",
        "DEEPTAG_INFER_BATCH_SIZE": BATCH,
    }
    try:
        run = run_index(photos, env, tmp_path, fault)
        assert run.returncode == 0, run.stderr
        assert (run.indexed, run.skipped, run.failed) == (IMAGES, 0, 0), run.stderr
        assert f"Elasticsearch at {noida.url}" in run.stderr
        assert "resumed after" in run.stderr
        assert noida.count("photos") == IMAGES
    finally:
        noida.stop()


def test_one_of_two_tritons_dies_for_good(
    photos: Path, tmp_path: Path, triton: LocalTriton
) -> None:
    doomed = own_triton(tmp_path, "doomed")
    doomed.start()

    def fault() -> None:
        wait_until(lambda: inferences(doomed) >= 16, 120, "16 images classified on the second")
        kill_9(doomed)

    try:
        env = embedded_env(tmp_path, f"{triton.http_url},{doomed.http_url}")
        run = run_index(photos, env, tmp_path, fault)
    finally:
        doomed.stop()
    assert run.returncode == 0, run.stderr
    assert (run.indexed, run.skipped, run.failed) == (IMAGES, 0, 0), run.stderr
    # The survivor took over without any wait.
    assert "waiting:" not in run.stderr
    assert embedded_count(tmp_path) == IMAGES


def test_an_outage_longer_than_the_window_stops_cleanly_and_a_rerun_resumes(
    photos: Path, tmp_path: Path
) -> None:
    first = own_triton(tmp_path, "triton")
    first.start()
    env = {**embedded_env(tmp_path, first.http_url), "DEEPTAG_RETRY_WINDOW_S": "3"}

    try:
        stopped = run_index(photos, env, tmp_path, killed_after(first, 48))
    finally:
        first.stop()
    assert stopped.returncode == 75, stopped.stderr
    assert "stopped:" in stopped.stderr
    assert "RETRY_WINDOW_S=3" in stopped.stderr
    assert "run the same command again to resume" in stopped.stderr
    # Nothing counted as failed: the images not done are simply not done yet.
    assert stopped.failed == 0
    assert 0 < stopped.indexed < IMAGES
    kept = embedded_count(tmp_path)
    assert kept == stopped.indexed

    with own_triton(tmp_path, "triton", first.ports):
        resumed = run_index(photos, env, tmp_path, lambda: None)
    assert resumed.returncode == 0, resumed.stderr
    assert (resumed.indexed, resumed.skipped, resumed.failed) == (IMAGES - kept, kept, 0)
    assert embedded_count(tmp_path) == IMAGES


def test_a_sync_cut_by_an_outage_loses_nothing_and_a_rerun_finishes_it(
    photos: Path, tmp_path: Path
) -> None:
    """``deeptag sync`` with moved and new files, Triton killed for longer than the window
    mid-run: every document still has its files (new content is stored before any path
    moves), and running the same sync again finishes it without classifying anything twice."""
    settle = own_triton(tmp_path, "settle")
    moved = sorted(photos.iterdir())[:40]
    (photos / "old").mkdir()
    for path in moved:
        path.rename(photos / "old" / path.name)
    with settle:
        env = {**embedded_env(tmp_path, settle.http_url), "DEEPTAG_RETRY_WINDOW_S": "3"}
        assert run_index(photos / "old", env, tmp_path, lambda: None).indexed == len(moved)
    (photos / "old").rename(photos / "kept")  # 40 moves, and IMAGES - 40 new files

    first = own_triton(tmp_path, "triton")
    first.start()
    env = {**embedded_env(tmp_path, first.http_url), "DEEPTAG_RETRY_WINDOW_S": "3"}

    try:
        stopped = run_index(photos, env, tmp_path, killed_after(first, 48), command="sync")
    finally:
        first.stop()
    assert stopped.returncode == 75, stopped.stderr
    assert "run the same command again to finish" in stopped.stderr
    cut = places(tmp_path)
    # Nothing lost: the moved photos still have their (old) paths; some new ones are in.
    assert len(moved) < len(cut) < IMAGES
    assert all(paths for paths in cut.values())

    again = own_triton(tmp_path, "triton", first.ports)
    with again:
        resumed = run_index(photos, env, tmp_path, lambda: None, command="sync")
        classified = exact_inferences(again)
    assert resumed.returncode == 0, resumed.stderr
    # Only what the cut run had not stored was classified (a batch may be in flight twice).
    assert IMAGES - len(cut) <= classified <= IMAGES - len(cut) + int(BATCH)
    done = places(tmp_path)
    assert len(done) == IMAGES
    on_disk = sorted(str(p) for p in photos.rglob("*.jpg"))
    assert sorted(path for paths in done.values() for path in paths) == on_disk


def places(tmp_path: Path) -> dict[str, list[str]]:
    """Every embedded document's recorded locations."""
    settings = Settings(
        data_dir=tmp_path / "data", search_backend="embedded", model_repository=MODEL_REPOSITORY
    )

    async def read(backend: SearchBackend) -> dict[str, list[str]]:
        page = await backend.search("*", size=IMAGES + 10)
        return {h.document.id: [loc.uri for loc in h.document.places] for h in page.hits}

    return with_backend(settings, read)


def test_predict_answers_503_during_an_outage_and_serves_after_it(
    start_deeptag: ServerFactory, samples: dict[str, Path], tmp_path: Path
) -> None:
    first = own_triton(tmp_path, "triton")
    first.start()
    try:
        server = start_deeptag(
            {
                "DEEPTAG_TRITON_URL": first.http_url,
                "DEEPTAG_IMAGE_ROOTS": str(samples["coffee"].parent),
            }
        )
        body = {"service": "imageserv", "data": [str(samples["coffee"])]}
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert client.post("/predict", json=body).status_code == 200
            kill_9(first)
            started = time.monotonic()
            down = client.post("/predict", json=body)
            assert time.monotonic() - started < 10
            assert down.status_code == 503, down.text
            status = down.json()["status"]
            assert status["code"] == 503
            assert f"Triton at {first.http_url}" in status["dd_msg"]

            with own_triton(tmp_path, "triton", first.ports):
                back = client.post("/predict", json=body)
                assert back.status_code == 200, back.text
                category = back.json()["body"]["predictions"][0]["classes"][0]["cat"]
                assert "espresso" in category
            # Per-endpoint figures: the calls that worked and the one the outage failed.
            metrics = client.get("/metrics").text
            endpoint = f'endpoint="{first.http_url}"'
            assert f'deeptag_triton_requests_total{{{endpoint},outcome="ok"}} 2.0' in metrics
            assert f'deeptag_triton_requests_total{{{endpoint},outcome="failed"}} 1.0' in metrics
            assert f"deeptag_triton_endpoint_ready{{{endpoint}}} 1.0" in metrics
    finally:
        first.stop()
