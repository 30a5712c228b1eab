"""The bundled tritonserver on CPU: labels through the whole path, batching, start-up errors."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.errors import ModelNotFound, PortInUse, TritonStartError
from orchestrator.pipeline import TagOptions
from orchestrator.runtime import tagging_session
from orchestrator.settings import Settings
from orchestrator.sources import classify_all
from orchestrator.triton.client import TritonClient
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port
from orchestrator.types import ItemFailure, Outcome, Prediction

pytestmark = pytest.mark.integration

CAT_CLASSES = {"tabby, tabby cat", "tiger cat", "Egyptian cat"}


def tag(settings: Settings, items: list[str], best: int = 5) -> list[Outcome]:
    async def go() -> list[Outcome]:
        endpoint = Endpoint.parse(settings.triton_url or "")
        async with tagging_session(settings, (endpoint,), path_roots=None) as session:
            return await session.tagger.tag(classify_all(items), TagOptions(best=best))

    return asyncio.run(go())


def test_known_photos_get_known_labels(settings: Settings, samples: dict[str, Path]) -> None:
    coffee, chelsea, rocket = tag(
        settings, [str(samples["coffee"]), str(samples["chelsea"]), str(samples["rocket"])]
    )
    assert isinstance(coffee, Prediction)
    assert isinstance(chelsea, Prediction)
    assert isinstance(rocket, Prediction)
    assert coffee.labels[0].words == "espresso"
    assert coffee.labels[0].score > 0.5
    assert chelsea.labels[0].words in CAT_CLASSES
    assert {"missile", "space shuttle"} & {label.words for label in rocket.labels[:3]}
    assert [label.score for label in coffee.labels] == sorted(
        (label.score for label in coffee.labels), reverse=True
    )


def test_bad_sources_fail_alone_and_name_themselves(
    settings: Settings, samples: dict[str, Path], bad_images: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.jpg"
    items = [
        str(bad_images["truncated"]),
        str(samples["coffee"]),
        str(bad_images["text"]),
        str(bad_images["bomb"]),
        str(missing),
        str(samples["chelsea"]),
    ]
    outcomes = tag(settings, items)
    assert [type(o).__name__ for o in outcomes] == [
        "ItemFailure",
        "Prediction",
        "ItemFailure",
        "ItemFailure",
        "ItemFailure",
        "Prediction",
    ]
    reasons = {}
    for item, outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, ItemFailure):
            assert item in outcome.error.message
            reasons[Path(item).name] = outcome.reason
    assert reasons == {
        "truncated.jpg": "corrupt",
        "notes.jpg": "not_an_image",
        "bomb.png": "too_large",
        "missing.jpg": "not_found",
    }
    coffee = outcomes[1]
    assert isinstance(coffee, Prediction)
    assert coffee.labels[0].words == "espresso"


def exec_and_inference_counts(metrics_url: str) -> tuple[float, float]:
    text = httpx.get(metrics_url, timeout=5).text
    counts = {"nv_inference_exec_count": 0.0, "nv_inference_count": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name not in counts:
            continue
        for sample in family.samples:
            if sample.labels.get("model") == "efficientnet_lite0":
                counts[family.name] += sample.value
    return counts["nv_inference_exec_count"], counts["nv_inference_count"]


def test_dynamic_batching_merges_concurrent_requests(triton: LocalTriton) -> None:
    image = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)

    async def burst() -> None:
        client = TritonClient(Endpoint.parse(triton.http_url), "efficientnet_lite0")
        await client.connect()
        try:
            await asyncio.gather(*(client.classify([image], top_k=1) for _ in range(64)))
        finally:
            await client.close()

    execs_before, inferences_before = exec_and_inference_counts(triton.metrics_url)
    asyncio.run(burst())
    execs, inferences = exec_and_inference_counts(triton.metrics_url)
    assert inferences - inferences_before == 64
    # 64 single-image requests ran as a handful of model executions, not 64.
    assert execs - execs_before <= 16


def test_grpc_protocol_gives_the_same_labels(triton: LocalTriton, samples: dict[str, Path]) -> None:
    settings = Settings(triton_url=f"grpc://{triton.grpc_url}")
    (coffee,) = tag(settings, [str(samples["coffee"])], best=1)
    assert isinstance(coffee, Prediction)
    assert coffee.labels[0].words == "espresso"


def test_busy_port_is_named(exported_model: Path, tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        ports = TritonPorts(free_port(), busy, free_port())
        with pytest.raises(PortInUse, match=f"port {busy} \\(grpc port\\)"):
            LocalTriton(exported_model, tmp_path, ports).start()


def test_missing_model_says_to_export(repository_copy: Path, tmp_path: Path) -> None:
    ports = TritonPorts(free_port(), free_port(), free_port())
    with pytest.raises(ModelNotFound, match="run `deeptag models export`"):
        LocalTriton(repository_copy, tmp_path, ports).start()


def test_a_server_that_fails_to_start_quotes_its_log(exported_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "repo"
    model = broken / "efficientnet_lite0"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.onnx").write_bytes(b"not an onnx model")
    source = (exported_model / "efficientnet_lite0" / "config.pbtxt").read_text()
    (model / "config.pbtxt").write_text(source)
    ports = TritonPorts(free_port(), free_port(), free_port())
    triton = LocalTriton(broken, tmp_path / "work", ports, start_timeout_s=60)
    with pytest.raises(TritonStartError, match="the end of its log") as info:
        triton.start()
    # The model's own load error is quoted, not just the server's last words.
    assert "efficientnet_lite0" in str(info.value)
    assert "UNAVAILABLE" in str(info.value)
    # Nothing is left listening once start() has failed.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", ports.http))
