"""DeepDetect-style services: named entry points, each served by a Triton model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import ServiceConflict, ServiceNotFound

DEFAULT_SERVICE = "imageserv"


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
    created_at: float = field(default_factory=time.time)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "mllib": self.mllib,
            "mltype": "classification",
            "type": self.type,
            "model": self.model,
        }


@dataclass
class ServiceStats:
    predict_calls: int = 0
    images: int = 0
    failed: int = 0
    total_ms: float = 0.0

    def record(self, images: int, failed: int, elapsed_ms: float) -> None:
        self.predict_calls += 1
        self.images += images
        self.failed += failed
        self.total_ms += elapsed_ms

    def as_json(self) -> dict[str, Any]:
        average = self.total_ms / self.predict_calls if self.predict_calls else 0.0
        return {
            "predict_calls": self.predict_calls,
            "images": self.images,
            "failed": self.failed,
            "avg_predict_duration_ms": round(average, 3),
        }


class ServiceRegistry:
    def __init__(self) -> None:
        self._services: dict[str, tuple[ServiceSpec, ServiceStats]] = {}

    def add(self, spec: ServiceSpec) -> None:
        if spec.name in self._services:
            raise ServiceConflict(f"service '{spec.name}' already exists; DELETE it first")
        self._services[spec.name] = (spec, ServiceStats())

    def get(self, name: str) -> tuple[ServiceSpec, ServiceStats]:
        try:
            return self._services[name]
        except KeyError:
            known = ", ".join(sorted(self._services)) or "none"
            raise ServiceNotFound(f"service '{name}' does not exist (services: {known})") from None

    def remove(self, name: str) -> None:
        self.get(name)
        del self._services[name]

    def specs(self) -> list[ServiceSpec]:
        return [spec for spec, _ in self._services.values()]
