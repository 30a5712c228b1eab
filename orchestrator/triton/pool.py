"""The image model on several Tritons: least-in-flight routing, health checks, failover.

``DEEPTAG_TRITON_URL=http://a:8000,http://b:8000`` makes one :class:`TritonPool`. Each batch
goes to the ready endpoint with the fewest requests in flight, so a slow or busy server gets
less work without any tuning. An endpoint that fails (refused, reset, timed out) is taken out
at once and its batch is retried on another; a background probe puts it back when it answers
ready again, after checking it still serves the same model version. When every endpoint is
down, a bulk run's calls wait (:mod:`orchestrator.retry`) instead of failing; the HTTP server's
calls use no window and answer 503 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from orchestrator.errors import DeeptagError, ModelMismatch, TritonUnavailable
from orchestrator.metrics import Metrics
from orchestrator.retry import NO_RETRY, RetryPolicy, Waiting, not_waiting, ride_out
from orchestrator.triton.client import (
    Classification,
    TritonClient,
    batches,
    merged,
)
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.model_info import ModelInfo

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Seconds between probes of an endpoint that is out; ready ones are probed every
#: ``_READY_PROBE_EVERY`` ticks, which is how a server that hangs is noticed between batches.
PROBE_INTERVAL_S = 1.0
_READY_PROBE_EVERY = 5


def mismatch(a: Endpoint, a_info: ModelInfo, b: Endpoint, b_info: ModelInfo) -> str | None:
    """Why two endpoints' models cannot share one pool, or None when they can (pure).

    The batch size may differ (a GPU box may batch more); version, classes, input shape and
    outputs may not: documents would differ by the server that happened to tag them.
    """

    def shape(info: ModelInfo) -> str:
        dims = "x".join(map(str, info.input_shape))
        return f"version {info.version}, {info.num_classes} classes, input {dims}"

    same = (a_info.version, a_info.num_classes, a_info.input_shape, set(a_info.outputs)) == (
        b_info.version,
        b_info.num_classes,
        b_info.input_shape,
        set(b_info.outputs),
    )
    if same:
        return None
    return (
        f"Triton at {a} serves model '{a_info.name}' {shape(a_info)}, but Triton at {b} serves "
        f"{shape(b_info)}: every endpoint of DEEPTAG_TRITON_URL must serve the same model version"
    )


@dataclass(eq=False)
class _Slot:
    """One endpoint's client and what the pool knows about it."""

    client: TritonClient
    ready: bool = False
    in_flight: int = 0
    problem: str = "not connected yet"
    #: Set when the endpoint serves another version of the model: it is never used.
    refused: str | None = None
    probing: bool = False

    @property
    def name(self) -> str:
        return str(self.client.endpoint)


class TritonPool:
    """The image model served by one or several Tritons (a :class:`Classifier`)."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        model: str,
        timeout_s: float = 60.0,
        *,
        retry: RetryPolicy = NO_RETRY,
        on_wait: Waiting = not_waiting,
        metrics: Metrics | None = None,
        probe_interval_s: float = PROBE_INTERVAL_S,
        shared_memory: bool = False,
    ) -> None:
        if not endpoints:
            raise ValueError("a Triton pool needs at least one endpoint")
        self.endpoints = tuple(endpoints)
        self.model = model
        self.timeout_s = timeout_s
        self.retry = retry
        self.on_wait = on_wait
        self.metrics = metrics or Metrics()
        self.probe_interval_s = probe_interval_s
        self.info: ModelInfo | None = None
        self.shared_memory = shared_memory
        self._slots = [_Slot(self._client(e)) for e in self.endpoints]
        self._turn = itertools.count()
        self._class_names: tuple[str, ...] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[None]] = set()
        # Clients replaced after an outage; closed last, since a late call may still use one.
        self._retired: list[TritonClient] = []

    def _client(self, endpoint: Endpoint) -> TritonClient:
        return TritonClient(endpoint, self.model, self.timeout_s, self.shared_memory)

    @property
    def endpoint(self) -> Endpoint:
        """The first endpoint, for messages that name one."""
        return self.endpoints[0]

    def ready_endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(s.client.endpoint for s in self._slots if s.ready)

    async def connect(self) -> ModelInfo:
        """Connect to every endpoint and check they serve the same model.

        Endpoints that cannot be reached now are left to the probe (the pool starts with the
        others); a model missing or different on a reachable one is a configuration error.
        """
        outcomes = await asyncio.gather(
            *(slot.client.connect() for slot in self._slots), return_exceptions=True
        )
        connected: list[tuple[_Slot, ModelInfo]] = []
        for slot, outcome in zip(self._slots, outcomes, strict=True):
            if isinstance(outcome, ModelInfo):
                connected.append((slot, outcome))
            elif isinstance(outcome, TritonUnavailable):
                slot.problem = outcome.message
            elif isinstance(outcome, BaseException):
                await self.close()
                raise outcome
        if not connected:
            await self.close()
            raise self._all_down()
        first, info = connected[0]
        for slot, other in connected[1:]:
            if problem := mismatch(first.client.endpoint, info, slot.client.endpoint, other):
                await self.close()
                raise ModelMismatch(problem)
        self.info = replace(
            info,
            max_batch_size=min(i.max_batch_size for _, i in connected),
            instances=sum(i.instances for _, i in connected),
        )
        for slot, _ in connected:
            self._set_ready(slot, True)
        for slot in self._slots:
            if not slot.ready:
                self._set_ready(slot, False)
                log.warning("%s is out of the pool until it answers: %s", slot.name, slot.problem)
        self._prober = asyncio.create_task(self._probe_forever())
        return self.info

    async def classify(
        self,
        pixels: Sequence[npt.NDArray[np.uint8]],
        top_k: int,
        with_embedding: bool = True,
        with_probs: bool = False,
    ) -> Classification:
        """Like :meth:`TritonClient.classify`; each batch may go to another endpoint."""
        if not pixels:
            return Classification(labels=[], embeddings=None)
        if self.info is None:
            raise TritonUnavailable("TritonPool.classify() called before connect()")
        names = await self.class_names() if with_probs else None

        def batch(
            chunk: npt.NDArray[np.uint8],
        ) -> Callable[[TritonClient], Awaitable[Classification]]:
            return lambda client: client.classify_batch(chunk, top_k, with_embedding, names)

        results: list[Classification] = await asyncio.gather(
            *(self.call(batch(chunk)) for chunk in batches(pixels, self.info.max_batch_size))
        )
        return merged(results, with_embedding, with_probs=names is not None)

    async def infer(
        self, model: str, inputs: Mapping[str, npt.NDArray[Any]], outputs: Sequence[str]
    ) -> dict[str, npt.NDArray[Any]]:
        """Any model on the pool's Tritons (an analysis stage's), with the image model's
        failover and retries (a :class:`orchestrator.analysis.base.ModelCaller`)."""
        return await self.call(lambda client: client.infer(model, inputs, outputs))

    async def check_models(self, models: Sequence[str], advice: str) -> None:
        """Like :meth:`TritonClient.check_models`, on the endpoint a call would go to."""
        await self.call(lambda client: client.check_models(models, advice))

    async def class_names(self) -> tuple[str, ...]:
        if self._class_names is None:
            self._class_names = await self.call(lambda client: client.class_names())
        return self._class_names

    async def call(self, fn: Callable[[TritonClient], Awaitable[T]]) -> T:
        """``fn(client)`` on the best endpoint, failing over, and riding out the policy's window
        when every endpoint is down."""
        return await ride_out(lambda: self._attempt(fn), self.retry, self.on_wait)

    async def _attempt(self, fn: Callable[[TritonClient], Awaitable[T]]) -> T:
        tried: set[_Slot] = set()
        errors: list[TritonUnavailable] = []
        while (slot := self._pick(tried)) is not None:
            tried.add(slot)
            slot.in_flight += 1
            started = time.perf_counter()
            outcome = "failed"
            try:
                result = await fn(slot.client)
                outcome = "ok"
            except TritonUnavailable as e:
                self._set_ready(slot, False, e.message)
                errors.append(e)
                continue
            finally:
                slot.in_flight -= 1
                self._observe(slot, outcome, time.perf_counter() - started)
            if not slot.ready and slot.refused is None:
                # It answered before the probe noticed it was back.
                self._set_ready(slot, True)
            return result
        if len(errors) == 1:
            raise errors[0]
        raise self._all_down()

    def _pick(self, tried: set[_Slot]) -> _Slot | None:
        """The ready endpoint with the fewest requests in flight (ties in turn); else one that
        is out but was connected once, since it may be back before the probe sees it."""
        usable = [
            s
            for s in self._slots
            if s not in tried and s.refused is None and s.client.info is not None
        ]
        candidates = [s for s in usable if s.ready] or usable
        if not candidates:
            return None
        least = min(s.in_flight for s in candidates)
        best = [s for s in candidates if s.in_flight == least]
        return best[next(self._turn) % len(best)]

    def _all_down(self) -> TritonUnavailable:
        if len(self._slots) == 1:
            return TritonUnavailable(self._slots[0].problem)
        problems = "; ".join(s.refused or s.problem for s in self._slots)
        return TritonUnavailable(
            f"none of the {len(self._slots)} Triton endpoints answers: {problems}"
        )

    def _set_ready(self, slot: _Slot, ready: bool, problem: str | None = None) -> None:
        if slot.ready and not ready:
            log.warning("%s taken out of the pool: %s", slot.name, problem)
        slot.ready = ready
        if problem is not None:
            slot.problem = problem
        self.metrics.triton_ready.labels(endpoint=slot.name).set(1 if ready else 0)

    def _observe(self, slot: _Slot, outcome: str, seconds: float) -> None:
        self.metrics.triton_requests.labels(endpoint=slot.name, outcome=outcome).inc()
        self.metrics.triton_seconds.labels(endpoint=slot.name).observe(seconds)

    async def _probe_forever(self) -> None:
        for tick in itertools.count(1):
            await asyncio.sleep(self.probe_interval_s)
            for slot in self._slots:
                if slot.probing or slot.refused is not None:
                    continue
                if slot.ready and tick % _READY_PROBE_EVERY:
                    continue
                slot.probing = True
                task = asyncio.create_task(self._probe(slot))
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)

    async def _probe(self, slot: _Slot) -> None:
        try:
            if slot.ready:
                if not await slot.client.is_ready():
                    self._set_ready(slot, False, f"Triton at {slot.name} stopped answering ready")
                return
            await self._revive(slot)
        finally:
            slot.probing = False

    async def _revive(self, slot: _Slot) -> None:
        """Reconnect an endpoint that is out; back in the pool if it serves the same model.

        A fresh client, not the old one: a gRPC channel that saw its server die may sit in
        its reconnect backoff for minutes, and the server may have come back with another model.
        """
        fresh = self._client(slot.client.endpoint)
        try:
            info = await fresh.connect()
        except DeeptagError as e:
            await fresh.close()
            slot.problem = e.message
            return
        assert self.info is not None
        if (problem := mismatch(self.endpoint, self.info, fresh.endpoint, info)) is not None:
            await fresh.close()
            slot.refused = problem
            log.error("%s left out of the pool: %s", slot.name, problem)
            return
        self._retired.append(slot.client)
        slot.client = fresh
        self._set_ready(slot, True)
        log.warning("%s is back in the pool", slot.name)

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
            self._prober = None
        for task in list(self._probes):
            task.cancel()
        await asyncio.gather(*self._probes, return_exceptions=True)
        clients = [s.client for s in self._slots] + self._retired
        self._retired = []
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
