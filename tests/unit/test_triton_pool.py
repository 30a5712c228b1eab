"""The parts of the Triton pool that need no server: endpoint lists and the model check."""

from __future__ import annotations

import pytest

from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.model_info import ModelInfo
from orchestrator.triton.pool import mismatch

INFO = ModelInfo(
    name="efficientnet_lite0",
    version="1",
    max_batch_size=64,
    input_shape=(224, 224, 3),
    outputs=("probs", "embedding"),
    num_classes=1000,
)
A = Endpoint.parse("http://a:8000")
B = Endpoint.parse("http://b:8000")


def test_a_comma_separated_list_gives_each_endpoint_once() -> None:
    endpoints = Endpoint.parse_list(" http://a:8000, grpc://b:8001,,http://a:8000 ")
    assert [str(e) for e in endpoints] == ["http://a:8000", "grpc://b:8001"]
    assert Endpoint.parse_list("c:8000", "grpc")[0].protocol == "grpc"


@pytest.mark.parametrize("text", ["", " , ", "ftp://a:21"])
def test_a_list_without_a_usable_endpoint_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="Triton URL"):
        Endpoint.parse_list(text)


def test_endpoints_may_batch_differently() -> None:
    from dataclasses import replace

    assert mismatch(A, INFO, B, replace(INFO, max_batch_size=8)) is None


def test_another_version_is_a_mismatch_naming_both_endpoints() -> None:
    from dataclasses import replace

    problem = mismatch(A, INFO, B, replace(INFO, version="2"))
    assert problem is not None
    assert "http://a:8000" in problem
    assert "http://b:8000" in problem
    assert "version 1" in problem
    assert "version 2" in problem
    assert mismatch(A, INFO, B, replace(INFO, num_classes=10)) is not None
