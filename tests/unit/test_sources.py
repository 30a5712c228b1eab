import base64

import pytest

from orchestrator.sources import classify, decode_base64
from orchestrator.types import SourceKind

PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d4944415478da63f8cfc0f01f0005000201a5d9a6a40000000049454e44ae426082"
    )
).decode()


@pytest.mark.parametrize(
    ("item", "kind", "uri"),
    [
        ("http://example.com/a.jpg", SourceKind.URL, "http://example.com/a.jpg"),
        ("HTTPS://example.com/a.jpg", SourceKind.URL, "HTTPS://example.com/a.jpg"),
        ("/srv/photos/cat.jpg", SourceKind.PATH, "/srv/photos/cat.jpg"),
        ("file:///srv/photos/cat.jpg", SourceKind.PATH, "/srv/photos/cat.jpg"),
        ("cat.jpg", SourceKind.PATH, "cat.jpg"),
        (PNG_1PX, SourceKind.BASE64, "3"),
        (f"data:image/png;base64,{PNG_1PX}", SourceKind.BASE64, "3"),
    ],
)
def test_classify_names_base64_inputs_by_index(item: str, kind: SourceKind, uri: str) -> None:
    source = classify(item, 3)
    assert source.kind is kind
    assert source.uri == uri


def test_data_uri_payload_is_the_base64_after_the_header() -> None:
    source = classify(f"data:image/png;base64,{PNG_1PX}", 0)
    assert decode_base64(source.location)[:4] == b"\x89PNG"


def test_invalid_base64_is_reported() -> None:
    with pytest.raises(ValueError, match="not valid base64"):
        decode_base64("abc$")
