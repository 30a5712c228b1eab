"""Batches handed to a Triton on this host through system shared memory, not the socket.

Over gRPC a batch of 32 images (4.8 MB of pixels) is serialised into a protobuf, copied through
the socket and parsed again; measured here that costs the client ~15 and Triton ~45 core-ms per
batch, cores a CPU box would rather spend decoding. Written into a region both processes map,
the batch is copied once and the request carries only the region's name.

Regions are tritonclient's (POSIX shared memory under ``/dev/shm``), a few per client, each the
size of one full batch; a batch that finds them all busy goes over the socket as before, so
memory stays bounded whatever the concurrency. Names carry this process's id: a client that
connects unregisters what a dead deeptag process left registered on that Triton, and removes
what it left under /dev/shm.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import tritonclient.utils.shared_memory as triton_shm

from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import SHM_DIR
from orchestrator.triton.processes import process_alive

log = logging.getLogger(__name__)

#: Regions per client: the batches one client has in flight at once, beyond which it uses
#: the socket. ``deeptag index`` keeps one or two in flight; a busy server may have more.
MAX_REGIONS = 4
#: Hosts that are this machine. A Triton elsewhere (or in another container) cannot map our
#: memory, and registering would only fail.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_NAME = re.compile(r"^deeptag-(\d+)-[0-9a-f]+-\d+$")


def is_local(address: str) -> bool:
    """Whether ``host:port`` names this machine (pure)."""
    return address.rsplit(":", 1)[0].strip("[]").lower() in LOOPBACK_HOSTS


def stale_region(name: str, alive: frozenset[int] | None = None) -> bool:
    """Whether a registered region is one of ours whose process has gone (pure but for the
    process check, which ``alive`` replaces in tests)."""
    match = _NAME.match(name)
    if match is None:
        return False
    pid = int(match.group(1))
    if pid == os.getpid():
        return False
    if alive is not None:
        return pid not in alive
    return not process_alive(pid)


@dataclass
class _Region:
    name: str
    handle: Any
    byte_size: int

    def write(self, batch: npt.NDArray[np.uint8]) -> None:
        triton_shm.set_shared_memory_region(self.handle, [np.ascontiguousarray(batch)])


async def start_regions(client: Any, endpoint: Endpoint, byte_size: int) -> InputRegions | None:
    """Regions registered on the Triton ``client`` talks to, or None (and one log line) when
    it cannot map them: then every batch goes over the socket."""
    regions = InputRegions(client, byte_size, grpc=endpoint.protocol == "grpc")
    try:
        await regions.start()
    except Exception as e:  # tritonclient's and the OS's errors alike: the socket still works
        await regions.close()
        log.info("Triton at %s: no shared memory (%s); batches go over the socket", endpoint, e)
        return None
    return regions


class InputRegions:
    """Up to :data:`MAX_REGIONS` regions of ``byte_size`` bytes registered on one Triton."""

    def __init__(self, client: Any, byte_size: int, grpc: bool) -> None:
        self._client = client
        self._grpc = grpc
        self.byte_size = byte_size
        self._prefix = f"deeptag-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._numbers = itertools.count()
        self._free: list[_Region] = []
        self._all: list[_Region] = []
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Clear what dead deeptag processes left, then register a first region.

        Raises:
            tritonclient's InferenceServerException or SharedMemoryException: this Triton
            cannot map our memory (another host or container, or /dev/shm is full).
        """
        await self._unregister_stale()
        _remove_stale_files()
        self._free.append(await self._new_region())

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[_Region | None]:
        """A free region for one batch, or None when all are busy (use the socket then)."""
        region = await self._take()
        try:
            yield region
        finally:
            if region is not None:
                self._free.append(region)

    async def register_again(self) -> None:
        """Register every region afresh: a restarted Triton has forgotten them."""
        async with self._lock:
            for region in self._all:
                with contextlib.suppress(Exception):
                    await self._client.unregister_system_shared_memory(region.name)
                await self._client.register_system_shared_memory(
                    region.name, _key(region.name), region.byte_size
                )

    async def close(self) -> None:
        """Unregister (when Triton still answers) and free every region."""
        regions, self._all, self._free = self._all, [], []
        for region in regions:
            with contextlib.suppress(Exception):
                await self._client.unregister_system_shared_memory(region.name)
            with contextlib.suppress(Exception):
                triton_shm.destroy_shared_memory_region(region.handle)

    async def _take(self) -> _Region | None:
        if self._free:
            return self._free.pop()
        async with self._lock:
            if len(self._all) >= MAX_REGIONS or not _room_for(self.byte_size):
                return None
            try:
                return await self._new_region()
            except Exception as e:  # any refusal: the socket still works
                log.warning("no further shared-memory region (%s); sending over the socket", e)
                return None

    async def _new_region(self) -> _Region:
        name = f"{self._prefix}-{next(self._numbers)}"
        handle = triton_shm.create_shared_memory_region(
            name, _key(name), self.byte_size, create_only=True
        )
        try:
            await self._client.register_system_shared_memory(name, _key(name), self.byte_size)
        except BaseException:
            triton_shm.destroy_shared_memory_region(handle)
            raise
        region = _Region(name, handle, self.byte_size)
        self._all.append(region)
        return region

    async def _unregister_stale(self) -> None:
        if self._grpc:
            status = await self._client.get_system_shared_memory_status(as_json=True)
        else:
            status = await self._client.get_system_shared_memory_status()
        for name in _region_names(status):
            if stale_region(name):
                with contextlib.suppress(Exception):
                    await self._client.unregister_system_shared_memory(name)


def _remove_stale_files() -> None:
    """Unlink regions a killed deeptag process left under /dev/shm (its resource tracker, had
    it survived, would have): each holds one batch of memory until the machine reboots."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(SHM_DIR):
            if stale_region(entry.name):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _key(name: str) -> str:
    return f"/{name}"


def _room_for(byte_size: int) -> bool:
    """Whether /dev/shm has room to spare: writing into a region it cannot back kills the
    process (SIGBUS), so a small /dev/shm (Docker's default is 64 MB) gets no more regions."""
    try:
        stats = os.statvfs(SHM_DIR)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize > 4 * byte_size


def _region_names(status: Any) -> list[str]:
    """Region names from either protocol's status answer (gRPC: a dict of regions; HTTP: a
    list of them) (pure)."""
    if isinstance(status, dict):
        regions = status.get("regions", {})
        return list(regions) if isinstance(regions, dict) else [r["name"] for r in regions]
    if isinstance(status, list):
        return [str(r.get("name", "")) for r in status if isinstance(r, dict)]
    return []
