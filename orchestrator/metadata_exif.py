"""Typed values from EXIF tags: dates, camera, lens, exposure, GPS position (pure).

Every reader takes the plain tag values Pillow gives (``str``, ``bytes``, numbers, tuples,
whatever a writer put there) and either returns a checked value or raises ``ValueError`` with
a short reason; the caller turns the reason into a warning and leaves the field out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from numbers import Real
from typing import Any

from orchestrator.photo import Camera, Exposure, GeoPoint

# IFD0
IMAGE_DESCRIPTION = 0x010E
MAKE = 0x010F
MODEL = 0x0110
DATE_TIME = 0x0132
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
# Exif IFD
EXPOSURE_TIME = 0x829A
F_NUMBER = 0x829D
ISO = 0x8827
DATE_TIME_ORIGINAL = 0x9003
DATE_TIME_DIGITIZED = 0x9004
OFFSET_TIME = 0x9010
OFFSET_TIME_ORIGINAL = 0x9011
OFFSET_TIME_DIGITIZED = 0x9012
FOCAL_LENGTH = 0x920A
LENS_MODEL = 0xA434
# GPS IFD
GPS_LATITUDE_REF, GPS_LATITUDE, GPS_LONGITUDE_REF, GPS_LONGITUDE = 1, 2, 3, 4

#: Longest text kept from one tag; EXIF strings are short, anything longer is junk.
MAX_TAG_CHARS = 200
#: Years a photo can have been taken in: the first photograph was taken in 1826.
YEARS = range(1826, 2200)

_EXIF_DATE = re.compile(r"(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_XMP_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?"
)
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

#: Camera makers as people search for them, by the first words of the EXIF ``Make`` without
#: company suffixes (case-insensitive).
_MAKERS = {
    "apple": "Apple",
    "asahi": "Pentax",
    "canon": "Canon",
    "casio": "Casio",
    "dji": "DJI",
    "eastman kodak": "Kodak",
    "fuji": "Fujifilm",
    "fujifilm": "Fujifilm",
    "google": "Google",
    "gopro": "GoPro",
    "hasselblad": "Hasselblad",
    "hmd global": "Nokia",
    "htc": "HTC",
    "huawei": "Huawei",
    "kodak": "Kodak",
    "konica minolta": "Konica Minolta",
    "leica": "Leica",
    "lg": "LG",
    "lge": "LG",
    "minolta": "Minolta",
    "motorola": "Motorola",
    "nikon": "Nikon",
    "nokia": "Nokia",
    "olympus": "Olympus",
    "om": "OM System",
    "oneplus": "OnePlus",
    "panasonic": "Panasonic",
    "pentax": "Pentax",
    "ricoh": "Ricoh",
    "samsung": "Samsung",
    "seiko epson": "Epson",
    "sigma": "Sigma",
    "sony": "Sony",
    "xiaomi": "Xiaomi",
}
# Trailing words of a maker's legal name: "NIKON CORPORATION", "Canon Inc.", "FUJI PHOTO FILM
# CO., LTD.", "OM Digital Solutions", "Leica Camera AG", "RICOH IMAGING COMPANY, LTD.".
_COMPANY_SUFFIX = re.compile(
    r"(?:[\s,.]+(?:corporation|corp|incorporated|inc|company|co|ltd|limited|gmbh|ag|s\.?a|"
    r"plc|llc|imaging|optical|camera|electronics|photo film|computer|digital solutions|"
    r"techwin))+[\s,.]*$",
    re.IGNORECASE,
)
_NO_LENS = re.compile(r"[\s\-]*|0(?:\.0)?\s*mm\s*f/?0(?:\.0)?|unknown.*", re.IGNORECASE)


def text(value: Any, limit: int = MAX_TAG_CHARS) -> str | None:
    """A tag's text with control characters and runs of spaces collapsed; None when blank.

    Raises:
        ValueError: not text, or longer than ``limit``.
    """
    if isinstance(value, bytes):
        value = decode_text(value)
    if not isinstance(value, str):
        raise ValueError(f"not text ({type(value).__name__})")
    cleaned = " ".join(_CONTROL.sub(" ", value).split())
    if len(cleaned) > limit:
        raise ValueError(f"{len(cleaned)} characters, over {limit}")
    return cleaned or None


def decode_text(raw: bytes) -> str:
    """UTF-8, else Latin-1 (older cameras and IPTC writers): any bytes decode."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def number(value: Any) -> float:
    """A finite number from an EXIF value (a rational, an int, or a one-item tuple).

    Raises:
        ValueError: a string, an empty tuple, a zero denominator, ...
    """
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"not a number ({type(value).__name__})")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError("not a finite number")
    return result


def exif_date(value: Any, offset: Any = None) -> str | None:
    """``2019:07:14 10:30:00`` and ``+02:00`` as ISO 8601: ``2019-07-14T10:30:00+02:00``.

    A missing or unreadable offset leaves a local time without one; a blank date (cameras
    whose clock was never set write ``    :  :     :  :  ``) is None.

    Raises:
        ValueError: not a date, or an impossible one (``0000:00:00``, month 13).
    """
    shown = text(value)
    if shown is None or not any(c.isdigit() for c in shown):
        return None
    match = _EXIF_DATE.match(shown)
    if match is None:
        raise ValueError(f"not a date {shown!r}")
    when = _checked(shown, *(int(g) for g in match.groups()))
    try:
        zone = _offset(text(offset)) if offset is not None else ""
    except ValueError:
        zone = ""
    return when + zone


def xmp_date(value: str) -> str:
    """An XMP date (ISO 8601, often partial) in the form :func:`exif_date` gives.

    A date without a time stays a date (``2019-07-14``): midnight would be a guess.

    Raises:
        ValueError: not a date with at least a day, or an impossible one.
    """
    match = _XMP_DATE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not a date {value[:40]!r}")
    year, month, day, hour, minute, second, zone = match.groups()
    if hour is None:
        return _checked(value, int(year), int(month), int(day))[:10]
    clock = int(hour), int(minute), int(second or 0)
    when = _checked(value, int(year), int(month), int(day), *clock)
    return when + ("+00:00" if zone == "Z" else _offset(zone) if zone else "")


def _checked(
    shown: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> str:
    try:
        if year not in YEARS:
            raise ValueError(year)
        # Naive on purpose: the offset, when the photo has one, is appended apart.
        return datetime(year, month, day, hour, minute, second).isoformat()
    except ValueError:
        raise ValueError(f"impossible date {shown[:40]!r}") from None


def _offset(zone: str | None) -> str:
    match = _OFFSET.fullmatch(zone or "")
    if match is None:
        raise ValueError(f"not a time zone offset {zone!r}")
    sign, hours, minutes = match.groups()
    if int(hours) > 14 or int(minutes) >= 60:
        raise ValueError(f"impossible time zone offset {zone!r}")
    return f"{sign}{hours}:{minutes}"


def maker(make: str) -> str:
    """The camera maker as people search for it: "NIKON CORPORATION" → "Nikon"."""
    short = _COMPANY_SUFFIX.sub("", make).strip() or make
    key = short.casefold()
    for length in (2, 1):  # "eastman kodak", then "kodak"
        words = " ".join(key.split()[:length])
        if words in _MAKERS:
            return _MAKERS[words]
    return short


def camera(make: Any, model: Any) -> Camera | None:
    """The camera, its model without the maker's name repeated: "Canon EOS 5D" → "EOS 5D".

    Raises:
        ValueError: ``Make`` or ``Model`` is not text.
    """
    raw_make = text(make) if make is not None else None
    raw_model = text(model) if model is not None else None
    name = maker(raw_make) if raw_make else None
    if raw_model and raw_make:
        prefixes = {name or "", raw_make, raw_make.split()[0], _COMPANY_SUFFIX.sub("", raw_make)}
        for prefix in sorted(prefixes, key=len, reverse=True):
            cut = len(prefix)
            if (
                0 < cut < len(raw_model)
                and raw_model[:cut].casefold() == prefix.casefold()
                and raw_model[cut] in " -_"
            ):
                raw_model = raw_model[cut + 1 :].strip() or raw_model
                break
    if name is None and raw_model is None:
        return None
    return Camera(make=name, model=raw_model)


def lens(value: Any) -> str | None:
    """The lens model; placeholders some bodies write ("----", "0.0 mm f/0.0") are none.

    Raises:
        ValueError: not text.
    """
    shown = text(value)
    return None if shown is None or _NO_LENS.fullmatch(shown) else shown


#: Plausible ranges: anything outside is a writer's bug, not a photo.
_ISO_RANGE = (1.0, 10_000_000.0)
_F_NUMBER_RANGE = (0.5, 1024.0)
_EXPOSURE_RANGE = (1e-7, 86_400.0)  # up to a day: astrophotography
_FOCAL_RANGE = (0.1, 10_000.0)


def exposure(tags: Mapping[int, Any], notes: list[str]) -> Exposure | None:
    """ISO, aperture, shutter time and focal length from the Exif IFD; bad ones noted, left out."""

    def read(tag: int, name: str, bounds: tuple[float, float]) -> float | None:
        if tag not in tags:
            return None
        try:
            value = number(tags[tag])
            if not bounds[0] <= value <= bounds[1]:
                raise ValueError(f"{value:g} out of range")
        except ValueError as e:
            notes.append(f"exposure.{name}: {e}")
            return None
        return float(f"{value:.6g}")

    iso = read(ISO, "iso", _ISO_RANGE)
    values = Exposure(
        iso=None if iso is None else round(iso),
        f_number=read(F_NUMBER, "f_number", _F_NUMBER_RANGE),
        exposure_time=read(EXPOSURE_TIME, "exposure_time", _EXPOSURE_RANGE),
        focal_length=read(FOCAL_LENGTH, "focal_length", _FOCAL_RANGE),
    )
    return None if values == Exposure() else values


def gps_point(gps: Mapping[int, Any]) -> GeoPoint | None:
    """The position of a GPS IFD (degrees, minutes, seconds and N/S/E/W); None when absent.

    Raises:
        ValueError: a reference missing, a value out of range, or not numbers; (0, 0), which
            receivers write when they have no fix, is refused too.
    """
    if GPS_LATITUDE not in gps and GPS_LONGITUDE not in gps:
        return None
    lat = _degrees(gps.get(GPS_LATITUDE), gps.get(GPS_LATITUDE_REF), "latitude", 90.0, "NS")
    lon = _degrees(gps.get(GPS_LONGITUDE), gps.get(GPS_LONGITUDE_REF), "longitude", 180.0, "EW")
    if lat == 0.0 and lon == 0.0:
        raise ValueError("0, 0 (no GPS fix)")
    return GeoPoint(lat=round(lat, 7), lon=round(lon, 7))


def _degrees(value: Any, ref: Any, name: str, limit: float, refs: str) -> float:
    if value is None:
        raise ValueError(f"no {name}")
    parts = value if isinstance(value, tuple) else (value,)
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"{name} is not degrees, minutes, seconds")
    numbers = [number(p) for p in parts]
    # Exactly 60 is a writer rounding 59.9996 up; more is junk.
    if any(n < 0 for n in numbers) or any(n > 60 for n in numbers[1:]):
        raise ValueError(f"{name} {tuple(numbers)} out of range")
    degrees = sum(n / 60.0**i for i, n in enumerate(numbers))
    if degrees > limit:
        raise ValueError(f"{name} {degrees:g} out of range")
    direction = (text(ref, 8) or "").upper()[:1] if ref is not None else ""
    if len(direction) != 1 or direction not in refs:
        raise ValueError(f"{name} without its {'/'.join(refs)} reference")
    return -degrees if direction == refs[1] else degrees
