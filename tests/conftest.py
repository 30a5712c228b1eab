"""Fixtures shared by every test layer: sample photos, bad inputs, a real local Triton."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from orchestrator.runtime import served_models, shim_options
from orchestrator.samples import sample_dir
from orchestrator.settings import Settings
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port
from tests.environment import NO_LINGERING

# The suite never leaves a Triton behind: commands started without one stop theirs.
os.environ.update(NO_LINGERING)

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_REPOSITORY = REPO_ROOT / "model_repository"
ONNX_PATH = MODEL_REPOSITORY / "efficientnet_lite0" / "1" / "model.onnx"


@pytest.fixture(scope="session")
def samples() -> dict[str, Path]:
    folder = sample_dir()
    return {
        "coffee": folder / "coffee.png",
        "chelsea": folder / "chelsea.png",
        "rocket": folder / "rocket.jpg",
        "astronaut": folder / "astronaut.png",
        "motorcycle": folder / "motorcycle_left.png",
    }


@pytest.fixture(scope="session")
def bad_images(
    tmp_path_factory: pytest.TempPathFactory, samples: dict[str, Path]
) -> dict[str, Path]:
    """A truncated JPEG, a text file named like an image, and a decompression bomb."""
    folder = tmp_path_factory.mktemp("bad")
    jpeg = samples["rocket"].read_bytes()
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(jpeg[: len(jpeg) // 3])
    text = folder / "notes.jpg"
    text.write_text("this is not an image\n" * 20)
    bomb = folder / "bomb.png"
    # 100 megapixels that compress to a few kB: over the default 50 MP limit.
    Image.new("1", (10_000, 10_000)).save(bomb, optimize=True)
    return {"truncated": truncated, "text": text, "bomb": bomb}


def jpeg_bytes(path: Path, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.open(path).convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="session")
def exported_model() -> Path:
    if not ONNX_PATH.is_file():
        pytest.fail(f"{ONNX_PATH} is missing: run `make setup` (deeptag models export)")
    return MODEL_REPOSITORY


@pytest.fixture(scope="session")
def triton(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    """One real tritonserver for the whole session, on free ports, laid out as `deeptag serve`
    lays out its own."""
    ports = TritonPorts(free_port(), free_port(), free_port())
    work = tmp_path_factory.mktemp("triton")
    # Every model exported, as `deeptag serve` loads them: the analyses' tests need theirs.
    only = served_models(Settings(model_repository=exported_model), every_model=True)
    with LocalTriton(
        exported_model, work, ports, shim=shim_options(Settings()), only=only
    ) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, triton: LocalTriton) -> Settings:
    """Settings pointing at the session's Triton, with state in a temporary folder."""
    return Settings(
        triton_url=triton.http_url,
        data_dir=tmp_path / "data",
        model_repository=MODEL_REPOSITORY,
    )


@pytest.fixture
def repository_copy(tmp_path: Path) -> Path:
    """A copy of the model repository without the exported ONNX file."""
    target = tmp_path / "model_repository"
    shutil.copytree(MODEL_REPOSITORY, target, ignore=shutil.ignore_patterns("*.onnx"))
    return target


@pytest.fixture(scope="session")
def elasticsearch_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An Elasticsearch 8 API: the one at DEEPTAG_ES_URL if set, else noida-db started here."""
    from tests.outage_support import Noida

    if os.environ.get("DEEPTAG_ES_URL"):
        yield os.environ["DEEPTAG_ES_URL"]
        return
    if not (Path(sys.executable).parent / "noida-db").exists():
        pytest.fail("noida-db is not installed: run `make setup` (dev extra)")
    noida = Noida(free_port(), tmp_path_factory.mktemp("noida"))
    noida.start()
    try:
        yield noida.url
    finally:
        noida.stop()


@dataclass
class DeeptagServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


ServerFactory = Callable[[dict[str, str]], DeeptagServer]


@pytest.fixture(scope="session")
def start_deeptag(
    triton: LocalTriton, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerFactory]:
    """Start `deeptag serve` subprocesses with extra environment; all are stopped at the end."""
    started: list[DeeptagServer] = []

    def start(env: dict[str, str]) -> DeeptagServer:
        port = free_port()
        data_dir = tmp_path_factory.mktemp("serve")
        log_path = data_dir / "serve.log"
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")},
            "DEEPTAG_TRITON_URL": triton.http_url,
            "DEEPTAG_DATA_DIR": str(data_dir),
            **env,
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "orchestrator",
                    "serve",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                cwd=REPO_ROOT,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = DeeptagServer(f"http://127.0.0.1:{port}", process, log_path)
        started.append(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"deeptag serve exited early:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                time.sleep(0.2)
        pytest.fail(f"deeptag serve was not healthy within 60s:\n{log_path.read_text()}")

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
