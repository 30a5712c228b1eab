"""Test photos with known metadata: real scenes (scikit-image's samples) with EXIF, XMP, IPTC.

Pillow writes the EXIF and XMP; IPTC (which Pillow only reads) is spliced in as the JPEG
APP13 segment Photoshop writes, and the DNG is laid out by hand: tifffile cannot store an
already-compressed JPEG preview without the ``imagecodecs`` package. ``write_photos`` writes
the whole set into a folder, hostile ones included, for tests that index files.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, TiffImagePlugin

#: What the tagged photo says about itself, as written.
TAKEN = "2019:07:14 10:30:00"
OFFSET = "+02:00"
MAKE, MODEL = "Canon", "Canon EOS 5D Mark IV"
LENS = "EF24-70mm f/2.8L II USM"
EIFFEL_TOWER = (48.8584, 2.2945)
XMP_KEYWORDS = ("Paris", "cat", "Eiffel Tower")
IPTC_KEYWORDS = ("cat", "holiday", "Fête")
TITLE = "Chelsea in Paris"
DESCRIPTION = "A tabby cat looks up, the Eiffel Tower behind her."

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825


def scene(name: str = "chelsea") -> Image.Image:
    """A real photo (a cat by default; also ``coffee``, ``astronaut``, ``rocket``), in RGB."""
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def rational(value: float, denominator: int = 10_000) -> TiffImagePlugin.IFDRational:
    return TiffImagePlugin.IFDRational(round(value * denominator), denominator)


def dms(degrees: float) -> tuple[TiffImagePlugin.IFDRational, ...]:
    """Degrees as EXIF writes them: whole degrees, whole minutes, seconds."""
    value = abs(degrees)
    whole = int(value)
    minutes = int((value - whole) * 60)
    seconds = (value - whole - minutes / 60) * 3600
    return rational(whole, 1), rational(minutes, 1), rational(seconds, 100)


_DEFAULT: dict[str, Any] = {
    "make": MAKE,
    "model": MODEL,
    "taken": TAKEN,
    "offset": OFFSET,
    "lens": LENS,
    "iso": 200,
    "f_number": rational(2.8, 10),
    "exposure_time": TiffImagePlugin.IFDRational(1, 250),
    "focal_length": rational(50, 1),
    "gps": EIFFEL_TOWER,
    "description": None,
    "digitized": None,
    "date_time": None,
}


def exif(**changes: Any) -> Image.Exif:
    """The tagged photo's EXIF; a change of None leaves a tag out, any value is written as is
    (a string where a rational belongs, an impossible date)."""
    values = _DEFAULT | changes
    block = Image.Exif()
    for tag, name in ((0x010F, "make"), (0x0110, "model"), (0x010E, "description")):
        if values[name] is not None:
            block[tag] = values[name]
    if values["date_time"] is not None:
        block[0x0132] = values["date_time"]
    sub = block.get_ifd(_EXIF_IFD)
    for tag, name in (
        (0x9003, "taken"),
        (0x9011, "offset"),
        (0x9004, "digitized"),
        (0xA434, "lens"),
        (0x8827, "iso"),
        (0x829D, "f_number"),
        (0x829A, "exposure_time"),
        (0x920A, "focal_length"),
    ):
        if values[name] is not None:
            sub[tag] = values[name]
    if values["gps"] is not None:
        lat, lon = values["gps"]
        gps = block.get_ifd(_GPS_IFD)
        gps.update({1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W"})
        gps[4] = dms(lon)
    return block


def xmp(
    keywords: Sequence[str] = XMP_KEYWORDS,
    title: str | None = TITLE,
    description: str | None = DESCRIPTION,
    dates: str = "",
    doctype: str = "",
) -> bytes:
    """An XMP packet with ``dc:subject``, a ``dc:title`` and a ``dc:description`` in two
    languages (French first: the ``x-default`` one must win)."""
    subject = "".join(f"<rdf:li>{escape(k)}</rdf:li>" for k in keywords)
    parts = [f"<dc:subject><rdf:Bag>{subject}</rdf:Bag></dc:subject>" if keywords else ""]
    if title is not None:
        parts.append(
            '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">'
            f"{escape(title)}</rdf:li></rdf:Alt></dc:title>"
        )
    if description is not None:
        parts.append(
            '<dc:description><rdf:Alt><rdf:li xml:lang="fr">Un chat.</rdf:li>'
            f'<rdf:li xml:lang="x-default">{escape(description)}</rdf:li></rdf:Alt>'
            "</dc:description>"
        )
    return (
        f'{doctype}<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
        f'xmlns:exif="http://ns.adobe.com/exif/1.0/" {dates}>'
        f"{''.join(parts)}</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


def billion_laughs() -> bytes:
    """An XMP packet whose one keyword expands to 10^9 "lol"s, were entities expanded."""
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    return xmp(keywords=("&lol9;",), doctype=f"<!DOCTYPE lolz [{entities}]>").replace(
        b"&amp;lol9;", b"&lol9;"
    )


_IPTC_KEYWORD_BYTES = tuple(k.encode() for k in IPTC_KEYWORDS)


def iptc(
    keywords: Sequence[bytes] = _IPTC_KEYWORD_BYTES,
    caption: bytes | None = None,
    utf8: bool = True,
) -> bytes:
    """IPTC IIM records: keywords (2:25), caption (2:120), and the UTF-8 declaration (1:90)."""
    records = [((1, 90), b"\x1b%G")] if utf8 else []
    records += [((2, 25), k) for k in keywords]
    if caption is not None:
        records.append(((2, 120), caption))
    return b"".join(
        bytes([0x1C, record, dataset]) + struct.pack(">H", len(value)) + value
        for (record, dataset), value in records
    )


def with_iptc(jpeg: bytes, records: bytes) -> bytes:
    """``jpeg`` with an APP13 segment holding ``records`` as Photoshop's IPTC resource."""
    pad = b"\x00" * (len(records) % 2)
    resource = b"8BIM" + struct.pack(">HHI", 0x0404, 0, len(records)) + records + pad
    body = b"Photoshop 3.0\x00" + resource
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    if isinstance(params.get("exif"), Image.Exif):
        params["exif"] = params["exif"].tobytes()
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def tagged_jpeg(image: Image.Image | None = None, **exif_changes: Any) -> bytes:
    """The fully tagged photo: EXIF, XMP and IPTC."""
    jpeg = encoded(image or scene(), "JPEG", quality=92, exif=exif(**exif_changes), xmp=xmp())
    return with_iptc(jpeg, iptc())


def heic(image: Image.Image | None = None) -> bytes:
    """The tagged photo as HEIC (EXIF and XMP; HEIF has no IPTC)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encoded(image or scene(), "HEIF", quality=90, exif=exif(), xmp=xmp())


def avif(image: Image.Image | None = None) -> bytes:
    return encoded(image or scene(), "AVIF", quality=90, exif=exif(), xmp=xmp())


# --- DNG ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ref:
    """A TIFF offset not known yet: of directory ``ifd``, or of data block ``blob``."""

    ifd: int = -1
    blob: int = -1


_TIFF_TYPES = {"B": (1, "B"), "A": (2, "s"), "H": (3, "H"), "L": (4, "I"), "R": (5, "II")}
Entry = tuple[int, str, Any]


def _value_bytes(kind: str, values: Any, offsets: dict[_Ref, int]) -> tuple[int, int, bytes]:
    code, fmt = _TIFF_TYPES[kind]
    if kind == "A":
        raw = values.encode() + b"\x00"
        return code, len(raw), raw
    items: list[Any] = [offsets.get(v, 0) if isinstance(v, _Ref) else v for v in values]
    if kind == "R":
        return code, len(items), b"".join(struct.pack("<II", *v) for v in items)
    return code, len(items), struct.pack(f"<{len(items)}{fmt}", *items)


def _directory(entries: list[Entry], at: int, offsets: dict[_Ref, int]) -> bytes:
    head = struct.pack("<H", len(entries))
    extra = b""
    extra_at = at + 2 + 12 * len(entries) + 4
    for tag, kind, values in sorted(entries, key=lambda e: e[0]):
        code, count, raw = _value_bytes(kind, values, offsets)
        if len(raw) <= 4:
            head += struct.pack("<HHI", tag, code, count) + raw.ljust(4, b"\x00")
        else:
            head += struct.pack("<HHII", tag, code, count, extra_at + len(extra))
            extra += raw + b"\x00" * (len(raw) % 2)
    return head + b"\x00\x00\x00\x00" + extra


def _tiff(directories: list[list[Entry]], blobs: list[bytes]) -> bytes:
    """A little-endian TIFF file: ``directories[0]`` first, the others reached by tags."""
    offsets: dict[_Ref, int] = {}
    at = 8
    for i, entries in enumerate(directories):  # sizes do not depend on the offsets
        offsets[_Ref(ifd=i)] = at
        at += len(_directory(entries, at, {}))
    for i, blob in enumerate(blobs):
        offsets[_Ref(blob=i)] = at
        at += len(blob) + len(blob) % 2
    out = b"II*\x00" + struct.pack("<I", 8)
    out += b"".join(_directory(d, offsets[_Ref(ifd=i)], offsets) for i, d in enumerate(directories))
    return out + b"".join(blob + b"\x00" * (len(blob) % 2) for blob in blobs)


def dng(
    preview: bytes | None, size: tuple[int, int], *, make: str = MAKE, model: str = MODEL
) -> bytes:
    """A minimal DNG: the camera's EXIF and GPS in its own directories, noise as sensor data,
    and ``preview`` (a JPEG of ``size``) as the embedded preview, or no preview at all."""
    width, height = size
    sensor = np.random.default_rng(0).integers(0, 4095, (height, width), dtype=np.uint16)
    identity: list[Entry] = [
        (271, "A", make),
        (272, "A", model),
        (50706, "B", [1, 4, 0, 0]),  # DNGVersion
        (50708, "A", f"{make} {model}"),  # UniqueCameraModel
    ]
    cfa: list[Entry] = [
        (256, "L", [width]),
        (257, "L", [height]),
        (258, "H", [16]),
        (259, "H", [1]),
        (262, "H", [32803]),  # colour filter array
        (277, "H", [1]),
        (278, "L", [height]),
        (279, "L", [sensor.nbytes]),
        (33421, "H", [2, 2]),
        (33422, "B", [0, 1, 1, 2]),  # RGGB
    ]
    if preview is None:
        main = [(254, "L", [0]), (273, "L", [_Ref(blob=0)]), *cfa, *identity]
        return _tiff([main], [sensor.tobytes()])
    exif_ifd: list[Entry] = [
        (0x9003, "A", TAKEN),
        (0x9011, "A", OFFSET),
        (0xA434, "A", LENS),
        (0x8827, "H", [200]),
        (0x829D, "R", [(28, 10)]),
        (0x829A, "R", [(1, 250)]),
        (0x920A, "R", [(50, 1)]),
    ]
    lat, lon = EIFFEL_TOWER
    gps_ifd: list[Entry] = [
        (1, "A", "N"),
        (2, "R", [(r.numerator, r.denominator) for r in dms(lat)]),
        (3, "A", "E"),
        (4, "R", [(r.numerator, r.denominator) for r in dms(lon)]),
    ]
    main = [
        (254, "L", [1]),  # a reduced-resolution copy: the preview
        (256, "L", [width]),
        (257, "L", [height]),
        (258, "H", [8, 8, 8]),
        (259, "H", [7]),  # JPEG
        (262, "H", [6]),  # YCbCr
        (273, "L", [_Ref(blob=0)]),
        (277, "H", [3]),
        (278, "L", [height]),
        (279, "L", [len(preview)]),
        (330, "L", [_Ref(ifd=1)]),  # SubIFDs: the sensor data
        (_EXIF_IFD, "L", [_Ref(ifd=2)]),
        (_GPS_IFD, "L", [_Ref(ifd=3)]),
        *identity,
    ]
    raw = [(254, "L", [0]), (273, "L", [_Ref(blob=1)]), *cfa]
    return _tiff([main, raw, exif_ifd, gps_ifd], [preview, sensor.tobytes()])


def tagged_dng(image: Image.Image | None = None) -> bytes:
    """The tagged photo as a DNG whose preview is a plain JPEG (the metadata is the DNG's)."""
    picture = image or scene()
    return dng(encoded(picture, "JPEG", quality=92), picture.size)


# --- Hostile photos -------------------------------------------------------------------------


def truncated_exif() -> bytes:
    """EXIF cut in half: the camera's directory survives, the Exif and GPS ones do not."""
    block = exif().tobytes()
    return encoded(scene(), "JPEG", quality=90, exif=block[: len(block) // 2])


def huge_xmp(size: int = 10_000_000) -> bytes:
    """A WebP (whose XMP chunk has no 64 kB cap) with a 10 MB XMP packet."""
    return encoded(scene(), "WEBP", quality=90, exif=exif(), xmp=xmp(description="x" * size))


def hostile() -> dict[str, bytes]:
    """Photos whose metadata is broken in one way each, by what is broken."""
    picture = scene()
    return {
        "zero_date": tagged_jpeg(picture, taken="0000:00:00 00:00:00"),
        "month_13": tagged_jpeg(picture, taken="2019:13:01 10:30:00"),
        "latitude_200": tagged_jpeg(picture, gps=(200.0, 2.2945)),
        "huge_xmp": huge_xmp(),
        "xml_bomb": encoded(picture, "JPEG", exif=exif(), xmp=billion_laughs()),
        "truncated_exif": truncated_exif(),
        "wrong_types": tagged_jpeg(picture, f_number="f/2.8", iso="fast"),
    }


def write_photos(folder: Path) -> dict[str, Path]:
    """The tagged photo as JPEG, HEIC, AVIF and DNG, and the hostile ones, written to
    ``folder``; HEIC is left out when pillow-heif is not installed."""
    picture = scene()
    photos = {
        "photo.jpg": tagged_jpeg(picture),
        "photo.avif": avif(picture),
        "photo.dng": tagged_dng(picture),
        **{f"{name}.{'webp' if name == 'huge_xmp' else 'jpg'}": b for name, b in hostile().items()},
    }
    with contextlib.suppress(ImportError):
        photos["photo.heic"] = heic(picture)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, data in photos.items():
        path = folder / name
        path.write_bytes(data)
        written[name] = path
    return written
