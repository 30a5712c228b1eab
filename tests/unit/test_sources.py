import asyncio
import base64
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from orchestrator.errors import ItemError, NotAnImage, SourceRefused
from orchestrator.fetch import FetchPolicy, SourceReader
from orchestrator.sources import classify, classify_all, decode_base64
from orchestrator.types import ImageBytes, ImageSource, SourceKind

PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d4944415478da63f8cfc0f01f0005000201a5d9a6a40000000049454e44ae426082"
    )
).decode()

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
FORMATS["TIFF"] = "image/tiff"


def image_bytes(fmt: str) -> bytes:
    out = io.BytesIO()
    # Noise, so the encoded file is long like a photo's and not a few dozen bytes.
    Image.effect_noise((64, 48), 60).convert("RGB").save(out, fmt)
    return out.getvalue()


def read(source: ImageSource, roots: tuple[Path, ...] | None = None) -> ImageBytes:
    async def go() -> ImageBytes:
        async with httpx.AsyncClient() as http:
            reader = SourceReader(http, FetchPolicy(max_bytes=10**8, path_roots=roots))
            return await reader.read(source)

    return asyncio.run(go())


def read_error(source: ImageSource, roots: tuple[Path, ...] | None = None) -> ItemError:
    with pytest.raises(ItemError) as info:
        read(source, roots)
    return info.value


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


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize(
    "encode",
    [
        lambda data: base64.b64encode(data).decode(),
        # What base64.encodebytes (and so many clients) send: a line break every 76 chars.
        lambda data: base64.encodebytes(data).decode(),
    ],
    ids=["plain", "line-breaks"],
)
def test_base64_images_are_read_whatever_their_first_character(
    fmt: str, encode: Callable[[bytes], str], tmp_path: Path
) -> None:
    data = image_bytes(fmt)
    text = encode(data)
    # Under image roots, as the server runs: a JPEG's base64 ("/9j/...") is no path.
    sources = classify_all([text, f"data:{FORMATS[fmt]};base64,{text}"], (tmp_path,))
    for index, source in enumerate(sources):
        assert (source.kind, source.uri) == (SourceKind.BASE64, str(index))
        assert read(source, (tmp_path,)).data == data


def test_jpeg_base64_starts_with_a_slash_and_is_still_an_image() -> None:
    text = base64.b64encode(image_bytes("JPEG")).decode()
    assert text.startswith("/9j/")
    assert classify(text, 0, (Path("/srv/photos"),)).kind is SourceKind.BASE64


def test_a_real_path_under_the_roots_is_a_path(tmp_path: Path) -> None:
    photo = tmp_path / "photos" / "cat.jpg"
    photo.parent.mkdir()
    photo.write_bytes(image_bytes("JPEG"))
    source = classify(str(photo), 0, (tmp_path,))
    assert (source.kind, source.uri) == (SourceKind.PATH, str(photo))
    assert read(source, (tmp_path,)).data == photo.read_bytes()


def test_an_existing_file_wins_when_an_item_reads_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative path that is also the base64 of a PNG: the file that exists decides.
    ambiguous = PNG_1PX.rstrip("=")
    monkeypatch.chdir(tmp_path)
    assert classify(ambiguous, 0, (tmp_path,)).kind is SourceKind.BASE64
    (tmp_path / ambiguous).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / ambiguous).write_bytes(b"\x89PNG\r\n\x1a\n a file")
    assert classify(ambiguous, 0, (tmp_path,)).kind is SourceKind.PATH
    # Outside the roots, the file cannot be read, so the item stays an image.
    assert classify(ambiguous, 0, (tmp_path / "elsewhere",)).kind is SourceKind.BASE64


@pytest.mark.parametrize(
    "garbage",
    [
        "$%&not base64 at all " * 20_000,
        "/" + "A" * 300_000,  # base64 characters, but no image inside
        "/srv/" + "x" * 3000,
    ],
    ids=["symbols", "slash-and-letters", "long-path"],
)
def test_long_garbage_fails_alone_with_a_short_error(garbage: str, tmp_path: Path) -> None:
    error = read_error(classify(garbage, 7, (tmp_path,)), (tmp_path,))
    assert len(error.message) < 200
    assert garbage[:100] not in error.message
    if len(garbage) > 4096:
        # Too long to be any path: named by its index like a base64 input.
        assert "data[7]" in error.message


def test_errors_name_base64_inputs_by_index() -> None:
    not_image = base64.b64encode(b"just some text, repeated " * 20).decode()
    for item in (not_image, f"data:image/gif;base64,{not_image}"):
        error = read_error(classify(item, 5))
        assert isinstance(error, NotAnImage)
        assert error.message.startswith("data[5]: content is not an image")
    assert read_error(classify("data:image/png;base64,abc$", 2)).message.startswith(
        "base64 input data[2]: not valid base64"
    )


def test_a_path_outside_the_roots_is_refused_without_quoting_it_whole(tmp_path: Path) -> None:
    outside = "/etc/" + "deep/" * 100 + "passwd"
    error = read_error(classify(outside, 0, (tmp_path,)), (tmp_path,))
    assert isinstance(error, SourceRefused)
    assert "image roots" in error.message
    assert error.message.startswith("/etc/deep/")
    assert "…" in error.message
    assert len(error.message) < 200


def test_data_uri_payload_is_the_base64_after_the_header() -> None:
    source = classify(f"data:image/png;base64,{PNG_1PX}", 0)
    assert decode_base64(source.location)[:4] == b"\x89PNG"


def test_invalid_base64_is_reported() -> None:
    with pytest.raises(ValueError, match="not valid base64"):
        decode_base64("abc$")
