"""Async client for the tagging model on Triton (HTTP or gRPC), with errors translated.

The model's readiness and metadata are checked once in :meth:`TritonClient.connect`; each
``classify`` call then sends one UINT8 batch and asks Triton's classification extension for
the top-k labels (Triton reads them from the model's ``label_filename``), plus the embedding.
When the whole probability vector is wanted (concepts, semantic vectors), ``probs`` comes back
as binary FP32 instead and the top-k is taken here, with the class names Triton gave once.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from tritonclient.utils import np_to_triton_dtype

from orchestrator.errors import InferenceFailed, ModelNotFound, TritonUnavailable
from orchestrator.triton.calls import call_triton
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.model_info import (
    EMBEDDING_NAME,
    INPUT_NAME,
    PROBS_NAME,
    ModelInfo,
    model_info,
)
from orchestrator.triton.shared_memory import InputRegions, is_local, start_regions
from orchestrator.types import Label


@dataclass(frozen=True, eq=False)
class Classification:
    labels: list[tuple[Label, ...]]
    embeddings: npt.NDArray[np.float32] | None
    probs: npt.NDArray[np.float32] | None = None  # [N, classes], with ``with_probs`` only


class Classifier(Protocol):
    """The image model as the pipeline uses it: one Triton (:class:`TritonClient`) or a pool of
    them (:class:`orchestrator.triton.pool.TritonPool`)."""

    model: str
    info: ModelInfo | None

    @property
    def endpoint(self) -> Endpoint: ...

    async def connect(self) -> ModelInfo: ...

    async def classify(
        self,
        pixels: Sequence[npt.NDArray[np.uint8]],
        top_k: int,
        with_embedding: bool = True,
        with_probs: bool = False,
    ) -> Classification: ...

    async def class_names(self) -> tuple[str, ...]: ...

    async def close(self) -> None: ...


def split_class_entry(entry: bytes | str) -> tuple[float, str, str]:
    """One classification-extension string, ``"0.95:967:n07920052 espresso"``, as its score,
    class index and class name (pure)."""
    text = entry.decode() if isinstance(entry, bytes) else entry
    score, index, category = text.split(":", 2)
    return float(score), index, category


def parse_class_entry(entry: bytes | str) -> Label:
    """One classification-extension string as a label (pure)."""
    score, _index, category = split_class_entry(entry)
    return Label(category=category, score=score)


def top_labels(
    probs: npt.NDArray[np.float32], names: Sequence[str], top_k: int
) -> list[tuple[Label, ...]]:
    """Each row's ``top_k`` most probable classes, best first, as Triton would rank them (pure)."""
    k = max(1, min(top_k, probs.shape[1]))
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    rows = []
    for row, candidates in zip(probs, top, strict=True):
        best = candidates[np.argsort(-row[candidates], kind="stable")]
        rows.append(tuple(Label(category=names[i], score=float(row[i])) for i in best))
    return rows


def batches(pixels: Sequence[npt.NDArray[np.uint8]], size: int) -> list[npt.NDArray[np.uint8]]:
    """The images stacked in batches of at most ``size`` (pure)."""
    return [np.stack(pixels[i : i + size]) for i in range(0, len(pixels), size)]


def merged(
    results: Sequence[Classification], with_embedding: bool, with_probs: bool
) -> Classification:
    """The batches' results as one, in order (pure)."""
    labels = [row for result in results for row in result.labels]
    embeddings = (
        np.concatenate([r.embeddings for r in results if r.embeddings is not None])
        if with_embedding
        else None
    )
    probs = (
        np.concatenate([r.probs for r in results if r.probs is not None]) if with_probs else None
    )
    return Classification(labels=labels, embeddings=embeddings, probs=probs)


def protocol_module(endpoint: Endpoint) -> Any:
    """tritonclient's asyncio module for ``endpoint``'s protocol.

    Imported on use: each protocol's client stack (grpc, aiohttp) costs ~0.3 s to import.
    """
    if endpoint.protocol == "grpc":
        return importlib.import_module("tritonclient.grpc.aio")
    return importlib.import_module("tritonclient.http.aio")


def open_client(endpoint: Endpoint, timeout_s: float) -> Any:
    """An asyncio ``InferenceServerClient`` for ``endpoint``; the HTTP one connects within
    ``timeout_s`` (the gRPC one has no such setting)."""
    module = protocol_module(endpoint)
    if endpoint.protocol == "grpc":
        return module.InferenceServerClient(endpoint.address, ssl=endpoint.ssl)
    return module.InferenceServerClient(endpoint.address, ssl=endpoint.ssl, conn_timeout=timeout_s)


class TritonClient:
    """The image model on one Triton."""

    def __init__(
        self,
        endpoint: Endpoint,
        model: str,
        timeout_s: float = 60.0,
        shared_memory: bool = False,
    ) -> None:
        self._endpoint = endpoint
        self.model = model
        self.timeout_s = timeout_s
        #: Hand batches over in shared memory when the endpoint is this machine.
        self.shared_memory = shared_memory
        self._regions: InputRegions | None = None
        self._client: Any = None
        self.info: ModelInfo | None = None
        self._class_names: tuple[str, ...] | None = None

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    async def connect(self) -> ModelInfo:
        """Connect, then check once that the model is ready and has the expected I/O."""
        self._client = open_client(self.endpoint, self.timeout_s)
        try:
            ready = await self._call(self._client.is_model_ready(self.model))
        except TritonUnavailable:
            await self.close()
            raise
        if not ready:
            await self.close()
            raise ModelNotFound(
                f"model '{self.model}' is not ready on Triton at {self.endpoint}: "
                "run `deeptag models export` and restart Triton, or check its log"
            )
        metadata = await self._call(self._metadata())
        config = await self._call(self._config())
        self.info = model_info(self.model, str(self.endpoint), metadata, config)
        if self.shared_memory and is_local(self.endpoint.address):
            batch_bytes = self.info.max_batch_size * int(np.prod(self.info.input_shape))
            self._regions = await start_regions(self._client, self.endpoint, batch_bytes)
        return self.info

    async def _metadata(self) -> dict[str, Any]:
        if self.endpoint.protocol == "grpc":
            result: dict[str, Any] = await self._client.get_model_metadata(self.model, as_json=True)
            return result
        return dict(await self._client.get_model_metadata(self.model))

    async def _config(self) -> dict[str, Any]:
        if self.endpoint.protocol == "grpc":
            result = await self._client.get_model_config(self.model, as_json=True)
            return dict(result["config"])
        return dict(await self._client.get_model_config(self.model))

    async def _call(self, awaitable: Any, model: str | None = None) -> Any:
        """``awaitable`` with Triton's errors translated, naming ``model`` (default: the image
        model)."""
        what = f"model '{model or self.model}'"
        return await call_triton(awaitable, self.endpoint, what, self.timeout_s)

    async def classify(
        self,
        pixels: Sequence[npt.NDArray[np.uint8]],
        top_k: int,
        with_embedding: bool = True,
        with_probs: bool = False,
    ) -> Classification:
        """Top-k labels (and embeddings, and all probabilities) for images, in chunks of the
        model's max batch size."""
        if not pixels:
            return Classification(labels=[], embeddings=None)
        if self.info is None:
            raise TritonUnavailable("TritonClient.classify() called before connect()")
        names = await self.class_names() if with_probs else None
        results = await asyncio.gather(
            *(
                self.classify_batch(chunk, top_k, with_embedding, names)
                for chunk in batches(pixels, self.info.max_batch_size)
            )
        )
        return merged(results, with_embedding, with_probs=names is not None)

    async def class_names(self) -> tuple[str, ...]:
        """The model's class names in output order, asked of Triton once.

        Triton alone reads the model's label file; one blank image classified with
        ``class_count`` = every class returns each name with its index, wherever Triton runs.
        """
        if self._class_names is None:
            if self.info is None:
                raise TritonUnavailable("TritonClient.class_names() called before connect()")
            module = protocol_module(self.endpoint)
            blank = np.zeros((1, *self.info.input_shape), dtype=np.uint8)
            infer_input = module.InferInput(INPUT_NAME, list(blank.shape), "UINT8")
            infer_input.set_data_from_numpy(blank)
            count = self.info.num_classes
            outputs = [module.InferRequestedOutput(PROBS_NAME, class_count=count)]
            result = await self._call(
                self._client.infer(self.model, [infer_input], outputs=outputs)
            )
            entries = result.as_numpy(PROBS_NAME)
            if entries is None:
                raise InferenceFailed(f"Triton at {self.endpoint} returned no class names")
            names = [""] * count
            for entry in np.atleast_1d(entries[0]):
                _score, index, name = split_class_entry(entry)
                names[int(index)] = name
            self._class_names = tuple(names)
        return self._class_names

    async def is_ready(self, timeout_s: float = 2.0) -> bool:
        """Whether the model answers ready now; any failure to answer is a no."""
        if self._client is None:
            return False
        try:
            return bool(
                await call_triton(
                    self._client.is_model_ready(self.model),
                    self.endpoint,
                    f"model '{self.model}'",
                    timeout_s,
                )
            )
        except (TritonUnavailable, ModelNotFound, InferenceFailed):
            return False

    async def classify_batch(
        self,
        batch: npt.NDArray[np.uint8],
        top_k: int,
        with_embedding: bool,
        names: tuple[str, ...] | None = None,
    ) -> Classification:
        """One batch (at most the model's max batch size) in one Triton call."""
        if self._client is None:
            raise TritonUnavailable(f"Triton at {self.endpoint}: the client is closed")
        module = protocol_module(self.endpoint)
        outputs = [
            # Every probability, as binary FP32, when ``names`` is given; else Triton's top-k.
            module.InferRequestedOutput(PROBS_NAME)
            if names
            else module.InferRequestedOutput(PROBS_NAME, class_count=max(1, top_k))
        ]
        if with_embedding:
            outputs.append(module.InferRequestedOutput(EMBEDDING_NAME))
        result = await self._infer(batch, outputs)
        classes = result.as_numpy(PROBS_NAME)
        if classes is None:
            raise InferenceFailed(f"Triton at {self.endpoint} returned no '{PROBS_NAME}' output")
        embeddings = result.as_numpy(EMBEDDING_NAME) if with_embedding else None
        if names:
            probs = np.asarray(classes, dtype=np.float32).reshape(len(batch), -1)
            return Classification(top_labels(probs, names, top_k), embeddings, probs)
        labels = [tuple(parse_class_entry(e) for e in np.atleast_1d(row)) for row in classes]
        return Classification(labels=labels, embeddings=embeddings)

    async def _infer(self, batch: npt.NDArray[np.uint8], outputs: list[Any]) -> Any:
        """One inference, its input in a shared-memory region when one is free."""
        regions = self._regions
        if regions is None or batch.nbytes > regions.byte_size:
            return await self._send(batch, outputs, None)
        async with regions.lease() as region:
            try:
                return await self._send(batch, outputs, region)
            except InferenceFailed as e:
                if region is None or "shared memory region" not in e.message:
                    raise
            # Triton restarted since the region was registered, and forgot it.
            try:
                await self._call(regions.register_again())
            except InferenceFailed:  # it cannot map them any more: the socket, from now on
                self._regions = None
                await regions.close()
                return await self._send(batch, outputs, None)
            return await self._send(batch, outputs, region)

    async def _send(self, batch: npt.NDArray[np.uint8], outputs: list[Any], region: Any) -> Any:
        module = protocol_module(self.endpoint)
        infer_input = module.InferInput(INPUT_NAME, list(batch.shape), "UINT8")
        if region is None:
            infer_input.set_data_from_numpy(batch)
        else:
            region.write(batch)
            infer_input.set_shared_memory(region.name, batch.nbytes)
        # The client's own deadline (µs): a Triton whose model allows timeout overrides then
        # drops a request nobody waits for any more instead of running it; others ignore it.
        deadline_us = int(self.timeout_s * 1_000_000)
        return await self._call(
            self._client.infer(self.model, [infer_input], outputs=outputs, timeout=deadline_us)
        )

    async def infer(
        self, model: str, inputs: Mapping[str, npt.NDArray[Any]], outputs: Sequence[str]
    ) -> dict[str, npt.NDArray[Any]]:
        """One inference of any ``model`` on this Triton (an analysis stage's), by tensor name:
        the same connection and error translation as the image model's calls."""
        if self._client is None:
            raise TritonUnavailable(f"Triton at {self.endpoint}: the client is closed")
        module = protocol_module(self.endpoint)
        infer_inputs = []
        for name, array in inputs.items():
            tensor = module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(np.ascontiguousarray(array))
            infer_inputs.append(tensor)
        requested = [module.InferRequestedOutput(name) for name in outputs]
        deadline_us = int(self.timeout_s * 1_000_000)
        result = await self._call(
            self._client.infer(model, infer_inputs, outputs=requested, timeout=deadline_us), model
        )
        found: dict[str, npt.NDArray[Any]] = {}
        for name in outputs:
            array = result.as_numpy(name)
            if array is None:
                raise InferenceFailed(
                    f"Triton at {self.endpoint}: model '{model}' returned no '{name}'"
                )
            found[name] = array
        return found

    async def model_ready(self, model: str) -> bool:
        """Whether this Triton serves ``model`` ready now (an outage raises)."""
        if self._client is None:
            raise TritonUnavailable(f"Triton at {self.endpoint}: the client is closed")
        try:
            return bool(await self._call(self._client.is_model_ready(model), model))
        except ModelNotFound:
            return False

    async def check_models(self, models: Sequence[str], advice: str) -> None:
        """:class:`ModelNotFound` naming the first of ``models`` not ready, and ``advice``."""
        for model in models:
            if not await self.model_ready(model):
                raise ModelNotFound(
                    f"model '{model}' is not ready on Triton at {self.endpoint}: {advice}"
                )

    async def close(self) -> None:
        if self._regions is not None:
            regions, self._regions = self._regions, None
            await regions.close()
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
