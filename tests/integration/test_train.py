"""`deeptag train` and DeepDetect's `/train`: a linear probe really served by the local Triton."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.training.sample_data import make_dataset
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port
from tests.conftest import MODEL_REPOSITORY, REPO_ROOT
from tests.environment import clean_environment

pytestmark = pytest.mark.integration

CATEGORIES = ("astronaut", "cat", "coffee")


@dataclass
class TrainWorld:
    root: Path
    repository: Path
    triton: LocalTriton
    env: dict[str, str]

    def deeptag(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=240,
        )

    def triton_index(self) -> list[dict[str, Any]]:
        response = httpx.post(f"{self.triton.http_url}/v2/repository/index", timeout=10)
        index: list[dict[str, Any]] = response.json()
        return index

    def ready(self, model: str) -> set[str]:
        return {
            m.get("version", "")
            for m in self.triton_index()
            if m["name"] == model and m.get("state") == "READY"
        }


@pytest.fixture(scope="module")
def world(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainWorld]:
    """A model repository of its own (the backbone only), and a Triton serving it the way
    `deeptag triton start` does, found by every command through its HTTP port."""
    root = tmp_path_factory.mktemp("train")
    repository = root / "model_repository"
    backbone = repository / "efficientnet_lite0"
    (backbone / "1").mkdir(parents=True)
    for name in ("config.pbtxt", "labels.txt"):
        shutil.copy(MODEL_REPOSITORY / "efficientnet_lite0" / name, backbone / name)
    (backbone / "1" / "model.onnx").symlink_to(exported_model / "efficientnet_lite0/1/model.onnx")
    data_dir = root / "data"
    ports = TritonPorts(free_port(), free_port(), free_port())
    env = {
        **clean_environment(),
        "DEEPTAG_MODEL_REPOSITORY": str(repository),
        "DEEPTAG_DATA_DIR": str(data_dir),
        "DEEPTAG_TRITON_HTTP_PORT": str(ports.http),
        "DEEPTAG_TRITON_GRPC_PORT": str(ports.grpc),
        "DEEPTAG_TRITON_METRICS_PORT": str(ports.metrics),
        "DEEPTAG_IMAGE_ROOTS": str(root / "images"),
        "DEEPTAG_SEARCH_BACKEND": "embedded",
        "COLUMNS": "200",
    }
    with LocalTriton(repository, data_dir / "run" / "triton", ports) as triton:
        yield TrainWorld(root, repository, triton, env)


@pytest.fixture(scope="module")
def train_folder(world: TrainWorld) -> Path:
    folder = world.root / "images" / "train"
    make_dataset(folder, CATEGORIES, per_class=8, seed=1)
    (folder / "cat" / "notes.jpg").write_text("not a photo, just notes\n")
    return folder


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def server(world: TrainWorld) -> Iterator[Server]:
    port = free_port()
    log_path = world.root / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env=world.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"deeptag serve did not start:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield Server(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _predict(url: str, service: str, path: Path) -> list[dict[str, Any]]:
    body = {"service": service, "parameters": {"output": {"best": 3}}, "data": [str(path)]}
    response = httpx.post(f"{url}/predict", json=body, timeout=60)
    assert response.status_code == 200, response.text
    prediction = response.json()["body"]["predictions"][0]
    assert "error" not in prediction, prediction
    classes: list[dict[str, Any]] = prediction["classes"]
    return classes


def test_cli_trains_a_served_model_and_retraining_adds_a_version(
    world: TrainWorld, train_folder: Path, samples: dict[str, Path]
) -> None:
    first = world.deeptag("train", "astro", str(train_folder), "--test-split", "0.25")
    assert first.returncode == 0, first.stderr + first.stdout
    assert "trained 'astro' version 1: 3 classes, 24 images" in first.stdout
    assert "held-out accuracy" in first.stdout
    assert "precision" in first.stdout  # the evaluation table
    # The text file among the cats is skipped and named, the rest trains.
    assert "notes.jpg" in first.stderr
    assert "serves 'astro'" in first.stdout
    assert world.ready("astro") == {"1"}
    assert world.ready("astro_head") == {"1"}

    predicted = world.deeptag("predict", "--model", "astro", "--json", str(samples["astronaut"]))
    assert predicted.returncode == 0, predicted.stderr
    classes = json.loads(predicted.stdout)["body"]["predictions"][0]["classes"]
    assert classes[0]["cat"] == "astronaut"
    assert {c["cat"] for c in classes} <= set(CATEGORIES)
    # Served, batched and monitored like the other models: Triton's metrics count its calls.
    metrics = httpx.get(world.triton.metrics_url, timeout=10).text
    assert 'nv_inference_request_success{model="astro",version="1"}' in metrics

    make_dataset(world.root / "more", CATEGORIES, per_class=2, seed=7)
    for category in CATEGORIES:
        for path in (world.root / "more" / category).iterdir():
            shutil.copy(path, train_folder / category / f"more-{path.name}")
    second = world.deeptag("train", "astro", str(train_folder))
    assert second.returncode == 0, second.stderr + second.stdout
    # Only the new images went through Triton; the others came from the cache.
    assert "version 2: 3 classes, 30 images (24 cached" in second.stdout
    assert world.ready("astro_head") == {"2"}
    assert (world.repository / "astro_head" / "1" / "model.onnx").is_file()

    listed = world.deeptag("models", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "astro" in line)
    assert "2 (of 1, 2)" in row
    assert "astronaut, cat, coffee" in row


def _folder(root: Path, name: str, counts: dict[str, int]) -> Path:
    folder = root / "images" / name
    for category, count in counts.items():
        (folder / category).mkdir(parents=True)
        if count:
            made = make_dataset(root / "scratch" / name, (category,), count, seed=3)
            for path in made[category]:
                shutil.move(path, folder / category / path.name)
    return folder


def test_cli_refuses_data_that_cannot_train(world: TrainWorld) -> None:
    one = world.deeptag("train", "solo", str(_folder(world.root, "one", {"astronaut": 6})))
    assert one.returncode == 1
    assert "one category ('astronaut')" in one.stderr

    empty = _folder(world.root, "empty", {"astronaut": 6, "coffee": 0})
    result = world.deeptag("train", "gap", str(empty))
    assert result.returncode == 1
    assert "category 'coffee'" in result.stderr
    assert "has no files" in result.stderr

    small = _folder(world.root, "small", {"astronaut": 6, "coffee": 3})
    for i in range(3):
        (small / "coffee" / f"broken-{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = world.deeptag("train", "tiny", str(small))
    assert result.returncode == 1
    assert "'coffee' (3)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (world.repository / "tiny").exists()


def test_http_train_as_deepdetect_does_then_predict(
    server: Server, world: TrainWorld, train_folder: Path, samples: dict[str, Path]
) -> None:
    created = httpx.put(
        f"{server.url}/services/diver",
        json={
            "mllib": "caffe",
            "description": "astronauts, cats, coffee",
            "type": "supervised",
            "parameters": {"input": {"connector": "image"}, "mllib": {"nclasses": 3}},
            "model": {"repository": "/models/diver", "templates": "../templates/caffe/"},
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text

    started = httpx.post(
        f"{server.url}/train",
        json={
            "service": "diver",
            "async": True,
            "parameters": {
                "mllib": {"gpu": True, "solver": {"iterations": 3000}, "net": {"batch_size": 32}},
                "input": {"connector": "image", "test_split": 0.25, "shuffle": True, "seed": 3},
                "output": {"measure": ["acc", "f1", "cmdiag"]},
            },
            "data": [str(train_folder)],
        },
        timeout=30,
    )
    assert started.status_code == 201, started.text
    head = started.json()["head"]
    assert head["status"] == "running"

    query = {"service": "diver", "job": head["job"]}
    report = httpx.get(f"{server.url}/train", params={**query, "timeout": 200}, timeout=230)
    assert report.status_code == 200, report.text
    assert report.json()["head"]["status"] == "finished"
    measure = report.json()["body"]["measure"]
    assert 0.0 <= measure["acc"] <= 1.0
    assert len(measure["cmdiag"]) == 3
    assert {"f1", "precision", "recall"} <= set(measure)
    assert report.json()["body"]["model"]["loaded"] is True

    # The final report is handed out once, as DeepDetect does.
    again = httpx.get(f"{server.url}/train", params=query, timeout=30)
    assert again.status_code == 404
    assert again.json()["status"]["dd_code"] == 1003

    photo = world.root / "images" / "astronaut.png"
    shutil.copy(samples["astronaut"], photo)
    classes = _predict(server.url, "diver", photo)
    assert classes[0]["cat"] == "astronaut"
    assert {c["cat"] for c in classes} == set(CATEGORIES)
    # The ImageNet service is untouched.
    assert _predict(server.url, "imageserv", photo)[0]["cat"].startswith("n")


def test_http_refuses_options_and_services_that_do_not_apply(
    server: Server, train_folder: Path, world: TrainWorld
) -> None:
    def train(body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{server.url}/train", json=body, timeout=30)

    unknown = train(
        {
            "service": "imageserv",
            "parameters": {"mllib": {"class_weights": [1.0, 2.0]}},
            "data": [str(train_folder)],
        }
    )
    assert unknown.status_code == 400
    assert "class_weights" in unknown.json()["status"]["dd_msg"]

    bad_measure = train(
        {"service": "imageserv", "parameters": {"output": {"measure": ["acc-5"]}}, "data": ["x"]}
    )
    assert bad_measure.status_code == 400
    assert "acc-5" in bad_measure.json()["status"]["dd_msg"]

    # str.isdigit() accepts superscripts that int() refuses: a 400 naming the job, not a 500.
    superscript = httpx.get(f"{server.url}/train?service=imageserv&job=\u00b2", timeout=30)
    assert superscript.status_code == 400
    assert "job" in superscript.json()["status"]["dd_msg"]

    backbone = train({"service": "imageserv", "data": [str(train_folder)]})
    assert backbone.status_code == 400
    assert "efficientnet_lite0" in backbone.json()["status"]["dd_msg"]

    httpx.put(
        f"{server.url}/services/outside",
        json={"parameters": {"mllib": {"nclasses": 2}}},
        timeout=30,
    ).raise_for_status()
    outside = train({"service": "outside", "data": [str(world.root)]})
    assert outside.status_code == 403
    assert "DEEPTAG_IMAGE_ROOTS" in outside.json()["status"]["dd_msg"]

    one_class = _folder(world.root, "http-one", {"astronaut": 6})
    failed = train({"service": "outside", "async": False, "data": [str(one_class)]})
    assert failed.status_code == 400
    assert "one category ('astronaut')" in failed.json()["status"]["dd_msg"]


def test_http_a_running_job_can_be_cancelled(server: Server, world: TrainWorld) -> None:
    big = world.root / "images" / "big"
    make_dataset(big, CATEGORIES, per_class=40, seed=11)
    httpx.put(
        f"{server.url}/services/slow",
        json={"parameters": {"mllib": {"nclasses": 3}}},
        timeout=30,
    ).raise_for_status()
    started = httpx.post(
        f"{server.url}/train", json={"service": "slow", "data": [str(big)]}, timeout=30
    )
    assert started.status_code == 201, started.text
    query = {"service": "slow", "job": started.json()["head"]["job"]}

    cancelled = httpx.delete(f"{server.url}/train", params=query, timeout=30)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["head"]["status"] == "terminated"
    gone = httpx.get(f"{server.url}/train", params=query, timeout=30)
    assert gone.status_code == 404
    assert not (world.repository / "slow_head").exists()
