"""Photos are named after the place a person would say they were taken in."""

from __future__ import annotations

import threading

import pytest

from orchestrator import places
from orchestrator.photo import GeoPoint, Place
from orchestrator.places import place_of


def test_the_eiffel_tower_is_in_paris_although_vanves_is_nearer() -> None:
    assert place_of(GeoPoint(48.8584, 2.2945)) == Place(
        city="Paris", region="Île-de-France", country="France", country_code="FR"
    )


@pytest.mark.parametrize(
    "point",
    [
        GeoPoint(35.6595, 139.7005),  # Shibuya crossing
        GeoPoint(35.6586, 139.7454),  # Tokyo Tower
        GeoPoint(35.7148, 139.7967),  # Asakusa, Sensō-ji
    ],
)
def test_tokyo_neighbourhoods_are_tokyo(point: GeoPoint) -> None:
    assert place_of(point) == Place(
        city="Tokyo", region="Tokyo", country="Japan", country_code="JP"
    )


@pytest.mark.parametrize(
    ("point", "city", "country_code"),
    [
        (GeoPoint(48.8049, 2.1204), "Versailles", "FR"),  # 17 km from Paris: its own town
        (GeoPoint(35.5308, 139.7029), "Kawasaki", "JP"),  # 18 km from Tokyo: its own city
        (GeoPoint(40.758, -73.9855), "New York City", "US"),  # Times Square
        (GeoPoint(51.5007, -0.1246), "London", "GB"),  # Big Ben
        (GeoPoint(-33.8568, 151.2153), "Sydney", "AU"),  # the Opera House
        (GeoPoint(45.9237, 6.8694), "Chamonix-Mont-Blanc", "FR"),  # small: the nearest locality
    ],
)
def test_places_are_named_as_people_name_them(
    point: GeoPoint, city: str, country_code: str
) -> None:
    found = place_of(point)
    assert found is not None
    assert found.city == city
    assert found.country_code == country_code


def test_far_from_any_place_there_is_none() -> None:
    assert place_of(GeoPoint(0.0, -30.0)) is None  # the middle of the Atlantic
    assert place_of(GeoPoint(-89.9, 0.0)) is None  # the South Pole


def test_an_impossible_point_has_no_place() -> None:
    assert place_of(GeoPoint(200.0, 2.0)) is None


def test_the_places_load_once_for_all_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = []
    real_load = places._load

    def counted() -> places._Gazetteer:
        loads.append(1)
        return real_load()

    monkeypatch.setattr(places, "_gazetteer", None)
    monkeypatch.setattr(places, "_load", counted)
    found: list[Place | None] = []
    start = threading.Barrier(6)

    def look_up() -> None:
        start.wait()
        found.append(place_of(GeoPoint(48.8584, 2.2945)))

    threads = [threading.Thread(target=look_up) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    assert len(found) == 6
    assert {p.city if p else None for p in found} == {"Paris"}
