"""HEIC, AVIF, WebP and camera RAW photos decode like any JPEG and keep their metadata."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image

from orchestrator import formats
from orchestrator.errors import CorruptImage, ImageTooLarge, NotAnImage
from orchestrator.formats import browser_image, is_heif, is_raw, open_image, register_heif
from orchestrator.preprocess import prepare
from orchestrator.types import ImageBytes, ImageSource, PreparedImage, SourceKind
from tests import photos


@pytest.fixture
def heif() -> None:
    pytest.importorskip("pillow_heif", reason="HEIC photos need the heif extra (make setup)")


@pytest.fixture
def raw() -> None:
    pytest.importorskip("rawpy", reason="camera RAW files need the raw extra (make setup)")


def prepared(data: bytes, name: str) -> PreparedImage:
    return prepare(ImageBytes(ImageSource(name, SourceKind.PATH, name), data), max_pixels=10**8)


@pytest.fixture(scope="module")
def reference() -> PreparedImage:
    """The photo as a lossless PNG: what every other copy must look like."""
    return prepared(photos.encoded(photos.scene(), "PNG"), "photo.png")


@pytest.fixture(scope="module")
def tagged() -> PreparedImage:
    return prepared(photos.tagged_jpeg(), "photo.jpg")


def looks_alike(a: PreparedImage, b: PreparedImage) -> bool:
    difference = np.abs(a.pixels.astype(np.int16) - b.pixels.astype(np.int16))
    return a.pixels.shape == b.pixels.shape and float(difference.mean()) < 6.0


@pytest.mark.parametrize(
    ("name", "make", "fmt"),
    [
        ("photo.heic", photos.heic, "HEIF"),
        ("photo.avif", photos.avif, "AVIF"),
        ("photo.dng", photos.tagged_dng, "RAW"),
    ],
)
def test_other_formats_decode_alike_and_keep_their_metadata(
    reference: PreparedImage, tagged: PreparedImage, name: str, make: object, fmt: str
) -> None:
    assert callable(make)
    if fmt in ("HEIF", "RAW"):
        pytest.importorskip("pillow_heif" if fmt == "HEIF" else "rawpy", reason=f"{fmt} extra")
    copy = prepared(make(), name)
    assert looks_alike(copy, reference)
    assert (copy.width, copy.height) == (reference.width, reference.height)
    assert copy.photo is not None
    assert tagged.photo is not None
    assert copy.photo.format == fmt
    for field in ("taken_at", "camera", "lens", "exposure", "location", "place"):
        assert getattr(copy.photo, field) == getattr(tagged.photo, field), field
    if fmt != "RAW":  # the DNG carries EXIF only
        assert copy.photo.keywords == ("Paris", "cat", "Eiffel Tower")
        assert copy.photo.title == tagged.photo.title
    assert copy.photo.warnings == ()


def test_webp_gif_bmp_and_tiff_are_read_by_pillow(reference: PreparedImage) -> None:
    picture = photos.scene()
    for fmt in ("WEBP", "TIFF", "BMP"):
        copy = prepared(
            photos.encoded(picture, fmt, **({"quality": 95} if fmt == "WEBP" else {})), "x"
        )
        assert looks_alike(copy, reference), fmt
        assert copy.photo is not None
        assert copy.photo.format == fmt
    gif = prepared(photos.encoded(picture, "GIF"), "photo.gif")
    assert gif.photo is not None
    assert gif.photo.format == "GIF"


@pytest.mark.usefixtures("raw")
def test_a_raw_file_without_a_preview_is_an_error_naming_it() -> None:
    data = photos.dng(None, (64, 48))
    with pytest.raises(NotAnImage, match=r"^/photos/IMG_0001\.dng: RAW file without a usable"):
        prepared(data, "/photos/IMG_0001.dng")


def test_a_raw_file_is_an_error_naming_the_extra_when_rawpy_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "rawpy", None)  # `import rawpy` now fails
    with pytest.raises(NotAnImage, match=r"IMG_0001\.dng: .*pip install 'deeptag\[raw\]'"):
        prepared(photos.tagged_dng(), "IMG_0001.dng")


@pytest.mark.usefixtures("heif")
def test_a_heic_is_an_error_naming_the_extra_when_pillow_heif_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = photos.heic()
    monkeypatch.setattr(formats, "_heif_available", False)
    monkeypatch.setattr(Image, "ID", [i for i in Image.ID if i != "HEIF"])
    with pytest.raises(NotAnImage, match=r"IMG_0002\.heic: .*pip install 'deeptag\[heif\]'"):
        prepared(data, "IMG_0002.heic")


@pytest.mark.parametrize(
    ("data", "name", "said"),
    [
        (b"\xff\x0a\xfa\x7f" + bytes(64), "scan.jxl", "a JPEG XL image, a format deeptag does not"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "logo.svg", "an SVG"),
        (b"%PDF-1.7\n" + bytes(64), "receipt.pdf", "a PDF document, not an image"),
    ],
)
def test_an_image_format_deeptag_cannot_read_is_named_with_what_to_do(
    data: bytes, name: str, said: str
) -> None:
    with pytest.raises(NotAnImage) as caught:
        prepared(data, name)
    assert caught.value.message.startswith(f"{name}: {said}")


def test_other_bytes_are_not_an_image_plainly() -> None:
    with pytest.raises(NotAnImage) as caught:
        prepared(b"<?xml version='1.0'?><feed/>", "feed.xml")
    assert caught.value.message == "feed.xml: not a decodable image"


@pytest.mark.usefixtures("raw")
def test_a_broken_raw_file_is_an_error_naming_it() -> None:
    junk = b"II*\x00" + bytes(range(256)) * 40
    with pytest.raises((NotAnImage, CorruptImage), match=r"^DSC_0003\.nef: "):
        prepared(junk, "DSC_0003.nef")


@pytest.mark.usefixtures("heif")
def test_heif_opener_registers_once() -> None:
    assert register_heif()
    assert register_heif()
    assert Image.ID.count("HEIF") == 1


@pytest.mark.parametrize(
    ("head", "name", "expected"),
    [
        (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01", "", True),  # CR3
        (b"FUJIFILMCCD-RAW 0201", "", True),  # RAF
        (b"IIRO\x08\x00\x00\x00", "", True),  # ORF
        (b"IIU\x00\x08\x00\x00\x00", "", True),  # RW2
        (b"II*\x00\x10\x00\x00\x00CR\x02\x00", "", True),  # CR2
        (b"II*\x00\x08\x00\x00\x00\x00\x00", "DSC_0001.NEF", True),  # NEF: a TIFF by name
        (b"II*\x00\x08\x00\x00\x00\x00\x00", "scan.tif", False),
        (b"II*\x00\x08\x00\x00\x00\x00\x00", "", False),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "renamed.cr2", False),  # a JPEG named like a RAW
    ],
)
def test_raw_files_are_recognised_by_header_or_name(head: bytes, name: str, expected: bool) -> None:
    assert is_raw(head + bytes(64), name) is expected


@pytest.mark.usefixtures("raw")
def test_a_dng_is_recognised_by_its_header_alone() -> None:
    assert is_raw(photos.tagged_dng(), "")
    assert (
        prepared(photos.tagged_dng(), "data[0]").photo
        == prepared(photos.tagged_dng(), "photo.dng").photo
    )


@pytest.mark.usefixtures("heif")
def test_heif_is_recognised_by_its_brand() -> None:
    assert is_heif(photos.heic())
    assert not is_heif(photos.avif())


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "AVIF"])
def test_browser_formats_are_served_as_they_are(fmt: str) -> None:
    data = photos.encoded(photos.scene(), fmt)
    assert browser_image(data, "photo", 10**8) == (data, f"image/{fmt.lower()}")


@pytest.mark.parametrize(
    ("name", "make"),
    [("photo.heic", photos.heic), ("photo.dng", photos.tagged_dng), ("scan.tif", None)],
)
@pytest.mark.usefixtures("heif", "raw")
def test_other_formats_are_served_as_jpeg(name: str, make: object) -> None:
    data = make() if callable(make) else photos.encoded(photos.scene(), "TIFF")
    served, media_type = browser_image(data, name, 10**8)
    assert media_type == "image/jpeg"
    shown = Image.open(io.BytesIO(served))
    assert shown.format == "JPEG"
    assert shown.size == photos.scene().size


def test_the_browser_copy_is_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    tall = photos.encoded(Image.new("RGB", (200, 100), (200, 30, 30)), "TIFF", exif=exif)
    served, _ = browser_image(tall, "tall.tif", 10**8)
    assert Image.open(io.BytesIO(served)).size == (100, 200)


@pytest.mark.usefixtures("heif")
def test_open_image_refuses_too_many_pixels_before_decoding() -> None:
    with pytest.raises(
        ImageTooLarge, match=r"photo\.heic: 451x300 is 135300 pixels, over the 1000"
    ):
        open_image(photos.heic(), "photo.heic", 1000)
