"""What deeptag reads from a photo's EXIF, XMP and IPTC, and how it survives bad metadata."""

from __future__ import annotations

import random
import time
from dataclasses import replace

import pytest
from PIL import Image, PngImagePlugin

from orchestrator.distributed.rows import (
    DECODED_COLUMNS,
    decoded_row,
    photo_of,
    photo_text,
    prepared_of,
    to_batch,
    to_rows,
)
from orchestrator.formats import open_image
from orchestrator.metadata import MAX_KEYWORDS, read_metadata
from orchestrator.photo import Camera, Exposure, GeoPoint, PhotoMetadata, Place
from orchestrator.preprocess import prepare
from orchestrator.types import ImageBytes, ImageSource, SourceKind
from tests import photos

PARIS = Place(city="Paris", region="Île-de-France", country="France", country_code="FR")
TAGGED = PhotoMetadata(
    format="JPEG",
    taken_at="2019-07-14T10:30:00+02:00",
    camera=Camera(make="Canon", model="EOS 5D Mark IV"),
    lens="EF24-70mm f/2.8L II USM",
    exposure=Exposure(iso=200, f_number=2.8, exposure_time=0.004, focal_length=50.0),
    location=GeoPoint(lat=48.8584, lon=2.2945),
    place=PARIS,
    # XMP's first, then IPTC's not already there ("cat" is in both).
    keywords=("Paris", "cat", "Eiffel Tower", "holiday", "Fête"),
    title="Chelsea in Paris",
    description="A tabby cat looks up, the Eiffel Tower behind her.",
)


def as_input(data: bytes, name: str = "photo.jpg") -> ImageBytes:
    return ImageBytes(ImageSource(name, SourceKind.PATH, name), data)


def photo_of_bytes(data: bytes, name: str = "photo.jpg", **options: bool) -> PhotoMetadata:
    prepared = prepare(as_input(data, name), max_pixels=10**8, **options)
    assert prepared.pixels.shape == (224, 224, 3)  # the image itself always decodes
    assert prepared.photo is not None
    return prepared.photo


def read(data: bytes, **changes: object) -> PhotoMetadata:
    """The metadata alone, without a place (no gazetteer needed)."""
    opened = open_image(data, "photo.jpg", 10**8)
    opened.image.load()
    return read_metadata(opened, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tagged() -> bytes:
    return photos.tagged_jpeg()


@pytest.fixture(scope="module")
def hostile() -> dict[str, bytes]:
    return photos.hostile()


def test_every_field_is_read_exactly(tagged: bytes) -> None:
    photo = photo_of_bytes(tagged)
    assert photo == TAGGED
    assert photo.warnings == ()


def test_without_location_neither_position_nor_place_is_kept(tagged: bytes) -> None:
    photo = photo_of_bytes(tagged, with_location=False)
    assert photo.location is None
    assert photo.place is None
    assert "location" not in photo.to_fields()
    assert "place" not in photo.to_fields()
    assert photo.camera == TAGGED.camera  # the rest is read as usual
    assert photo.keywords == TAGGED.keywords


def test_a_photo_without_metadata_has_only_its_format() -> None:
    data = photos.encoded(photos.scene("coffee"), "PNG")
    assert photo_of_bytes(data, "coffee.png") == PhotoMetadata(format="PNG")


@pytest.mark.parametrize(
    ("make", "model", "expected"),
    [
        ("Canon", "Canon EOS 5D", Camera("Canon", "EOS 5D")),
        ("CANON", "Canon EOS R5", Camera("Canon", "EOS R5")),
        ("Canon Inc.", "Canon PowerShot G7 X", Camera("Canon", "PowerShot G7 X")),
        ("NIKON CORPORATION", "NIKON D750", Camera("Nikon", "D750")),
        ("Apple", "iPhone 12", Camera("Apple", "iPhone 12")),
        ("SONY", "ILCE-7M3", Camera("Sony", "ILCE-7M3")),
        ("FUJIFILM", "X-T3", Camera("Fujifilm", "X-T3")),
        ("FUJI PHOTO FILM CO., LTD.", "FinePix S5000", Camera("Fujifilm", "FinePix S5000")),
        ("OLYMPUS IMAGING CORP.", "E-M5", Camera("Olympus", "E-M5")),
        ("Panasonic", "DMC-GH4", Camera("Panasonic", "DMC-GH4")),
        ("EASTMAN KODAK COMPANY", "KODAK EASYSHARE C340", Camera("Kodak", "EASYSHARE C340")),
        ("Samsung Techwin", "<Digimax S500>", Camera("Samsung", "<Digimax S500>")),
    ],
)
def test_make_and_model_are_normalised_for_search(make: str, model: str, expected: Camera) -> None:
    data = photos.encoded(photos.scene(), "JPEG", exif=photos.exif(make=make, model=model))
    assert read(data).camera == expected


def test_one_xmp_keyword_and_one_iptc_keyword_are_still_keywords() -> None:
    jpeg = photos.encoded(photos.scene(), "JPEG", xmp=photos.xmp(keywords=("cat",)))
    assert read(jpeg).keywords == ("cat",)
    only_iptc = photos.with_iptc(photos.encoded(photos.scene(), "JPEG"), photos.iptc([b"sofa"]))
    assert read(only_iptc).keywords == ("sofa",)


def test_iptc_alone_gives_keywords_and_caption_in_utf8_or_latin1() -> None:
    plain = photos.encoded(photos.scene(), "JPEG")
    utf8 = photos.iptc([b"caf\xc3\xa9", b"cat", b"Cat"], caption="Chat au café".encode())
    photo = read(photos.with_iptc(plain, utf8))
    assert photo.keywords == ("café", "cat")  # the same keyword twice is kept once
    assert photo.description == "Chat au café"
    latin1 = photos.iptc([b"caf\xe9"], caption=b"Chat au caf\xe9", utf8=False)
    photo = read(photos.with_iptc(plain, latin1))
    assert photo.keywords == ("café",)
    assert photo.description == "Chat au café"


def test_exif_description_unless_a_camera_placeholder() -> None:
    def described(text: str) -> str | None:
        exif = photos.exif(description=text)
        return read(photos.encoded(photos.scene(), "JPEG", exif=exif)).description

    assert described("Chelsea on the sofa") == "Chelsea on the sofa"
    assert described("OLYMPUS DIGITAL CAMERA") is None
    assert described("   ") is None


@pytest.mark.parametrize(
    ("exif_changes", "dates", "expected"),
    [
        ({}, "", "2019-07-14T10:30:00+02:00"),
        ({"offset": None}, "", "2019-07-14T10:30:00"),
        ({"taken": None, "digitized": "2019:07:15 08:00:00"}, "", "2019-07-15T08:00:00"),
        ({"taken": None}, 'xmp:CreateDate="2020-01-02T03:04:05Z"', "2020-01-02T03:04:05+00:00"),
        ({"taken": None}, 'photoshop:DateCreated="1987-05-03"', "1987-05-03"),
        (
            {"taken": None, "digitized": "2019:07:15 08:00:00"},
            'exif:DateTimeOriginal="2018-02-03T04:05:06+09:00"',
            "2018-02-03T04:05:06+09:00",
        ),
        ({"taken": None, "date_time": "2021:03:04 05:06:07"}, "", "2021-03-04T05:06:07"),
        ({"taken": "    :  :     :  :  "}, "", None),  # a camera whose clock was never set
    ],
)
def test_taken_at_comes_from_the_best_date_present(
    exif_changes: dict[str, object], dates: str, expected: str | None
) -> None:
    packet = photos.xmp(dates=dates)
    data = photos.encoded(photos.scene(), "JPEG", exif=photos.exif(**exif_changes), xmp=packet)
    assert read(data).taken_at == expected


def test_taken_at_is_never_the_file_modification_time() -> None:
    data = photos.encoded(photos.scene(), "JPEG", exif=photos.exif(taken=None))
    assert read(data).taken_at is None


@pytest.mark.parametrize(
    ("broken", "missing", "warning"),
    [
        ("zero_date", {"taken_at"}, "impossible date '0000:00:00 00:00:00'"),
        ("month_13", {"taken_at"}, "impossible date '2019:13:01 10:30:00'"),
        ("latitude_200", {"location", "place"}, "location: latitude 200 out of range"),
        ("huge_xmp", {"keywords", "title", "description"}, "xmp: packet of"),
        ("xml_bomb", {"keywords", "title", "description"}, "xmp: refused"),
        (
            "truncated_exif",
            {"taken_at", "lens", "exposure", "location", "place", "keywords", "title"},
            "exif: the Exif directory is unreadable",
        ),
    ],
)
def test_bad_metadata_costs_only_its_field(
    hostile: dict[str, bytes], broken: str, missing: set[str], warning: str
) -> None:
    started = time.monotonic()
    photo = photo_of_bytes(hostile[broken], broken)
    assert time.monotonic() - started < 5  # no entity expansion, no 10 MB parse
    fields = photo.to_fields()
    assert missing.isdisjoint(fields)
    assert fields["camera"] == {"make": "Canon", "model": "EOS 5D Mark IV"}
    for name in {"taken_at", "location", "place", "keywords"} - missing:
        assert fields[name] == TAGGED.to_fields()[name], name
    assert any(warning in w for w in photo.warnings), photo.warnings


def test_wrong_types_lose_only_those_values(hostile: dict[str, bytes]) -> None:
    photo = photo_of_bytes(hostile["wrong_types"])
    assert photo.exposure == Exposure(iso=None, f_number=None, exposure_time=0.004, focal_length=50)
    assert photo.taken_at == TAGGED.taken_at
    assert "exposure.f_number: not a number (str)" in photo.warnings
    assert "exposure.iso: not a number (str)" in photo.warnings


@pytest.mark.parametrize(
    ("gps", "warning"),
    [
        ({1: "N", 2: (91.0, 0.0, 0.0), 3: "E", 4: (2.0, 0.0, 0.0)}, "latitude 91 out of range"),
        ({1: "N", 2: (48.0, 75.0, 0.0), 3: "E", 4: (2.0, 0.0, 0.0)}, "out of range"),
        ({2: (48.0, 51.0, 0.0), 3: "E", 4: (2.0, 17.0, 0.0)}, "without its N/S reference"),
        ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, "no GPS fix"),
    ],
)
def test_impossible_positions_are_dropped(gps: dict[int, object], warning: str) -> None:
    exif = photos.exif(gps=None)
    exif.get_ifd(0x8825).update(gps)
    photo = read(photos.encoded(photos.scene(), "JPEG", exif=exif))
    assert photo.location is None
    assert any(warning in w for w in photo.warnings), photo.warnings


def test_southern_and_western_positions_are_negative() -> None:
    exif = photos.exif(gps=(-33.8568, -70.6483))
    photo = read(photos.encoded(photos.scene(), "JPEG", exif=exif))
    assert photo.location == GeoPoint(lat=-33.8568, lon=-70.6483)


def test_absurd_exposure_values_are_dropped() -> None:
    exif = photos.exif(f_number=photos.rational(0, 1), iso=0)
    photo = read(photos.encoded(photos.scene(), "JPEG", exif=exif))
    assert photo.exposure == Exposure(exposure_time=0.004, focal_length=50.0)
    assert "exposure.f_number: 0 out of range" in photo.warnings


def test_keywords_and_texts_are_bounded() -> None:
    many = [f"keyword {i}" for i in range(MAX_KEYWORDS + 50)] + ["x" * 500]
    packet = photos.xmp(keywords=many, title="t" * 2_000)
    photo = read(photos.encoded(photos.scene(), "WEBP", xmp=packet))
    assert photo.keywords == tuple(many[:MAX_KEYWORDS])
    assert photo.title is not None
    assert len(photo.title) == 500
    assert photo.title.endswith("…")
    assert any(w.startswith("keywords: 1 over") for w in photo.warnings)
    assert any(w.startswith("title: 2000 characters") for w in photo.warnings)


def test_a_failing_geocoder_costs_only_the_place(tagged: bytes) -> None:
    def broken(point: GeoPoint) -> Place | None:
        raise RuntimeError("gazetteer unavailable")

    photo = read(tagged, geocode=broken)
    assert photo.location == TAGGED.location
    assert photo.place is None
    assert "place: RuntimeError: gazetteer unavailable" in photo.warnings


def test_never_raises_even_on_an_image_pillow_made_up() -> None:
    # A bitmap RAW preview is an Image, not an ImageFile: no IPTC reader applies.
    from orchestrator.formats import OpenedImage

    opened = OpenedImage(image=Image.new("RGB", (8, 8)), format="RAW", data=b"II*\x00junk")
    photo = read_metadata(opened)
    assert photo.format == "RAW"
    assert photo.camera is None


def test_metadata_survives_the_ray_row_conversion(hostile: dict[str, bytes]) -> None:
    image = prepare(as_input(hostile["wrong_types"]), max_pixels=10**8)
    batch = to_batch([decoded_row(image)], DECODED_COLUMNS)
    (row,) = to_rows(batch)
    again = prepared_of(row).photo
    assert again == image.photo
    assert again is not None
    assert image.photo is not None
    assert again.warnings == image.photo.warnings  # not compared by ==
    assert photo_of(photo_text(None)) is None


def test_png_keeps_xmp_in_text_and_exif_in_its_own_chunk() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", photos.xmp().decode())
    data = photos.encoded(photos.scene(), "PNG", pnginfo=info, exif=photos.exif())
    photo = photo_of_bytes(data, "photo.png")
    assert photo == replace(TAGGED, format="PNG", keywords=("Paris", "cat", "Eiffel Tower"))


def test_an_oversized_exif_block_is_not_parsed() -> None:
    exif = photos.exif(description="x" * 2_000_000)
    photo = photo_of_bytes(photos.encoded(photos.scene(), "PNG", exif=exif), "photo.png")
    assert photo.camera is None
    assert any(w.startswith("exif: block of") for w in photo.warnings), photo.warnings


def test_randomly_damaged_metadata_never_costs_the_image() -> None:
    rng = random.Random(7)
    picture = photos.scene().resize((64, 43))
    exif = photos.exif().tobytes()
    packet = photos.xmp()

    def damaged(data: bytes, changes: int) -> bytes:
        out = bytearray(data)
        for _ in range(changes):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)

    for _ in range(150):
        fmt = rng.choice(["JPEG", "WEBP", "PNG"])
        try:
            data = photos.encoded(
                picture, fmt, exif=damaged(exif, rng.randrange(1, 8)), xmp=damaged(packet, 2)
            )
        except (ValueError, TypeError, OSError):
            continue  # Pillow would not write that one
        photo = photo_of_bytes(data, f"photo.{fmt.lower()}")
        assert photo.format == fmt
        assert not any(w.startswith("metadata:") for w in photo.warnings), photo.warnings


def test_sixty_seconds_written_by_a_rounding_camera_still_place_the_photo() -> None:
    """48° 53' 60" is how some writers round 48° 53' 59.9996": it is 48° 54', not junk."""
    from PIL import TiffImagePlugin

    from orchestrator.metadata_exif import gps_point

    def r(value: int) -> TiffImagePlugin.IFDRational:
        return TiffImagePlugin.IFDRational(value, 1)

    point = gps_point({1: "N", 2: (r(48), r(53), r(60)), 3: "E", 4: (r(2), r(17), r(60))})
    assert point == GeoPoint(lat=pytest.approx(48.9), lon=pytest.approx(2.3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range"):
        gps_point({1: "N", 2: (r(48), r(61), r(0)), 3: "E", 4: (r(2), r(17), r(0))})
