"""Analyses run as stages beside classification: their fields reach predictions, documents and
/predict's JSON; they run at the same time as the classifier, only when asked; the larger view
OCR reads is decoded only then; and indexing a folder again with an analysis turned on adds
what it finds to the documents without classifying them again. Fakes stand in for Triton."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from orchestrator.analysis.registry import specs
from orchestrator.errors import BadRequest
from orchestrator.fetch import FetchPolicy, SourceReader
from orchestrator.indexing import Indexer, IndexOptions
from orchestrator.pipeline import Tagger, TagOptions
from orchestrator.responses import prediction_json
from orchestrator.samples import sample_dir
from orchestrator.search.base import EMBEDDING_DIMS
from orchestrator.search.embedded import EmbeddedIndex
from orchestrator.sources import classify_all
from orchestrator.triton.client import Classification
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.model_info import ModelInfo
from orchestrator.types import Label, Prediction, PreparedImage

INFO = ModelInfo("fake", "1", 8, (224, 224, 3), ("probs",), 3)


class FakeClassifier:
    """The image model: one label per image; counts its calls; waits for ``gate`` if set."""

    model = "fake"
    info: ModelInfo | None = INFO

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.calls = 0
        self.gate = gate

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint.parse("http://127.0.0.1:9")

    async def connect(self) -> ModelInfo:
        return INFO

    async def classify(
        self,
        pixels: Sequence[npt.NDArray[np.uint8]],
        top_k: int,
        with_embedding: bool = True,
        with_probs: bool = False,
    ) -> Classification:
        self.calls += 1
        if self.gate is not None:
            # Released only by the analysis: the two run at the same time or this times out.
            await asyncio.wait_for(self.gate.wait(), 5)
        labels = [(Label("n02123045 tabby", 0.9),) for _ in pixels]
        embeddings = np.ones((len(pixels), EMBEDDING_DIMS), np.float32) if with_embedding else None
        return Classification(labels, embeddings)

    async def class_names(self) -> tuple[str, ...]:
        return ("a", "b", "c")

    async def close(self) -> None:
        pass


@dataclass(frozen=True)
class Found:
    fields: dict[str, Any]

    def to_fields(self) -> dict[str, Any]:
        return dict(self.fields)


class FakeOcr:
    """Reads "WORDS <width>" from each image's view; opens ``gate`` when it starts."""

    name = "ocr"

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.seen: list[PreparedImage] = []
        self.gate = gate

    async def run(self, images: Sequence[PreparedImage], triton: Any) -> list[Found]:
        if self.gate is not None:
            self.gate.set()
        self.seen.extend(images)
        return [
            Found({} if image.view is None else {"text": f"WORDS {image.view.shape[1]}"})
            for image in images
        ]


class Caller:
    async def infer(
        self, model: str, inputs: Mapping[str, Any], outputs: Sequence[str]
    ) -> dict[str, Any]:
        raise AssertionError("the fakes call no model")

    async def check_models(self, models: Sequence[str], advice: str) -> None:
        pass


def tagger(classifier: FakeClassifier, http: httpx.AsyncClient, *analyses: FakeOcr) -> Tagger:
    reader = SourceReader(http, FetchPolicy(max_bytes=50_000_000))
    return Tagger(reader, classifier, 100_000_000, analyses=analyses, caller=Caller())


def photos() -> list[Path]:
    return sorted(sample_dir().glob("*.jpg"))[:3]


def test_an_analysis_runs_beside_classification_and_its_fields_reach_the_prediction() -> None:
    async def main() -> list[Any]:
        gate = asyncio.Event()
        async with httpx.AsyncClient() as http:
            tag = tagger(FakeClassifier(gate), http, FakeOcr(gate))
            sources = classify_all([str(p) for p in photos()])
            return await tag.tag(sources, TagOptions(analyses=frozenset({"ocr"})))

    outcomes = asyncio.run(main())
    assert all(isinstance(o, Prediction) for o in outcomes)
    for outcome in outcomes:
        assert isinstance(outcome, Prediction)
        text = outcome.analyses["ocr"]["text"]
        # The view is the whole photo at most 960 pixels long, never the 224 crop.
        assert text.startswith("WORDS ")
        assert 224 < int(text.split()[1]) <= 960
        assert prediction_json(outcome)["text"] == text


def test_without_the_option_no_analysis_runs_and_no_view_is_decoded() -> None:
    async def main() -> tuple[list[Any], FakeOcr]:
        ocr = FakeOcr()
        async with httpx.AsyncClient() as http:
            tag = tagger(FakeClassifier(), http, ocr)
            outcomes = await tag.tag(classify_all([str(p) for p in photos()]), TagOptions())
            prepared = await tag.prepare_all(classify_all([str(photos()[0])]), ())
        assert isinstance(prepared[0], PreparedImage)
        assert prepared[0].view is None
        return outcomes, ocr

    outcomes, ocr = asyncio.run(main())
    assert ocr.seen == []
    assert all(isinstance(o, Prediction) and o.analyses == {} for o in outcomes)
    assert all("text" not in prediction_json(o) for o in outcomes)


def test_an_unknown_analysis_is_refused_by_name() -> None:
    with pytest.raises(BadRequest, match="unknown analysis faces"):
        specs(["ocr", "faces"])


def test_indexing_again_with_an_analysis_adds_its_fields_without_classifying(
    tmp_path: Path,
) -> None:
    async def run(classifier: FakeClassifier, *analyses: FakeOcr) -> Any:
        backend = await EmbeddedIndex.open(tmp_path / "index", writer=True)
        try:
            async with httpx.AsyncClient() as http:
                indexer = Indexer(
                    tagger(classifier, http, *analyses), INFO, backend, IndexOptions()
                )
                stats = await indexer.run(classify_all([str(p) for p in photos()]))
            page = await backend.search("*", size=10)
            return stats, {hit.document.id: hit.document for hit in page.hits}
        finally:
            await backend.close()

    first = FakeClassifier()
    stats, before = asyncio.run(run(first))
    assert (stats.indexed, first.calls) == (3, 1)
    assert all(d.analyses == {} for d in before.values())

    again, ocr = FakeClassifier(), FakeOcr()
    stats, after = asyncio.run(run(again, ocr))
    assert again.calls == 0, "the classifier ran again"
    assert (stats.indexed, stats.analysed, stats.skipped) == (0, 3, 3)
    for doc_id, document in after.items():
        assert document.analyses["ocr"]["text"].startswith("WORDS ")
        # The rest of the document is as it was.
        assert (document.tags, document.indexed_at) == (
            before[doc_id].tags,
            before[doc_id].indexed_at,
        )

    third, ocr3 = FakeClassifier(), FakeOcr()
    stats, _ = asyncio.run(run(third, ocr3))
    assert (third.calls, ocr3.seen, stats.analysed) == (0, [], 0), "analysed twice"


def test_a_command_starts_triton_without_the_models_of_analyses_left_off(tmp_path: Path) -> None:
    from orchestrator.runtime import served_models
    from orchestrator.settings import Settings

    for name in ("efficientnet_lite0", "minilm_l6", "ocr_det", "ocr_rec", "open_nsfw"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.pbtxt").write_text(f'name: "{name}"')
    plain = Settings(model_repository=tmp_path)
    assert served_models(plain) == {"efficientnet_lite0", "minilm_l6"}
    with_ocr = Settings(model_repository=tmp_path, ocr=True)
    assert served_models(with_ocr) == {"efficientnet_lite0", "minilm_l6", "ocr_det", "ocr_rec"}
    # A server may be asked for any analysis by /predict: it loads every model exported, and
    # starts without those that are not (the extra was not installed).
    (tmp_path / "open_nsfw" / "1").mkdir()
    (tmp_path / "open_nsfw" / "1" / "model.onnx").write_bytes(b"onnx")
    served = {"efficientnet_lite0", "minilm_l6", "open_nsfw"}
    assert served_models(plain, every_model=True) == served
