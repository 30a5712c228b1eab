"""Distances on the Earth, for ``near`` and ``within`` (pure).

Elasticsearch's ``geo_distance`` filter measures the arc on a sphere of the Earth's mean
radius; the embedded index does the same (haversine), so both keep the same photos.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from orchestrator.errors import BadRequest
from orchestrator.search.base import GeoFilter
from orchestrator.search.limits import shown

#: Elasticsearch's GeoUtils.EARTH_MEAN_RADIUS, in metres.
EARTH_RADIUS_M = 6_371_008.7714
#: Half of the Earth's circumference is as far as two places can be: a larger ``within``
#: is almost surely a typo (and would make every bounding box the whole globe anyway).
MAX_WITHIN_M = 20_000_000.0

# Plain decimals only: no exponents, "nan" or "inf" can slip through.
_NUMBER = r"[+-]?\d{1,3}(?:\.\d{1,15})?"
_POINT = re.compile(rf"\s*({_NUMBER})\s*,\s*({_NUMBER})\s*")
_DISTANCE = re.compile(r"\s*(\d{1,9}(?:\.\d{1,9})?)\s*(m|km)\s*", re.IGNORECASE)
_UNITS = {"m": 1.0, "km": 1000.0}

Degrees = npt.NDArray[np.float64]


def parse_near(text: str) -> tuple[float, float]:
    """``"48.8584,2.2945"`` as (latitude, longitude) in degrees.

    Raises:
        BadRequest: not two decimal numbers, or one out of range; the message says which.
    """
    match = _POINT.fullmatch(text)
    if match is None:
        raise BadRequest(
            f"near {shown(text)}: expected LAT,LON in decimal degrees, e.g. 48.8584,2.2945"
        )
    lat, lon = float(match[1]), float(match[2])
    if not -90 <= lat <= 90:
        raise BadRequest(f"near {shown(text)}: latitude {match[1]} is outside -90..90")
    if not -180 <= lon <= 180:
        raise BadRequest(f"near {shown(text)}: longitude {match[2]} is outside -180..180")
    return lat, lon


def parse_within(text: str) -> float:
    """``"20km"`` or ``"500 m"`` in metres.

    Raises:
        BadRequest: not a positive distance in m or km, or farther than :data:`MAX_WITHIN_M`.
    """
    match = _DISTANCE.fullmatch(text)
    if match is None:
        raise BadRequest(f"within {shown(text)}: expected a distance in m or km, e.g. 500m or 20km")
    meters = float(match[1]) * _UNITS[match[2].lower()]
    if meters <= 0:
        raise BadRequest(f"within {shown(text)}: the distance must be more than 0")
    if meters > MAX_WITHIN_M:
        raise BadRequest(
            f"within {shown(text)}: at most {MAX_WITHIN_M / 1000:.0f}km (half way round the Earth)"
        )
    return meters


def geo_filter(near: str | None, within: str | None) -> GeoFilter | None:
    """The filter ``near`` and ``within`` ask for together, or None when neither is given.

    Raises:
        BadRequest: one is given without the other, or either is malformed.
    """
    if near is None and within is None:
        return None
    if near is None:
        raise BadRequest(f"within {shown(within or '')} needs near=LAT,LON: near what?")
    if within is None:
        raise BadRequest(f"near {shown(near)} needs within=DISTANCE (e.g. 20km): how far?")
    lat, lon = parse_near(near)
    return GeoFilter(lat, lon, parse_within(within))


def distances_m(lat: float, lon: float, lats: Degrees, lons: Degrees) -> Degrees:
    """Great-circle distances from one point to many, in metres (haversine); NaN where a
    coordinate is missing."""
    phi1, phi2 = math.radians(lat), np.radians(lats)
    dphi = phi2 - phi1
    dlambda = np.radians(lons) - math.radians(lon)
    a = np.sin(dphi / 2) ** 2 + math.cos(phi1) * np.cos(phi2) * np.sin(dlambda / 2) ** 2
    distances: Degrees = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return distances


@dataclass(frozen=True)
class BoundingBox:
    """Latitudes and longitudes that can lie within the distance: a cheap first cut.

    ``lon_ranges`` is empty when every longitude can (near a pole, or a circle that wide),
    and holds two ranges when the box crosses the antimeridian.
    """

    min_lat: float
    max_lat: float
    lon_ranges: tuple[tuple[float, float], ...]


def bounding_box(near: GeoFilter) -> BoundingBox:
    # A little slack, so that rounding never cuts off a photo right on the circle.
    angle = math.degrees(near.meters / EARTH_RADIUS_M) * 1.0001 + 1e-9
    min_lat, max_lat = near.lat - angle, near.lat + angle
    if min_lat <= -90 or max_lat >= 90:
        return BoundingBox(max(min_lat, -90.0), min(max_lat, 90.0), ())
    # The widest a circle gets in longitude, at the latitude where it is widest.
    ratio = math.sin(math.radians(angle)) / math.cos(math.radians(near.lat))
    if ratio >= 1:
        return BoundingBox(min_lat, max_lat, ())
    spread = math.degrees(math.asin(ratio)) * 1.0001 + 1e-9
    west, east = near.lon - spread, near.lon + spread
    if west < -180:
        return BoundingBox(min_lat, max_lat, ((west + 360, 180.0), (-180.0, east)))
    if east > 180:
        return BoundingBox(min_lat, max_lat, ((west, 180.0), (-180.0, east - 360)))
    return BoundingBox(min_lat, max_lat, ((west, east),))
