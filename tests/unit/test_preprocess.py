import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orchestrator.errors import CorruptImage, ImageTooLarge, NotAnImage
from orchestrator.preprocess import decode, prepare, to_model_input
from orchestrator.types import ImageBytes, ImageSource, SourceKind


def as_input(data: bytes, name: str = "img.jpg") -> ImageBytes:
    return ImageBytes(ImageSource(name, SourceKind.PATH, name), data)


def encoded(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def test_model_input_is_a_centre_crop_of_the_short_side_resized_to_256() -> None:
    # A wide image: left third red, middle third green, right third blue.
    image = Image.new("RGB", (900, 300))
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        image.paste(colour, (i * 300, 0, (i + 1) * 300, 300))
    pixels = to_model_input(image)
    assert pixels.shape == (224, 224, 3)
    assert pixels.dtype == np.uint8
    # 900x300 -> 768x256; the central 224 columns all fall inside the green third.
    assert (pixels[:, :, 1] > 250).all()
    assert (pixels[:, :, 0] < 5).all()


def test_exif_orientation_is_applied() -> None:
    tall = Image.new("RGB", (100, 200), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    data = encoded(tall, "JPEG", exif=exif.tobytes())
    assert decode(as_input(data), max_pixels=10**6).size == (200, 100)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_any_mode_becomes_rgb(mode: str) -> None:
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    image = Image.new(mode, (300, 260))
    prepared = prepare(as_input(encoded(image, fmt)), max_pixels=10**6)
    assert prepared.pixels.shape == (224, 224, 3)
    assert (prepared.width, prepared.height) == (300, 260)


def test_errors_name_the_input(bad_images: dict[str, Path]) -> None:
    cases = [
        ("truncated", CorruptImage, "corrupt or truncated"),
        ("text", NotAnImage, "not a decodable image"),
        ("bomb", ImageTooLarge, "over the 50000000 pixel limit"),
    ]
    for name, error, words in cases:
        path = bad_images[name]
        with pytest.raises(error, match=words) as info:
            prepare(as_input(path.read_bytes(), str(path)), max_pixels=50_000_000)
        assert str(path) in str(info.value)


def test_sha256_identifies_the_bytes() -> None:
    data = encoded(Image.new("RGB", (240, 240), (1, 2, 3)))
    first = prepare(as_input(data, "a.png"), 10**6)
    second = prepare(as_input(data, "b.png"), 10**6)
    assert first.sha256 == second.sha256
    assert len(first.sha256) == 64


def test_large_jpegs_decode_at_reduced_scale_but_report_their_full_upright_size(
    samples: dict[str, Path],
) -> None:
    photo = Image.open(samples["chelsea"]).convert("RGB").resize((2400, 1580))
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees
    data = encoded(photo, "JPEG", quality=92, exif=exif.tobytes())

    fast = prepare(as_input(data), max_pixels=10**8)
    reduced = decode(as_input(data), max_pixels=10**8, short_side=256)
    full = to_model_input(decode(as_input(data), max_pixels=10**8))

    assert (fast.width, fast.height) == (1580, 2400)
    assert min(reduced.size) >= 256
    assert max(reduced.size) < 2400  # it did decode at a reduced scale
    # What the model sees barely differs from decoding every pixel.
    difference = np.abs(fast.pixels.astype(int) - full.astype(int)).mean()
    assert difference < 4
