"""What a photo says about itself, read from the image already in memory (never raises).

``read_metadata`` gathers EXIF (when, camera, lens, exposure, GPS), XMP and IPTC (keywords,
title, description) into one :class:`~orchestrator.photo.PhotoMetadata`. Bad metadata never
costs the image, nor the other fields: a value that is missing, mistyped, absurd or too large
is left out and a short warning says which and why.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, TypeVar

from PIL import Image, ImageFile, IptcImagePlugin

from orchestrator import metadata_exif as exif_tags
from orchestrator.formats import OpenedImage
from orchestrator.metadata_exif import (
    DATE_TIME,
    DATE_TIME_DIGITIZED,
    DATE_TIME_ORIGINAL,
    EXIF_IFD,
    GPS_IFD,
    IMAGE_DESCRIPTION,
    LENS_MODEL,
    MAKE,
    MODEL,
    OFFSET_TIME,
    OFFSET_TIME_DIGITIZED,
    OFFSET_TIME_ORIGINAL,
)
from orchestrator.metadata_xmp import Words, read_iptc, read_xmp
from orchestrator.photo import GeoPoint, PhotoMetadata, Place

#: Metadata blocks larger than this are not parsed (a JPEG's cannot pass 64 kB anyway).
MAX_EXIF_BYTES = 1_000_000
MAX_IPTC_BYTES = 1_000_000
MAX_KEYWORDS = 100
MAX_KEYWORD_CHARS = 100
MAX_TITLE_CHARS = 500
MAX_DESCRIPTION_CHARS = 5_000
#: How much of a library's error a warning quotes.
_REASON_CHARS = 120
#: What cameras write as ImageDescription when the user wrote nothing (compared casefolded).
_PLACEHOLDER_DESCRIPTIONS = frozenset(
    {
        "olympus digital camera",
        "sony dsc",
        "digital camera",
        "samsung digital camera",
        "konica minolta digital camera",
        "minolta digital camera",
        "sanyo digital camera",
        "pentax digital camera",
        "digital still camera",
        "exif_jpeg_picture",
        "<exif_jpeg_picture>",
        "default",
        "image",
        "picture",
    }
)
_IPTC_RESOURCE = 0x0404  # the IPTC block among a JPEG's Photoshop resources
_XMP_TIFF_TAG = 700

Geocoder = Callable[[GeoPoint], Place | None]
T = TypeVar("T")


def read_metadata(
    opened: OpenedImage, *, with_location: bool = True, geocode: Geocoder | None = None
) -> PhotoMetadata:
    """The photo's metadata; with ``with_location=False`` neither position nor place is kept.

    ``opened.image`` should be loaded already: a PNG may keep its text after the pixels.
    ``geocode`` names the place of the position (:func:`orchestrator.places.place_of`); None
    leaves ``place`` out. Never raises: what cannot be read is left out with a warning.
    """
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # Pillow warns and skips the tags of a corrupt EXIF block; what could not be read is
            # noted below instead. (Not record=True: its recorder is process-wide and two
            # threads restoring it out of order would leave one in place for good.)
            warnings.simplefilter("ignore")
            return _read(opened, with_location, geocode, notes)
    except Exception as e:  # the promise: metadata never costs the image
        notes.append(f"metadata: unreadable ({_reason(e)})")
        return PhotoMetadata(format=opened.format, warnings=tuple(notes))


def _read(
    opened: OpenedImage, with_location: bool, geocode: Geocoder | None, notes: list[str]
) -> PhotoMetadata:
    image = opened.image
    main, exif, gps = _exif_tags(opened, notes)
    xmp = _field("xmp", notes, lambda: _xmp_words(image, main)) or Words()
    iptc = _field("iptc", notes, lambda: _iptc_words(image)) or Words()
    camera = _field("camera", notes, lambda: exif_tags.camera(main.get(MAKE), main.get(MODEL)))
    lens = None
    if LENS_MODEL in exif:
        lens = _field("lens", notes, lambda: exif_tags.lens(exif[LENS_MODEL]))
    if lens is None and opened.raw_lens:
        lens = _field("lens", notes, lambda: exif_tags.lens(opened.raw_lens))
    location = place = None
    if with_location:
        location = _field("location", notes, lambda: exif_tags.gps_point(gps))
        if location is not None and geocode is not None:
            place = _field("place", notes, lambda: geocode(location))
    exif_description = None
    if IMAGE_DESCRIPTION in main:
        exif_description = _field("description", notes, lambda: _description(main))
    return PhotoMetadata(
        format=opened.format,
        taken_at=_taken_at(main, exif, xmp, notes),
        camera=camera,
        lens=lens,
        exposure=exif_tags.exposure(exif, notes),
        location=location,
        place=place,
        keywords=_keywords((*xmp.keywords, *iptc.keywords), notes),
        title=_bounded("title", xmp.title or iptc.title, MAX_TITLE_CHARS, notes),
        description=_bounded(
            "description",
            xmp.description or iptc.description or exif_description,
            MAX_DESCRIPTION_CHARS,
            notes,
        ),
        warnings=tuple(notes),
    )


def _field(name: str, notes: list[str], read: Callable[[], T | None]) -> T | None:
    """``read()``, or None with a warning when it fails: one field never costs another."""
    try:
        return read()
    except Exception as e:
        notes.append(f"{name}: {_reason(e)}")
        return None


def _reason(error: BaseException) -> str:
    said = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
    said = " ".join(said.split())
    return said if len(said) <= _REASON_CHARS else said[: _REASON_CHARS - 1] + "…"


# --- EXIF ----------------------------------------------------------------------------------

Tags = dict[int, Any]


def _exif_tags(opened: OpenedImage, notes: list[str]) -> tuple[Tags, Tags, Tags]:
    """IFD0, the Exif IFD and the GPS IFD; a RAW file's own directories before its preview's."""
    blocks: list[Image.Exif] = []
    if opened.format == "RAW":
        raw = _field("exif", notes, lambda: _raw_exif(opened.data))
        if raw is not None:
            blocks.append(raw)
    preview = _field("exif", notes, lambda: _image_exif(opened.image))
    if preview is not None:
        blocks.append(preview)
    main: Tags = {}
    exif: Tags = {}
    gps: Tags = {}
    for block in blocks:
        ifd0: Tags = _field("exif", notes, partial(dict, block)) or {}
        for tag, value in ifd0.items():
            main.setdefault(tag, value)
        for tag, value in _sub_ifd(block, ifd0, EXIF_IFD, "Exif", notes).items():
            exif.setdefault(tag, value)
        # One position, whole: a latitude from one block and a reference from another is none.
        gps = gps or _sub_ifd(block, ifd0, GPS_IFD, "GPS", notes)
    return main, exif, gps


def _image_exif(image: Image.Image) -> Image.Exif | None:
    raw = image.info.get("exif")
    if isinstance(raw, bytes):
        if len(raw) > MAX_EXIF_BYTES:
            raise ValueError(f"block of {len(raw)} bytes, over the {MAX_EXIF_BYTES} byte limit")
        # A fresh parse, not image.getexif(): decoding may have cached a partial one.
        block = Image.Exif()
        block.load(raw)
        return block
    # TIFF files are their own EXIF; PNG may carry it as text.
    return image.getexif()


def _raw_exif(data: bytes) -> Image.Exif | None:
    """The EXIF of a TIFF-based RAW file (DNG, CR2, NEF, ARW, ORF, RW2), from its header on."""
    head = data[:4]
    if head in (b"IIRO", b"IIRS", b"IIU\x00"):
        # Olympus and Panasonic mark their TIFF files with a magic of their own.
        data = b"II*\x00" + data[4:]
    elif head == b"MMOR":
        data = b"MM\x00*" + data[4:]
    elif head not in (b"II*\x00", b"MM\x00*"):
        return None  # CR3 and RAF: their previews carry the EXIF
    block = Image.Exif()
    block.load(data)
    return block


def _sub_ifd(block: Image.Exif, ifd0: Tags, pointer: int, name: str, notes: list[str]) -> Tags:
    if pointer not in ifd0:
        return {}
    try:
        found = dict(block.get_ifd(pointer))
    except Exception as e:
        notes.append(f"exif: the {name} directory is unreadable ({_reason(e)})")
        return {}
    if not found:
        notes.append(f"exif: the {name} directory is unreadable (truncated or corrupt)")
    return found


def _description(main: Tags) -> str | None:
    found = exif_tags.text(main[IMAGE_DESCRIPTION], MAX_DESCRIPTION_CHARS * 2)
    return None if found is None or found.casefold() in _PLACEHOLDER_DESCRIPTIONS else found


def _taken_at(main: Tags, exif: Tags, xmp: Words, notes: list[str]) -> str | None:
    """The first readable of the photo's creation dates, best first; never the file's mtime."""
    xmp_dates = dict(xmp.dates)
    read: Callable[[], str | None]
    for name, tags, tag, zone in (
        ("DateTimeOriginal", exif, DATE_TIME_ORIGINAL, OFFSET_TIME_ORIGINAL),
        ("exif:DateTimeOriginal", None, 0, 0),
        ("DateTimeDigitized", exif, DATE_TIME_DIGITIZED, OFFSET_TIME_DIGITIZED),
        ("photoshop:DateCreated", None, 0, 0),
        ("xmp:CreateDate", None, 0, 0),
        ("DateTime", main, DATE_TIME, OFFSET_TIME),
    ):
        if tags is None and name in xmp_dates:
            read = partial(exif_tags.xmp_date, xmp_dates[name])
        elif tags is not None and tag in tags:
            read = partial(exif_tags.exif_date, tags[tag], exif.get(zone))
        else:
            continue
        found = _field(f"taken_at ({name})", notes, read)
        if found is not None:
            return found
    return None


# --- XMP and IPTC --------------------------------------------------------------------------


def _xmp_words(image: Image.Image, main: Tags) -> Words | None:
    """The XMP of the image (JPEG, PNG, WebP, AVIF, HEIF) or of its TIFF directory (TIFF,
    and a RAW file's own, as DNG keeps it)."""
    packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if not packet:
        packet = main.get(_XMP_TIFF_TAG)
    if isinstance(packet, tuple):  # a TIFF tag written as a list of bytes
        packet = bytes(b for b in packet if isinstance(b, int))
    return read_xmp(packet) if isinstance(packet, bytes | str) and packet else None


def _iptc_words(image: Image.Image) -> Words | None:
    if not isinstance(image, ImageFile.ImageFile):
        return None  # a RAW file's bitmap preview
    resources = image.info.get("photoshop")
    block = resources.get(_IPTC_RESOURCE) if isinstance(resources, Mapping) else None
    if isinstance(block, bytes) and len(block) > MAX_IPTC_BYTES:
        raise ValueError(f"block of {len(block)} bytes, over the {MAX_IPTC_BYTES} byte limit")
    records = IptcImagePlugin.getiptcinfo(image)
    return read_iptc(records) if records else None


def _keywords(found: Iterable[str], notes: list[str]) -> tuple[str, ...]:
    """Cleaned keywords in order, each once (case aside), at most :data:`MAX_KEYWORDS`."""
    kept: dict[str, str] = {}
    too_long = 0
    for raw in found:
        try:
            keyword = exif_tags.text(raw, MAX_KEYWORD_CHARS)
        except ValueError:
            too_long += 1
            continue
        if keyword is not None:
            kept.setdefault(keyword.casefold(), keyword)
    if too_long:
        notes.append(f"keywords: {too_long} over {MAX_KEYWORD_CHARS} characters left out")
    if len(kept) > MAX_KEYWORDS:
        notes.append(f"keywords: {len(kept)}, only the first {MAX_KEYWORDS} kept")
    return tuple(kept.values())[:MAX_KEYWORDS]


def _bounded(name: str, value: str | None, limit: int, notes: list[str]) -> str | None:
    """Cleaned text cut to ``limit`` characters (with a warning when cut)."""
    if value is None:
        return None
    cleaned = exif_tags.text(value, len(value))
    if cleaned is not None and len(cleaned) > limit:
        notes.append(f"{name}: {len(cleaned)} characters, cut to {limit}")
        return cleaned[: limit - 1] + "…"
    return cleaned
