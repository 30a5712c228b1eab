"""Batches handed to a local Triton in shared memory: the same answers as over the socket,
nothing left registered after close, a Triton that forgot its regions served all the same, and
regions of a dead deeptag process cleared."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpc_client
import tritonclient.http as http_client
import tritonclient.utils.shared_memory as triton_shm

from orchestrator.triton.client import TritonClient
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import SHM_DIR, LocalTriton
from orchestrator.triton.shared_memory import MAX_REGIONS

pytestmark = pytest.mark.integration

MODEL = "efficientnet_lite0"
RNG = np.random.default_rng(7)
PIXELS = [RNG.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(6)]


def endpoints(triton: LocalTriton) -> list[Endpoint]:
    return [Endpoint.parse(f"grpc://{triton.grpc_url}"), Endpoint.parse(triton.http_url)]


def ours(triton: LocalTriton) -> set[str]:
    """The regions deeptag clients have registered on ``triton``: the session's Triton is
    shared, so tests compare this before and after rather than expect it empty."""
    status = http_client.InferenceServerClient(triton.http_url[len("http://") :])
    return {r["name"] for r in status.get_system_shared_memory_status() if "deeptag-" in r["name"]}


@pytest.fixture
def admin(triton: LocalTriton) -> Iterator[grpc_client.InferenceServerClient]:
    client = grpc_client.InferenceServerClient(triton.grpc_url)
    yield client
    client.close()


@pytest.mark.parametrize("protocol", [0, 1], ids=["grpc", "http"])
def test_same_answers_as_over_the_socket_and_nothing_left_after_close(
    triton: LocalTriton, protocol: int
) -> None:
    endpoint = endpoints(triton)[protocol]

    async def classify(shared: bool) -> tuple[list[list[str]], np.ndarray, set[str]]:
        before = ours(triton)
        client = TritonClient(endpoint, MODEL, shared_memory=shared)
        await client.connect()
        try:
            result = await client.classify(PIXELS, 5, with_embedding=True, with_probs=True)
            registered = ours(triton) - before
        finally:
            await client.close()
        assert result.embeddings is not None
        labels = [[label.category for label in row] for row in result.labels]
        return labels, result.embeddings, registered

    socket_labels, socket_embeddings, none_registered = asyncio.run(classify(False))
    shared_labels, shared_embeddings, registered = asyncio.run(classify(True))
    assert none_registered == set()
    assert len(registered) == 1, registered
    assert shared_labels == socket_labels
    np.testing.assert_allclose(shared_embeddings, socket_embeddings, rtol=1e-5, atol=1e-6)
    assert not registered & ours(triton), "the client's regions outlived close()"


def classify_after_losing_regions(
    triton: LocalTriton, lose: Callable[[set[str]], None]
) -> tuple[set[str], bool]:
    """Classify with a client, ``lose`` its regions on Triton's side, classify again: the
    client's regions, and whether the answers were the same."""

    async def run() -> tuple[set[str], bool]:
        before = ours(triton)
        client = TritonClient(endpoints(triton)[0], MODEL, shared_memory=True)
        await client.connect()
        try:
            first = await client.classify(PIXELS, 1, with_embedding=False)
            mine = ours(triton) - before
            assert mine
            lose(mine)
            again = await client.classify(PIXELS, 1, with_embedding=False)
            registered_after = ours(triton) & mine
        finally:
            await client.close()
        return registered_after, again.labels == first.labels

    return asyncio.run(run())


def test_a_triton_that_forgot_the_regions_is_served_all_the_same(
    triton: LocalTriton, admin: grpc_client.InferenceServerClient
) -> None:
    """A Triton restarted under a running client knows none of its regions any more."""

    def forget(mine: set[str]) -> None:
        for name in mine:
            admin.unregister_system_shared_memory(name)

    registered, same = classify_after_losing_regions(triton, forget)
    assert registered, "the regions were not registered again"
    assert same


def test_more_batches_in_flight_than_regions_go_over_the_socket(triton: LocalTriton) -> None:
    async def run() -> None:
        before = ours(triton)
        client = TritonClient(endpoints(triton)[0], MODEL, shared_memory=True)
        await client.connect()
        try:
            alone = await client.classify(PIXELS[:1], 3, with_embedding=False)
            together = await asyncio.gather(
                *(client.classify(PIXELS[:1], 3, with_embedding=False) for _ in range(12))
            )
            assert len(ours(triton) - before) <= MAX_REGIONS
        finally:
            await client.close()
        assert all(result.labels == alone.labels for result in together)

    asyncio.run(run())


def test_regions_of_a_dead_deeptag_process_are_cleared(
    triton: LocalTriton, admin: grpc_client.InferenceServerClient
) -> None:
    # Process ids are below 2**22 on Linux: this one never ran.
    name = "deeptag-99999999-0123abcd-0"
    handle = triton_shm.create_shared_memory_region(name, f"/{name}", 1024, create_only=True)
    try:
        admin.register_system_shared_memory(name, f"/{name}", 1024)
        assert name in ours(triton)

        async def connect() -> None:
            client = TritonClient(endpoints(triton)[0], MODEL, shared_memory=True)
            await client.connect()
            await client.close()

        asyncio.run(connect())
        assert name not in ours(triton)
        assert not (SHM_DIR / name).exists(), "its memory was left under /dev/shm"
    finally:
        with contextlib.suppress(FileNotFoundError):
            triton_shm.destroy_shared_memory_region(handle)


def test_regions_triton_can_no_longer_map_give_way_to_the_socket(
    triton: LocalTriton, admin: grpc_client.InferenceServerClient
) -> None:
    def unmappable(mine: set[str]) -> None:
        for name in mine:
            admin.unregister_system_shared_memory(name)
            (SHM_DIR / name).unlink()

    registered, same = classify_after_losing_regions(triton, unmappable)
    assert not registered
    assert same
