"""Training jobs of the HTTP server: asyncio tasks numbered per server, as DeepDetect does.

A job's final report is handed out once (``GET /train`` after it finished), then the job is
forgotten; ``DELETE /train`` cancels a running one. One job per service at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import JobNotFound, TrainingConflict, quote_input
from orchestrator.server.services import service_key
from orchestrator.training.trainer import TrainProgress, TrainReport


@dataclass
class TrainJob:
    id: int
    service: str
    task: asyncio.Task[TrainReport]
    progress: TrainProgress
    measures: frozenset[str]
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


class JobRegistry:
    def __init__(self) -> None:
        self._jobs: dict[tuple[str, int], TrainJob] = {}
        self._ids = itertools.count(1)

    def start(
        self,
        service: str,
        work: Coroutine[Any, Any, TrainReport],
        progress: TrainProgress,
        measures: frozenset[str],
    ) -> TrainJob:
        key = service_key(service)
        running = [j for (s, _), j in self._jobs.items() if s == key and not j.task.done()]
        if running:
            work.close()
            raise TrainingConflict(
                f"service '{key}' is already training (job {running[0].id}): wait for it "
                f"(GET /train?service={key}&job={running[0].id}) or cancel it (DELETE /train)"
            )
        job = TrainJob(next(self._ids), key, asyncio.ensure_future(work), progress, measures)
        self._jobs[(key, job.id)] = job
        return job

    def get(self, service: str, job_id: int) -> TrainJob:
        try:
            return self._jobs[(service_key(service), job_id)]
        except KeyError:
            raise JobNotFound(
                f"no training job {job_id} on service '{quote_input(service)}' (a finished "
                "job's report is given once, then the job is gone)"
            ) from None

    def forget(self, job: TrainJob) -> None:
        self._jobs.pop((job.service, job.id), None)

    async def cancel(self, job: TrainJob) -> None:
        job.task.cancel()
        await asyncio.gather(job.task, return_exceptions=True)
        self.forget(job)

    async def close(self) -> None:
        for job in list(self._jobs.values()):
            await self.cancel(job)
