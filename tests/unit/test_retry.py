"""Riding out outages: transient errors are retried within the window, then a clean stop."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.errors import InferenceFailed, OutageTooLong, TritonUnavailable
from orchestrator.retry import RetryPolicy, ride_out

FAST = RetryPolicy(window_s=5.0, initial_s=0.01, max_wait_s=0.02)


class Flaky:
    """Fails ``failures`` times with ``error``, then answers."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "answer"


def test_a_transient_outage_is_waited_out_and_reported() -> None:
    flaky = Flaky(3, TritonUnavailable("Triton at http://a:8000 is unreachable: refused"))
    notices: list[str | None] = []
    assert asyncio.run(ride_out(flaky, FAST, notices.append)) == "answer"
    assert flaky.calls == 4
    # Each wait says what it waits for; the last notice says the wait is over.
    assert all(n and "Triton at http://a:8000 is unreachable" in n for n in notices[:-1])
    assert len(notices) == 4
    assert notices[-1] is None


def test_past_the_window_the_call_gives_up_naming_the_outage() -> None:
    flaky = Flaky(10**6, TritonUnavailable("Triton at http://a:8000 is unreachable"))
    policy = RetryPolicy(window_s=0.2, initial_s=0.01, max_wait_s=0.05)
    with pytest.raises(OutageTooLong, match=r"RETRY_WINDOW_S=0.2\).*http://a:8000") as info:
        asyncio.run(ride_out(flaky, policy))
    assert isinstance(info.value.__cause__, TritonUnavailable)
    assert flaky.calls > 2


def test_a_real_error_is_not_retried() -> None:
    flaky = Flaky(1, InferenceFailed("Triton at http://a:8000: shape mismatch"))
    with pytest.raises(InferenceFailed):
        asyncio.run(ride_out(flaky, FAST))
    assert flaky.calls == 1


def test_no_window_means_one_try() -> None:
    flaky = Flaky(1, TritonUnavailable("down"))
    with pytest.raises(TritonUnavailable):
        asyncio.run(ride_out(flaky, RetryPolicy(window_s=0)))
    assert flaky.calls == 1


def test_an_attempt_that_is_not_a_coroutine_function_is_awaited() -> None:
    # A lambda returning a coroutine, as callers write it.
    flaky = Flaky(1, TritonUnavailable("down"))
    assert asyncio.run(ride_out(lambda: flaky(), FAST)) == "answer"
