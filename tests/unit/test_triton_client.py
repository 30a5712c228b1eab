import pytest

from orchestrator.triton.client import parse_class_entry
from orchestrator.triton.endpoint import Endpoint


def test_classification_entries_keep_commas_in_labels() -> None:
    label = parse_class_entry(b"0.040742:128:n02002724 black stork, Ciconia nigra")
    assert label.category == "n02002724 black stork, Ciconia nigra"
    assert label.score == pytest.approx(0.040742)


@pytest.mark.parametrize(
    ("url", "protocol", "address", "ssl"),
    [
        ("http://gpu:8000", "http", "gpu:8000", False),
        ("https://gpu", "http", "gpu", True),
        ("grpc://gpu:8001", "grpc", "gpu:8001", False),
        ("gpu:8001", "grpc", "gpu:8001", False),
    ],
)
def test_endpoint_parse(url: str, protocol: str, address: str, ssl: bool) -> None:
    endpoint = Endpoint.parse(url, default_protocol="grpc")
    assert (endpoint.protocol, endpoint.address, endpoint.ssl) == (protocol, address, ssl)


def test_endpoint_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="ftp://x"):
        Endpoint.parse("ftp://x")


@pytest.mark.parametrize(
    ("message", "status"),
    [
        # gRPC, when the server dies mid-call: the words say nothing of "unavailable".
        ("Stream removed (Socket closed)", "StatusCode.UNAVAILABLE"),
        ("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED"),
        # HTTP, a Triton that is shutting down or overloaded.
        ("Server is stopping", "503"),
    ],
)
def test_outage_errors_are_retryable_whatever_their_wording(message: str, status: str) -> None:
    import asyncio

    from tritonclient.utils import InferenceServerException

    from orchestrator.errors import TritonUnavailable
    from orchestrator.triton.calls import call_triton
    from orchestrator.triton.endpoint import Endpoint

    async def failing() -> None:
        raise InferenceServerException(msg=message, status=status)

    with pytest.raises(TritonUnavailable, match="grpc://a:8001"):
        asyncio.run(call_triton(failing(), Endpoint.parse("grpc://a:8001"), "model 'm'", 5))
