import asyncio
import ipaddress

import pytest

from orchestrator.errors import FetchFailed, SinkNotAllowed, SourceRefused
from orchestrator.netguard import check_fetch_url, check_sink_url, refusal


@pytest.mark.parametrize(
    ("address", "allow_private", "refused"),
    [
        ("93.184.216.34", False, False),
        ("127.0.0.1", False, True),
        ("127.0.0.1", True, False),
        ("10.1.2.3", False, True),
        ("192.168.1.1", True, False),
        ("169.254.169.254", True, True),  # metadata: always refused
        ("169.254.10.1", True, True),  # link-local: always refused
        ("fe80::1", True, True),
        ("::ffff:169.254.169.254", True, True),
        ("::1", False, True),
    ],
)
def test_refusal(address: str, allow_private: bool, refused: bool) -> None:
    assert (refusal(ipaddress.ip_address(address), allow_private) is not None) is refused


def test_fetch_refusal_names_the_url() -> None:
    url = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(SourceRefused, match="metadata") as info:
        asyncio.run(check_fetch_url(url, allow_private=True))
    assert url in str(info.value)


def test_sink_allow_list() -> None:
    allowed = frozenset({"localhost", "es.internal"})
    check_sink_url("http://es.internal:9200/images/_bulk", allowed)
    with pytest.raises(SinkNotAllowed, match="not in the sink allow-list"):
        check_sink_url("http://attacker.example/collect", allowed)
    with pytest.raises(SinkNotAllowed, match="http or https"):
        check_sink_url("file:///etc/passwd", allowed)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/" + "a" * 5000,
        "ftp://example.com/" + "b" * 5000,
        "http://" + "c" * 300 + "/x.jpg",  # a host label IDNA cannot encode
    ],
    ids=["refused", "not-http", "host-too-long"],
)
def test_fetch_errors_quote_at_most_80_chars_of_the_url(url: str) -> None:
    with pytest.raises((SourceRefused, FetchFailed)) as info:
        asyncio.run(check_fetch_url(url, allow_private=True))
    message = str(info.value)
    assert message.startswith(url[:40])
    assert "…" in message
    assert len(message) < 300


@pytest.mark.parametrize("url", ["http://[::1/x.jpg", "http://example.com:99999/x.jpg"])
def test_unparseable_urls_are_refused_by_name(url: str) -> None:
    with pytest.raises(SourceRefused, match="not a valid URL"):
        asyncio.run(check_fetch_url(url, allow_private=True))
    with pytest.raises(SinkNotAllowed, match="not a valid URL"):
        check_sink_url(url, frozenset({"example.com"}))


def test_sink_refusal_quotes_at_most_80_chars_of_the_url() -> None:
    url = "http://attacker.example/" + "d" * 5000
    with pytest.raises(SinkNotAllowed, match="not in the sink allow-list") as info:
        check_sink_url(url, frozenset({"localhost"}))
    assert len(str(info.value)) < 300
