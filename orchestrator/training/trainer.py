"""One training run: folder → embeddings → fitted head → new model version → served.

Shared by ``deeptag train`` and ``POST /train``; cancelling the task stops it between
batches, before anything is written to the model repository.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.errors import SearchBackendError, TrainingDataError, quote_input
from orchestrator.runtime import TritonHandle
from orchestrator.settings import Settings
from orchestrator.sources import is_under
from orchestrator.training.dataset import (
    BACKGROUND_LABEL,
    check_categories,
    check_counts,
    scan,
)
from orchestrator.training.embed import (
    EmbedProgress,
    SkippedFile,
    cache_for,
    embed_files,
)
from orchestrator.training.fit import Evaluation, FitOptions, ProbeFit, fit_probe
from orchestrator.training.head_export import head_model
from orchestrator.training.repository import ProbeRepository, check_name
from orchestrator.training.serving import Publication, publish
from orchestrator.triton.client import Classifier

#: Index documents looked at to draw background images from.
BACKGROUND_POOL = 1000


@dataclass(frozen=True)
class TrainRequest:
    name: str
    folder: Path
    fit: FitOptions = field(default_factory=FitOptions)
    background: int = 0
    #: The class count a service was created with (DeepDetect's ``mllib.nclasses``), if any.
    nclasses: int | None = None
    #: Folders the files must resolve into (the server's image roots); None: anywhere.
    roots: tuple[Path, ...] | None = None


@dataclass
class TrainProgress:
    """What a running job is doing; read by ``GET /train`` and the CLI's progress line."""

    phase: str = "starting"
    done: int = 0
    total: int = 0
    cached: int = 0
    skipped: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "images_done": self.done,
            "images_total": self.total,
            "cached": self.cached,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class TrainReport:
    name: str
    version: int
    labels: tuple[str, ...]
    counts: dict[str, int]
    skipped: tuple[SkippedFile, ...]
    fit: ProbeFit
    images: int
    cached: int
    embed_s: float
    fit_s: float
    total_s: float
    publication: Publication

    @property
    def evaluation(self) -> Evaluation | None:
        return self.fit.evaluation


async def _background(
    settings: Settings, wanted: int, exclude: set[str], seed: int | None
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Embeddings of ``wanted`` images of the user's index that are not training images."""
    from orchestrator.search.factory import open_backend

    try:
        backend = await open_backend(settings)
    except SearchBackendError as e:
        raise TrainingDataError(f"background images come from the search index: {e}") from e
    try:
        page = await backend.search("*", size=BACKGROUND_POOL)
        ids = [hit.document.id for hit in page.hits if hit.document.id not in exclude]
        random.Random(seed).shuffle(ids)
        rows = []
        for doc_id in ids:
            document = await backend.get(doc_id)
            if document is not None and document.embedding is not None:
                rows.append(np.asarray(document.embedding, dtype=np.float32))
            if len(rows) == wanted:
                break
    finally:
        await backend.close()
    if len(rows) < wanted:
        raise TrainingDataError(
            f"background: asked for {wanted} images, the search index has {len(rows)} with "
            "embeddings besides the training images; index more images (`deeptag index`) "
            "or ask for fewer"
        )
    return np.stack(rows)


def _report_json(
    request: TrainRequest, fit: ProbeFit, counts: dict[str, int], seconds: float
) -> dict[str, Any]:
    return {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dataset": str(request.folder),
        "counts": counts,
        "test_split": request.fit.test_split,
        "seconds": round(seconds, 3),
        "measures": measures_json(fit),
    }


def measures_json(fit: ProbeFit, wanted: frozenset[str] | None = None) -> dict[str, Any]:
    """DeepDetect's ``body.measure``: ``acc``, ``f1`` (+ precision, recall), ``mcll``,
    ``cmdiag``, ``cmfull``, ``mcc``, with ``iteration`` and ``train_loss`` always."""
    out: dict[str, Any] = {"iteration": fit.iterations, "train_loss": round(fit.train_loss, 6)}
    evaluation = fit.evaluation
    if evaluation is None:
        return out

    def want(key: str) -> bool:
        return wanted is None or not wanted or key in wanted

    rows = [[round(v / max(1, sum(row)), 6) for v in row] for row in evaluation.confusion]
    if want("acc"):
        out["acc"] = round(evaluation.accuracy, 6)
    if want("f1") or want("precision") or want("recall"):
        out.update(
            f1=round(evaluation.f1, 6),
            precision=round(evaluation.precision, 6),
            recall=round(evaluation.recall, 6),
        )
    if want("mcll"):
        out["mcll"] = round(evaluation.log_loss, 6)
    if want("mcc"):
        out["mcc"] = round(evaluation.mcc, 6)
    if want("cmdiag"):
        out["cmdiag"] = [rows[i][i] for i in range(len(rows))]
    if want("cmfull"):
        out["cmfull"] = [{label: row} for label, row in zip(fit.labels, rows, strict=True)]
    if want("cmdiag") or want("cmfull"):
        out["labels"] = list(fit.labels)
    out["test_size"] = evaluation.test_size
    return out


def _within_roots(
    files: list[Path], roots: tuple[Path, ...] | None
) -> tuple[list[Path], tuple[SkippedFile, ...]]:
    """The files inside ``roots`` (links followed), and the others as skipped."""
    if roots is None:
        return files, ()
    kept, refused = [], []
    for path in files:
        if is_under(path.resolve(), roots):
            kept.append(path)
        else:
            refused.append(
                SkippedFile(
                    str(path),
                    "refused",
                    f"{quote_input(str(path))}: links outside the image roots "
                    "(DEEPTAG_IMAGE_ROOTS)",
                )
            )
    return kept, tuple(refused)


async def train(
    request: TrainRequest,
    settings: Settings,
    triton: TritonHandle,
    backbone: Classifier,
    progress: TrainProgress | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
) -> TrainReport:
    """Run one training; ``backbone`` is connected to the serving image model."""
    started = time.perf_counter()
    progress = progress or TrainProgress()
    name = check_name(request.name)
    repository = ProbeRepository(settings.model_repository)
    repository.check_free(name)
    layout = scan(request.folder)
    check_categories(layout.labels, with_background=request.background > 0)
    outcomes = len(layout.labels) + (1 if request.background > 0 else 0)
    if request.nclasses is not None and request.nclasses != outcomes:
        background = f" and the '{BACKGROUND_LABEL}' class" if request.background > 0 else ""
        raise TrainingDataError(
            f"the service was created with nclasses {request.nclasses}, but the training "
            f"folder has {len(layout.labels)} categories{background}: "
            f"{quote_input(', '.join(layout.labels))}"
        )
    if backbone.info is None:
        await backbone.connect()
    assert backbone.info is not None
    cache = cache_for(settings.data_dir, backbone.model, backbone.info.version)
    files, refused = _within_roots(
        [path for folder in layout.classes for path in folder.files], request.roots
    )
    label_of = {path: i for i, folder in enumerate(layout.classes) for path in folder.files}
    progress.phase, progress.total = "embedding", len(files)

    def notify(phase: str | None = None) -> None:
        if phase is not None:
            progress.phase = phase
        if on_progress is not None:
            on_progress(progress)

    def embedded(step: EmbedProgress) -> None:
        progress.done, progress.cached, progress.skipped = step.done, step.cached, step.skipped
        notify()

    result = await embed_files(
        files,
        backbone,
        cache,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        batch_size=settings.infer_batch_size,
        on_progress=embedded,
    )
    targets = [label_of[path] for path in result.paths]
    counts = {label: targets.count(i) for i, label in enumerate(layout.labels)}
    check_counts(counts)
    labels = layout.labels
    vectors = result.vectors
    if request.background > 0:
        notify("background")
        extra = await _background(
            settings, request.background, set(result.sha256), request.fit.seed
        )
        labels = (*labels, BACKGROUND_LABEL)
        counts[BACKGROUND_LABEL] = len(extra)
        vectors = np.concatenate([vectors, extra])
        targets += [len(labels) - 1] * len(extra)
    embed_s = time.perf_counter() - started
    notify("fitting")
    fit_started = time.perf_counter()
    fit = await asyncio.to_thread(
        fit_probe, vectors, np.asarray(targets, dtype=np.int64), labels, request.fit
    )
    fit_s = time.perf_counter() - fit_started
    notify("exporting")
    # Written without awaiting: a cancellation cannot leave a half-written version behind.
    version = repository.write_version(
        name,
        backbone.model,
        head_model(fit.weights, fit.bias),
        labels,
        _report_json(request, fit, counts, time.perf_counter() - started),
    )
    notify("loading")
    publication = await publish(settings, triton, name)
    progress.phase = "finished"
    return TrainReport(
        name=name,
        version=version,
        labels=labels,
        counts=counts,
        skipped=refused + result.skipped,
        fit=fit,
        images=len(result.paths),
        cached=result.cached,
        embed_s=embed_s,
        fit_s=fit_s,
        total_s=time.perf_counter() - started,
        publication=publication,
    )
