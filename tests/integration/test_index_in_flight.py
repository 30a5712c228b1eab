"""The indexer keeps a batch in each of Triton's model instances, not one at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from orchestrator.indexing import Indexer, IndexOptions
from orchestrator.pipeline import TagOptions
from orchestrator.runtime import shim_options, tagging_session, triton_pool, usable_cores
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings
from orchestrator.sources import classify
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port
from orchestrator.triton.runtime_repository import cpu_layout
from orchestrator.types import ItemFailure, Outcome, PreparedImage
from tests.search_support import variants


@pytest.mark.parametrize("in_flight", [1, 2])
def test_the_indexer_has_as_many_batches_in_triton_as_it_is_told(
    settings: Settings, samples: dict[str, Path], tmp_path: Path, in_flight: int
) -> None:
    paths = variants(list(samples.values()), 48, tmp_path / "photos")
    busy = {"now": 0, "most": 0}

    async def main() -> int:
        backend = await open_backend(settings, writer=True)
        try:
            endpoint = Endpoint.parse(str(settings.triton_url), "http")
            async with tagging_session(settings, (endpoint,), path_roots=None) as session:
                classify_on_triton = session.tagger.classify

                async def counted(
                    prepared: Sequence[PreparedImage | ItemFailure], options: TagOptions
                ) -> list[Outcome]:
                    busy["now"] += 1
                    busy["most"] = max(busy["most"], busy["now"])
                    try:
                        return await classify_on_triton(prepared, options)
                    finally:
                        busy["now"] -= 1

                session.tagger.classify = counted  # type: ignore[method-assign]
                options = IndexOptions(chunk_size=8, in_flight=in_flight)
                indexer = Indexer(session.tagger, session.model, backend, options)
                stats = await indexer.run(classify(str(p), i) for i, p in enumerate(paths))
                assert (stats.indexed, stats.failed) == (48, 0)
            return await backend.count()
        finally:
            await backend.close()

    # Every image stored once, whichever batch finished first.
    assert asyncio.run(main()) == 48
    assert busy["most"] == in_flight


def test_a_bulk_layout_is_counted_on_every_endpoint(exported_model: Path, tmp_path: Path) -> None:
    """How many batches `deeptag index` keeps in flight by default: what Triton reports."""
    per_server, _ = cpu_layout(usable_cores())
    ports = TritonPorts(free_port(), free_port(), free_port())
    shim = shim_options(Settings())

    async def main(triton: LocalTriton) -> tuple[int, int]:
        settings = Settings()
        alone = triton_pool(settings, (Endpoint("grpc", triton.grpc_url),))
        both = triton_pool(
            settings, (Endpoint("grpc", triton.grpc_url), Endpoint.parse(triton.http_url))
        )
        try:
            return (await alone.connect()).instances, (await both.connect()).instances
        finally:
            await alone.close()
            await both.close()

    with LocalTriton(exported_model, tmp_path, ports, shim=shim) as triton:
        assert asyncio.run(main(triton)) == (per_server, 2 * per_server)
