"""What a photo says about itself: when, where, with what, and the user's own words.

These are the typed values read from an image's EXIF, XMP and IPTC blocks (``metadata.py``)
and its place name (``places.py``); documents carry them as plain JSON fields of the same
names on both search backends (``to_fields`` / ``from_fields``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Camera:
    make: str | None = None  # normalised for search: "Canon", "Apple"
    model: str | None = None  # "EOS 5D Mark IV", "iPhone 12"


@dataclass(frozen=True)
class Exposure:
    iso: int | None = None
    f_number: float | None = None
    exposure_time: float | None = None  # seconds
    focal_length: float | None = None  # millimetres


@dataclass(frozen=True)
class GeoPoint:
    lat: float  # -90..90
    lon: float  # -180..180


@dataclass(frozen=True)
class Place:
    city: str | None = None
    region: str | None = None
    country: str | None = None
    country_code: str | None = None  # ISO 3166-1 alpha-2, upper case: "FR"


@dataclass(frozen=True)
class PhotoMetadata:
    """Everything optional: a field that is absent or unreadable is ``None`` (or empty)."""

    format: str | None = None  # "JPEG", "PNG", "HEIF", "AVIF", "WEBP", "TIFF", "RAW"
    #: ISO 8601, with the offset when the photo recorded one: "2019-07-14T10:30:00+02:00".
    taken_at: str | None = None
    camera: Camera | None = None
    lens: str | None = None
    exposure: Exposure | None = None
    location: GeoPoint | None = None
    place: Place | None = None
    keywords: tuple[str, ...] = ()
    title: str | None = None
    description: str | None = None
    #: What was left out and why ("taken_at: impossible date '0000:00:00 00:00:00'"); never
    #: stored, counted in summaries and on /metrics.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def to_fields(self) -> dict[str, Any]:
        """The document fields, JSON-ready; absent values are left out."""
        out: dict[str, Any] = {}
        for name in ("format", "taken_at", "lens", "title", "description"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.keywords:
            out["keywords"] = list(self.keywords)
        for name in ("camera", "exposure", "location", "place"):
            part = getattr(self, name)
            if part is not None:
                values = {k: v for k, v in vars(part).items() if v is not None}
                if values:
                    out[name] = values
        return out

    @classmethod
    def from_fields(cls, source: Mapping[str, Any]) -> PhotoMetadata:
        """The inverse of :meth:`to_fields`, tolerant of missing or mistyped fields."""

        def text(value: Any) -> str | None:
            return value if isinstance(value, str) and value else None

        def number(value: Any) -> float | None:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return float(value) if ok else None

        def part(name: str) -> Mapping[str, Any]:
            value = source.get(name)
            return value if isinstance(value, Mapping) else {}

        camera = part("camera")
        exposure = part("exposure")
        location = part("location")
        place = part("place")
        keywords = source.get("keywords") or ()
        if isinstance(keywords, str):
            keywords = (keywords,)
        lat, lon = number(location.get("lat")), number(location.get("lon"))
        iso = number(exposure.get("iso"))
        return cls(
            format=text(source.get("format")),
            taken_at=text(source.get("taken_at")),
            camera=Camera(text(camera.get("make")), text(camera.get("model"))) if camera else None,
            lens=text(source.get("lens")),
            exposure=Exposure(
                int(iso) if iso is not None else None,
                number(exposure.get("f_number")),
                number(exposure.get("exposure_time")),
                number(exposure.get("focal_length")),
            )
            if exposure
            else None,
            location=GeoPoint(lat, lon) if lat is not None and lon is not None else None,
            place=Place(
                text(place.get("city")),
                text(place.get("region")),
                text(place.get("country")),
                text(place.get("country_code")),
            )
            if place
            else None,
            keywords=tuple(k for k in keywords if isinstance(k, str) and k),
            title=text(source.get("title")),
            description=text(source.get("description")),
        )


#: The document fields a photo's metadata fills; user metadata may not overwrite them.
PHOTO_FIELDS = frozenset(
    {
        "format",
        "taken_at",
        "camera",
        "lens",
        "exposure",
        "location",
        "place",
        "keywords",
        "title",
        "description",
    }
)
