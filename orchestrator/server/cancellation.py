"""Work for one HTTP request that stops when its client leaves or its deadline passes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

from orchestrator.errors import ClientDisconnected, RequestTimedOut

T = TypeVar("T")


async def _client_gone(request: Request) -> None:
    """Returns when the client closes its connection (the body has been read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def run_for_client(request: Request, work: Awaitable[T], timeout_s: float) -> T:
    """``work``'s result, or its cancellation when the client goes away or ``timeout_s`` passes.

    Starlette lets a handler run on after its client has left; without this, an abandoned
    request would go on fetching images and queueing Triton calls nobody will read.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_client_gone(request))
    try:
        done, _ = await asyncio.wait(
            {task, watcher}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for pending in (task, watcher):
            pending.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task in done:
        return task.result()
    if watcher in done:
        raise ClientDisconnected("the client closed the connection; its images were dropped")
    raise RequestTimedOut(
        f"the request took longer than {timeout_s:g} s (DEEPTAG_PREDICT_TIMEOUT_S) and was "
        "stopped: send fewer images per request, or raise the limit"
    )
