"""DeepDetect-style services: named entry points, each served by a Triton model."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from orchestrator.errors import ServiceConflict, ServiceNotFound, quote_input
from orchestrator.metrics import stage_spans
from orchestrator.types import Outcome, Prediction

DEFAULT_SERVICE = "imageserv"
#: The stages DeepDetect calls the input "transform": reading, decoding, resizing.
TRANSFORM_STAGES = frozenset({"fetch", "decode"})


def service_key(name: str) -> str:
    """DeepDetect lower-cases service names, so ``ImageServ`` and ``imageserv`` are one."""
    return name.lower()


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    model: str
    description: str = "image classification"
    mllib: str = "triton"
    type: str = "supervised"
    width: int = 224
    height: int = 224
    nclasses: int = 1000
    #: What the client sent as ``model.repository`` (DeepDetect echoes it back).
    repository: str = ""
    #: The creation call's ``parameters`` as sent; DeepDetect returns them on GET.
    parameters: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class PredictCall:
    """What one ``/predict`` call to a service did, as its statistics count it."""

    images: int
    failed: int
    predict_ms: float
    transform_ms: float

    @property
    def inferred(self) -> int:
        return self.images - self.failed

    @property
    def succeeded(self) -> bool:
        # DeepDetect counts a call as failed when it raises; here one bad image never fails
        # the call, so a call fails when it raised or could tag none of its images.
        return self.inferred > 0


@dataclass
class ServiceStats:
    predict_success: int = 0
    predict_failure: int = 0
    #: Images that reached the model (DeepDetect's ``inference_count``).
    inference_count: int = 0
    images: int = 0
    failed: int = 0
    predict_total_ms: float = 0.0
    transform_total_ms: float = 0.0

    @property
    def predict_count(self) -> int:
        return self.predict_success + self.predict_failure

    def record(self, call: PredictCall) -> None:
        if call.succeeded:
            self.predict_success += 1
        else:
            self.predict_failure += 1
        self.inference_count += call.inferred
        self.images += call.images
        self.failed += call.failed
        self.predict_total_ms += call.predict_ms
        self.transform_total_ms += call.transform_ms

    def observe(self) -> PredictObserver:
        return PredictObserver(self)

    def _average(self, total: float) -> float:
        # DeepDetect reports -1 until the first call.
        return total / self.predict_count if self.predict_count else -1.0

    def as_json(self) -> dict[str, Any]:
        """deeptag's own summary (``body.stats``)."""
        average = self._average(self.predict_total_ms)
        return {
            "predict_calls": self.predict_count,
            "images": self.images,
            "failed": self.failed,
            "avg_predict_duration_ms": round(max(average, 0.0), 3),
        }

    def service_stats(self) -> dict[str, Any]:
        """DeepDetect's ``body.service_stats``: durations per call, in ms and in seconds."""
        predict_ms = round(self._average(self.predict_total_ms), 3)
        transform_ms = round(self._average(self.transform_total_ms), 3)
        return {
            "inference_count": self.inference_count,
            "predict_success": self.predict_success,
            "predict_failure": self.predict_failure,
            "predict_count": self.predict_count,
            "avg_batch_size": round(self._average(float(self.inference_count)), 3),
            "avg_predict_duration_ms": predict_ms,
            "avg_transform_duration_ms": transform_ms,
            "avg_predict_duration_s": round(predict_ms / 1000, 6),
            "avg_transform_duration_s": round(transform_ms / 1000, 6),
            "total_predict_duration_ms": round(self.predict_total_ms, 3),
            "total_transform_duration_ms": round(self.transform_total_ms, 3),
            # DeepDetect's older names, in seconds; dd_bench and dashboards still read them.
            "avg_predict_duration": round(predict_ms / 1000, 6),
            "avg_transform_duration": round(transform_ms / 1000, 6),
        }


def covered_ms(spans: Iterable[tuple[float, float]]) -> float:
    """Wall time covered by possibly overlapping ``(start, end)`` intervals, in ms (pure).

    Images are fetched and decoded concurrently, so the call's transform time is the time during
    which at least one of them was being transformed, not the sum of their times.
    """
    total = 0.0
    current_start: float | None = None
    current_end = 0.0
    for start, end in sorted(spans):
        if current_start is None or start > current_end:
            if current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_start is not None:
        total += current_end - current_start
    return total * 1000


class PredictObserver:
    """Times one ``/predict`` call and records it in its service's statistics on exit.

    A call that leaves the block without :meth:`tagged` (an error, a cancelled request) is
    recorded as a failure.
    """

    def __init__(self, stats: ServiceStats) -> None:
        self._stats = stats
        self._spans: list[tuple[str, float, float]] = []
        self._started = 0.0
        self._outcomes: Sequence[Outcome] | None = None
        self._predict_ms = 0.0
        self._token: Any = None

    def __enter__(self) -> PredictObserver:
        self._token = stage_spans.set(self._spans)
        self._started = time.perf_counter()
        return self

    def tagged(self, outcomes: Sequence[Outcome]) -> float:
        """Mark the images as classified; returns the call's time so far in ms."""
        self._outcomes = outcomes
        self._predict_ms = (time.perf_counter() - self._started) * 1000
        return self._predict_ms

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stage_spans.reset(self._token)
        transform_ms = covered_ms(
            (start, end) for stage, start, end in self._spans if stage in TRANSFORM_STAGES
        )
        if self._outcomes is None:
            images = failed = 0
            predict_ms = (time.perf_counter() - self._started) * 1000
        else:
            images = len(self._outcomes)
            failed = sum(not isinstance(o, Prediction) for o in self._outcomes)
            predict_ms = self._predict_ms
        self._stats.record(PredictCall(images, failed, predict_ms, transform_ms))


class ServiceRegistry:
    def __init__(self) -> None:
        self._services: dict[str, tuple[ServiceSpec, ServiceStats]] = {}

    def add(self, spec: ServiceSpec) -> None:
        key = service_key(spec.name)
        if key in self._services:
            raise ServiceConflict(f"service '{spec.name}' already exists; DELETE it first")
        self._services[key] = (spec, ServiceStats())

    def get(self, name: str) -> tuple[ServiceSpec, ServiceStats]:
        try:
            return self._services[service_key(name)]
        except KeyError:
            known = ", ".join(sorted(self._services)) or "none"
            raise ServiceNotFound(
                f"service '{quote_input(name)}' does not exist (services: {known})"
            ) from None

    def remove(self, name: str) -> None:
        self.get(name)
        del self._services[service_key(name)]

    def entries(self) -> list[tuple[ServiceSpec, ServiceStats]]:
        return list(self._services.values())


def service_json(
    spec: ServiceSpec,
    stats: ServiceStats,
    *,
    with_jobs: bool,
    labels: Sequence[str] | None = None,
    repository: str = "",
) -> dict[str, Any]:
    """A service as DeepDetect describes it (``GET /services/{name}`` body, ``/info`` entries).

    DeepDetect's fields come first; ``model`` (the Triton model) and ``stats`` are deeptag's.
    ``model_stats`` stays empty: Triton does not report a model's parameters or GFLOPs.
    """
    sent = spec.parameters
    parameters = {
        "input": {
            **_mapping(sent.get("input")),
            "connector": "image",
            "width": spec.width,
            "height": spec.height,
        },
        "mllib": {**_mapping(sent.get("mllib")), "nclasses": spec.nclasses},
        "output": _mapping(sent.get("output")),
    }
    body: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "mllib": spec.mllib,
        "mltype": "classification",
        "parameters": parameters,
        "type": spec.type,
        "predict": True,
        "training": False,
        "model_stats": {},
        "repository": spec.repository or repository,
        "width": spec.width,
        "height": spec.height,
        "service_stats": stats.service_stats(),
        "model": spec.model,
        "stats": stats.as_json(),
    }
    if with_jobs:
        # Triton serves trained models only: there are never training jobs.
        body["jobs"] = []
    if labels is not None:
        body["labels"] = list(labels)
    return body


def _mapping(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}
