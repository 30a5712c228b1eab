"""Prometheus metrics of the orchestrator (Triton exports its own on its metrics port)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGES = ("fetch", "decode", "infer", "render", "sink")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

#: ``(stage, start, end)`` of every timed stage of the current call, for per-call figures (a
#: service's statistics); tasks the call spawns share the list. None outside such a call.
stage_spans: ContextVar[list[tuple[str, float, float]] | None] = ContextVar(
    "stage_spans", default=None
)


class Metrics:
    """One registry per app, so tests and several apps in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.images = Counter(
            "deeptag_images_processed",
            "Images that went through the pipeline, by outcome (tagged or failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.item_errors = Counter(
            "deeptag_item_errors",
            "Images that could not be tagged, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.metadata_warnings = Counter(
            "deeptag_metadata_warnings",
            "Photo metadata fields left out because they were unreadable or absurd (the image "
            "itself was still tagged), by field.",
            ["field"],
            registry=self.registry,
        )
        self.sink_failures = Counter(
            "deeptag_sink_failures",
            "Outputs a sink refused or could not receive, by sink kind.",
            ["sink"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "deeptag_stage_seconds",
            "Time spent per pipeline stage (per image for fetch/decode, per call otherwise).",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Histogram(
            "deeptag_request_seconds",
            "HTTP request latency by route.",
            ["route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

        # The folder watcher (`serve --watch`): what it saw, and what it changed in the index.
        self.watch_events = Counter(
            "deeptag_watch_events",
            "Filesystem events the folder watcher received (before debouncing).",
            registry=self.registry,
        )
        self.sync_changes = Counter(
            "deeptag_sync_changes",
            "Files the folder watcher's syncs applied, by change (new, moved, edited, removed, "
            "failed).",
            ["change"],
            registry=self.registry,
        )

        # Per Triton endpoint, so a pool's uneven or failing server shows.
        self.triton_requests = Counter(
            "deeptag_triton_requests",
            "Inference calls sent to each Triton endpoint, by outcome (ok or failed).",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.triton_seconds = Histogram(
            "deeptag_triton_request_seconds",
            "Latency of each Triton endpoint's inference calls.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.triton_ready = Gauge(
            "deeptag_triton_endpoint_ready",
            "1 while a Triton endpoint is in the pool, 0 while it is taken out.",
            ["endpoint"],
            registry=self.registry,
        )

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            end = time.perf_counter()
            self.stage_seconds.labels(stage=stage).observe(end - start)
            spans = stage_spans.get()
            if spans is not None:
                spans.append((stage, start, end))
