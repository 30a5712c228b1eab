"""An analysis (orchestrator.analysis) as a stage of a Ray run: its own actor pool, between
the screen and classification, so it runs beside the classifier on other blocks.

Each actor builds the analysis once and reaches its models through a pool of the run's Tritons
with the run's retries, as the single-process indexer does; what it finds travels in the row's
``analyses`` column to the classify stage, which puts it in the document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy.typing as npt

from orchestrator.analysis.registry import BY_NAME, build
from orchestrator.distributed.rows import (
    DECODED_COLUMNS,
    Batch,
    Status,
    prepared_of,
    to_batch,
    to_rows,
)
from orchestrator.distributed.stages import _Stage
from orchestrator.runtime import triton_pool
from orchestrator.triton.endpoint import Endpoint


class Analyse(_Stage):
    """Decoded rows in, the same rows out with what one analysis found added."""

    def __init__(self, settings: Mapping[str, Any], endpoints: Sequence[str], name: str) -> None:
        super().__init__(settings)
        spec = BY_NAME[name]
        pool = triton_pool(
            self.settings, tuple(Endpoint.parse(e) for e in endpoints), retry=self.retry
        )
        self._run(pool.connect())
        self._closers.append(pool.close)
        self._run(pool.check_models(spec.models, spec.advice))
        self.pool = pool
        self.analysis = build(spec, self.settings)

    def __call__(self, batch: Mapping[str, npt.NDArray[Any]]) -> Batch:
        rows = to_rows(batch)
        ready = [row for row in rows if row["status"] == Status.READY]
        if ready:
            results = self._run(self.analysis.run([prepared_of(r) for r in ready], self.pool))
            for row, result in zip(ready, results, strict=True):
                found = json.loads(row.get("analyses") or "{}")
                found[self.analysis.name] = result.to_fields()
                row["analyses"] = json.dumps(found)
        return to_batch(rows, DECODED_COLUMNS)
