"""What the HTTP routes share, built once in the app's lifespan."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends, Request

from orchestrator.analysis.registry import build as build_analysis
from orchestrator.analysis.registry import specs
from orchestrator.enrichment import load_enricher
from orchestrator.errors import DeeptagError
from orchestrator.fetch import SourceReader
from orchestrator.metrics import Metrics
from orchestrator.pipeline import Tagger
from orchestrator.runtime import TritonHandle, triton_pool
from orchestrator.search.base import SearchBackend
from orchestrator.server.services import ServiceRegistry
from orchestrator.settings import Settings
from orchestrator.text_encoder import TextEncoder
from orchestrator.triton.model_info import ModelInfo


@dataclass
class ServerState:
    settings: Settings
    triton: TritonHandle
    reader: SourceReader
    metrics: Metrics
    services: ServiceRegistry
    #: For output.network sinks; its own client, so image-fetch limits do not apply to it.
    sink_http: httpx.AsyncClient
    exit_stack: AsyncExitStack
    _taggers: dict[str, tuple[Tagger, ModelInfo]] = field(default_factory=dict)
    #: Embeds search queries for semantic search; None (and why) when Triton lacks the model.
    text_encoder: TextEncoder | None = None
    text_encoder_problem: str | None = None
    #: The folders the watcher follows (``serve --watch``, ``DEEPTAG_WATCH``), for ``/info``.
    watched: tuple[str, ...] = ()
    _backend: SearchBackend | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def tagger_for(
        self, model: str, analyses: frozenset[str] = frozenset()
    ) -> tuple[Tagger, ModelInfo]:
        """A tagger for ``model``, connected (and its metadata checked) on first use, able to
        run ``analyses`` (each built, and its models checked, the first time one is asked)."""
        async with self._lock:
            if model not in self._taggers:
                # No retry window: a request during an outage is answered 503 at once.
                client = triton_pool(
                    self.settings, self.triton.endpoints, model, metrics=self.metrics
                )
                info = await client.connect()
                self.exit_stack.push_async_callback(client.close)
                tagger = Tagger(
                    self.reader,
                    client,
                    self.settings.max_image_pixels,
                    self.metrics,
                    chunk_size=self.settings.predict_chunk_size,
                    with_location=self.settings.index_location,
                    enricher=load_enricher(
                        self.settings.model_repository / self.settings.text_model,
                        self.settings.concept_threshold,
                    ),
                    caller=client,
                )
                self._taggers[model] = (tagger, info)
            tagger, info = self._taggers[model]
            for spec in specs(analyses - set(tagger.analyses)):
                if tagger.caller is not None:
                    await tagger.caller.check_models(spec.models, spec.advice)
                tagger.analyses[spec.name] = build_analysis(spec, self.settings)
            return tagger, info

    async def connect_text_encoder(self) -> None:
        """Connect the query encoder once; without it, searches run by words and say why."""
        try:
            encoder = TextEncoder.for_settings(self.settings, self.triton.endpoint)
            await encoder.connect()
        except DeeptagError as e:
            self.text_encoder_problem = e.message
            return
        self.exit_stack.push_async_callback(encoder.close)
        self.text_encoder = encoder

    async def get_backend(self) -> SearchBackend:
        """The configured search backend, opened on first use."""
        from orchestrator.search.factory import open_backend

        async with self._lock:
            if self._backend is None:
                backend = await open_backend(self.settings)
                self.exit_stack.push_async_callback(backend.close)
                self._backend = backend
            return self._backend


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.deeptag
    return state


#: Route parameter type that FastAPI fills with the shared state.
State = Annotated[ServerState, Depends(server_state)]
