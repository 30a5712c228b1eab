"""Photo metadata as both backends store it: only values each of them can index (pure).

A value Elasticsearch would refuse (a date it cannot parse, a latitude of 200, an ISO over its
32-bit ``integer``) would cost the whole document there, and a date outside tantivy's range
would abort the process; such values are left out of what is stored, on both backends alike,
so the two always hold the same fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from orchestrator.photo import Exposure, GeoPoint, PhotoMetadata

#: The instants a ``taken_at`` may have: photography is younger than 1800, and tantivy's dates
#: (nanoseconds in 64 bits) end in 2262. Query bounds are clamped to the same window.
TAKEN_AT_MIN = datetime(1800, 1, 1, tzinfo=UTC)
TAKEN_AT_MAX = datetime(2200, 1, 1, tzinfo=UTC)
#: Elasticsearch's ``integer`` is 32-bit.
MAX_ISO = 2**31 - 1
#: Far above any real aperture, shutter time or focal length; well inside a 32-bit float.
MAX_EXPOSURE_VALUE = 1e9

# ISO 8601 as Elasticsearch's strict_date_optional_time reads it: a zone only after a time.
_ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})?)?"
)


def taken_instant(value: str) -> datetime | None:
    """The UTC instant of a stored ``taken_at`` (no offset: UTC, as Elasticsearch reads it),
    or None when it is not a date both backends index."""
    if not _ISO_DATE.fullmatch(value):
        return None
    # Python reads at most microseconds; Elasticsearch keeps milliseconds, tantivy seconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    instant = parsed.astimezone(UTC)
    return instant if TAKEN_AT_MIN <= instant < TAKEN_AT_MAX else None


def storable(photo: PhotoMetadata) -> PhotoMetadata:
    """``photo`` without the values a backend could not index (see the module's docstring)."""
    taken_at = photo.taken_at if photo.taken_at and taken_instant(photo.taken_at) else None
    location = photo.location if photo.location and _on_earth(photo.location) else None
    exposure = photo.exposure
    if exposure is not None:
        exposure = Exposure(
            exposure.iso if exposure.iso is not None and 0 <= exposure.iso <= MAX_ISO else None,
            _bounded(exposure.f_number),
            _bounded(exposure.exposure_time),
            _bounded(exposure.focal_length),
        )
    keywords = tuple(dict.fromkeys(photo.keywords))
    return replace(
        photo, taken_at=taken_at, location=location, exposure=exposure, keywords=keywords
    )


def _on_earth(point: GeoPoint) -> bool:
    return (
        math.isfinite(point.lat)
        and math.isfinite(point.lon)
        and -90 <= point.lat <= 90
        and -180 <= point.lon <= 180
    )


def _bounded(value: float | None) -> float | None:
    if value is None or not math.isfinite(value) or not 0 <= value <= MAX_EXPOSURE_VALUE:
        return None
    return value


def flatten(fields: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted path, value)`` for every leaf of a document's fields, one per list item:
    ``{"camera": {"make": "Canon"}}`` gives ``("camera.make", "Canon")``."""
    for name, value in fields.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping):
            yield from flatten(value, f"{path}.")
        elif isinstance(value, list | tuple):
            for item in value:
                yield path, item
        else:
            yield path, value
