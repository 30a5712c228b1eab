from __future__ import annotations

import os

import pytest

from orchestrator.triton.shared_memory import _region_names, is_local, stale_region


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1:8001", True),
        ("localhost:8000", True),
        ("LOCALHOST:8000", True),
        ("[::1]:8001", True),
        ("triton:8001", False),
        ("10.0.0.7:8001", False),
        ("127.0.0.1.example.com:8001", False),
    ],
)
def test_only_this_machine_counts_as_local(address: str, local: bool) -> None:
    assert is_local(address) is local


def test_only_our_regions_of_processes_gone_are_stale() -> None:
    alive = frozenset({10, 11})
    assert stale_region("deeptag-12-0123abcd-0", alive)
    assert not stale_region("deeptag-10-0123abcd-3", alive)
    assert not stale_region(f"deeptag-{os.getpid()}-0123abcd-0", frozenset())
    # Somebody else's region, or a name that only looks like ours, is never touched.
    assert not stale_region("input0", alive)
    assert not stale_region("deeptag-12-notahex!-0", alive)


def test_region_names_from_either_protocols_status() -> None:
    grpc = {"regions": {"a": {"name": "a"}, "b": {"name": "b"}}}
    http = [{"name": "a", "key": "/a"}, {"name": "b", "key": "/b"}]
    assert _region_names(grpc) == ["a", "b"]
    assert _region_names(http) == ["a", "b"]
    assert _region_names({}) == []
