"""Riding through outages: a transient failure is retried with backoff for up to a window.

Bulk runs meet outages (a Triton restarting, Elasticsearch failing over); instead of counting
images as failed, the call that met the outage waits with exponential backoff and jitter
(tenacity) and says what it waits for. Past the window it gives up with :class:`OutageTooLong`,
which a bulk run turns into a clean stop. A window of 0 means no waiting at all: the HTTP
server answers 503 at once instead, as DeepDetect does.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import tenacity

from orchestrator.errors import (
    DeeptagError,
    OutageTooLong,
    SearchBackendUnavailable,
    TritonUnavailable,
)

T = TypeVar("T")

#: Told what a run waits for ("Triton at http://… is unreachable …"), then None when it is over.
Waiting = Callable[[str | None], None]


def not_waiting(_notice: str | None) -> None:
    """A :data:`Waiting` that tells no one."""


@dataclass(frozen=True)
class RetryPolicy:
    #: How long one call may keep retrying; 0 means it is tried once.
    window_s: float = 0.0
    #: The first wait; each later one doubles, up to ``max_wait_s``, plus up to 1 s of jitter.
    #: A short cap: once the server is back, the run resumes within a few seconds.
    initial_s: float = 0.5
    max_wait_s: float = 4.0


NO_RETRY = RetryPolicy(0.0)


def is_transient(error: BaseException) -> bool:
    """Errors an outage causes (refused, reset, timed out, 503): retrying may succeed."""
    return isinstance(error, TritonUnavailable | SearchBackendUnavailable)


def _message(error: BaseException | None) -> str:
    if isinstance(error, DeeptagError):
        return error.message
    return f"{type(error).__name__}: {error}"


async def ride_out(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    on_wait: Waiting = not_waiting,
) -> T:
    """``attempt()``'s result, retrying transient errors for up to ``policy.window_s``.

    Raises:
        OutageTooLong: the window passed and the last attempt still failed transiently
            (the message says what was unavailable and for how long).
    """
    if policy.window_s <= 0:
        return await attempt()
    started = time.monotonic()
    waited_once = False

    def before_sleep(state: tenacity.RetryCallState) -> None:
        nonlocal waited_once
        waited_once = True
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        waited = time.monotonic() - started
        wait = state.upcoming_sleep
        on_wait(
            f"waiting: {_message(error)} (retry in {wait:.0f} s; giving up in "
            f"{max(0.0, policy.window_s - waited):.0f} s)"
        )

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=tenacity.wait_exponential_jitter(initial=policy.initial_s, max=policy.max_wait_s),
        # Stop before a sleep that would end past the window, not after it.
        stop=tenacity.stop_before_delay(policy.window_s),
        before_sleep=before_sleep,
        reraise=False,
    )

    async def call() -> T:
        # tenacity awaits only what a coroutine function returns, not any callable's awaitable.
        return await attempt()

    try:
        result = cast(T, await retrying(call))
    except tenacity.RetryError as e:
        last = e.last_attempt.exception()
        on_wait(None)
        raise OutageTooLong(
            f"gave up after {time.monotonic() - started:.0f} s of retrying "
            f"(DEEPTAG_RETRY_WINDOW_S={policy.window_s:g}): {_message(last)}"
        ) from last
    except BaseException:
        on_wait(None)
        raise
    if waited_once:
        on_wait(None)
    return result
