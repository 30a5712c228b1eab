"""What users type to search photos by date, place and camera, checked before any backend.

Pure functions: the ``taken_at`` rewriting both backends run, the ``sort``/``near``/``within``
/``facets`` inputs, distances, and which photo values can be stored at all.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from orchestrator.errors import BadRequest, InvalidQuery
from orchestrator.photo import Camera, Exposure, GeoPoint, PhotoMetadata, Place
from orchestrator.search.base import (
    Category,
    FacetValue,
    GeoFilter,
    ImageDocument,
    SearchOptions,
    SortOrder,
)
from orchestrator.search.documents import (
    check_metadata_keys,
    document_from_source,
    document_to_source,
)
from orchestrator.search.es_query import search_body
from orchestrator.search.facets import FACETS, facets_from, ordered
from orchestrator.search.geo import bounding_box, distances_m
from orchestrator.search.options import search_options
from orchestrator.search.photo_fields import storable, taken_instant
from orchestrator.search.photo_query import involves_photo, rewrite_dates

# --- taken_at in query strings -------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("taken_at:2019", "taken_at:[2019-01-01T00:00:00Z TO 2020-01-01T00:00:00Z}"),
        ("taken_at:2019-02", "taken_at:[2019-02-01T00:00:00Z TO 2019-03-01T00:00:00Z}"),
        ("taken_at:2019-12-31", "taken_at:[2019-12-31T00:00:00Z TO 2020-01-01T00:00:00Z}"),
        ("taken_at:>=2019", "taken_at:[2019-01-01T00:00:00Z TO *]"),
        ("taken_at:>2019", "taken_at:[2020-01-01T00:00:00Z TO *]"),
        ("taken_at:<2019-06", "taken_at:[* TO 2019-06-01T00:00:00Z}"),
        # The whole of the last day, month or year named is included.
        ("taken_at:<=2019", "taken_at:[* TO 2020-01-01T00:00:00Z}"),
        (
            "taken_at:[2019-06-01 TO 2019-08-31]",
            "taken_at:[2019-06-01T00:00:00Z TO 2019-09-01T00:00:00Z}",
        ),
        ("taken_at:{2019 TO 2021}", "taken_at:[2020-01-01T00:00:00Z TO 2021-01-01T00:00:00Z}"),
        ("taken_at:[2019-06 TO *]", "taken_at:[2019-06-01T00:00:00Z TO *]"),
        # An offset is honoured: 10:30 in Paris in summer is 08:30 UTC.
        (
            "taken_at:2019-07-14T10:30+02:00",
            "taken_at:[2019-07-14T08:30:00Z TO 2019-07-14T08:31:00Z}",
        ),
        (
            'taken_at:"2019-07-14T10:30:05"',
            "taken_at:[2019-07-14T10:30:05Z TO 2019-07-14T10:30:06Z}",
        ),
    ],
)
def test_a_date_means_the_whole_period_it_names(typed: str, meant: str) -> None:
    assert rewrite_dates(typed) == meant


def test_dates_are_rewritten_wherever_the_field_is_named_and_nowhere_else() -> None:
    query = '(dog OR cat) AND -taken_at:2019 AND "taken_at:2020" AND my_taken_at:2021'
    assert rewrite_dates(query) == (
        "(dog OR cat) AND -taken_at:[2019-01-01T00:00:00Z TO 2020-01-01T00:00:00Z} "
        'AND "taken_at:2020" AND my_taken_at:2021'
    )
    assert rewrite_dates("dog") == "dog"
    assert rewrite_dates("taken_at:*") == "taken_at:*"
    assert rewrite_dates("(taken_at:2019)") == (
        "(taken_at:[2019-01-01T00:00:00Z TO 2020-01-01T00:00:00Z})"
    )


def test_bounds_beyond_any_stored_date_become_open_ends() -> None:
    # No photo can be older than 1800 or as young as 2200: the bounds never leave that window.
    assert rewrite_dates("taken_at:>=1500") == "taken_at:*"
    assert rewrite_dates("taken_at:[1000 TO 9999]") == "taken_at:*"
    assert rewrite_dates("taken_at:<1500") == "taken_at:[* TO 1800-01-01T00:00:00Z}"
    assert rewrite_dates("taken_at:>9000") == "taken_at:[2200-01-01T00:00:00Z TO *]"
    assert rewrite_dates("taken_at:9999-12-31T23:59:59") == "taken_at:[2200-01-01T00:00:00Z TO *]"
    assert rewrite_dates("taken_at:0001-01-01T00:00+05:00") == (
        "taken_at:[* TO 1800-01-01T00:00:00Z}"
    )
    assert rewrite_dates("taken_at:<now-9999y") == "taken_at:[* TO 1800-01-01T00:00:00Z}"
    assert rewrite_dates("taken_at:>now+9999y") == "taken_at:[2200-01-01T00:00:00Z TO *]"


def test_now_minus_a_period_counts_back_from_the_current_time() -> None:
    rewritten = rewrite_dates("taken_at:>=now-1y")
    match = re.fullmatch(r"taken_at:\[(\S+) TO \*\]", rewritten)
    assert match is not None
    start = datetime.fromisoformat(match[1].replace("Z", "+00:00"))
    year_ago = datetime.now(UTC).replace(year=datetime.now(UTC).year - 1)
    assert abs(start - year_ago) < timedelta(days=2)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("taken_at:2019-13", "'2019-13' is not a date (month must be in 1..12)"),
        ("taken_at:2019-02-30", "'2019-02-30' is not a date (day is out of range"),
        ("taken_at:summer", "'summer' is not a date: write a date as 2019, 2019-07"),
        ("taken_at:>=", "taken_at:>= needs a date"),
        ("taken_at:[2019 TO", "has no closing ] or }"),
        ("taken_at:[2019 2020]", "is not a range: write taken_at:[2019-06-01 TO 2019-08-31]"),
        ("taken_at:(2019 OR 2020)", "groups are not supported; write taken_at:2019 OR"),
        ("taken_at:2019-07-14T10:30+25:00", "offset +25:00 is out of range"),
        ("taken_at:now/d", "'now/d' is not a date"),
    ],
)
def test_what_is_not_a_date_is_refused_with_the_query_and_the_reason(query: str, says: str) -> None:
    with pytest.raises(InvalidQuery) as refused:
        rewrite_dates(f"dog AND {query}")
    message = str(refused.value)
    assert message.startswith(f"query {f'dog AND {query}'!r}: ")
    assert says in message


# --- sort, near, within, facets --------------------------------------------------------------


def test_options_as_typed() -> None:
    assert search_options() == SearchOptions()
    assert search_options(sort="taken_at").sort == SortOrder("taken_at", descending=False)
    assert search_options(sort="-taken_at").sort == SortOrder("taken_at", descending=True)
    assert search_options(sort="").sort is None
    near = search_options(near=" 48.8584, 2.2945 ", within="20km").near
    assert near == GeoFilter(48.8584, 2.2945, 20_000.0)
    assert search_options(near="-33.8568,151.2153", within="500 m").near == GeoFilter(
        -33.8568, 151.2153, 500.0
    )
    assert search_options(facets="year, camera.model,year").facets == ("year", "camera.model")
    assert search_options(facets=["keywords"]).facets == ("keywords",)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"sort": "date"}, "sort 'date': unknown sort field; sort by taken_at (oldest first)"),
        ({"sort": "+taken_at"}, "sort '+taken_at': unknown sort field"),
        ({"near": "200,0", "within": "5km"}, "near '200,0': latitude 200 is outside -90..90"),
        ({"near": "0,181", "within": "5km"}, "near '0,181': longitude 181 is outside"),
        ({"near": "paris", "within": "5km"}, "near 'paris': expected LAT,LON in decimal degrees"),
        ({"near": "nan,0", "within": "5km"}, "expected LAT,LON"),
        ({"near": "1e3,0", "within": "5km"}, "expected LAT,LON"),
        ({"near": "0,0", "within": "5 parsecs"}, "within '5 parsecs': expected a distance in m"),
        ({"near": "0,0", "within": "-5km"}, "expected a distance"),
        ({"near": "0,0", "within": "0km"}, "the distance must be more than 0"),
        ({"near": "0,0", "within": "30000km"}, "at most 20000km"),
        ({"near": "0,0"}, "near '0,0' needs within=DISTANCE"),
        ({"within": "5km"}, "within '5km' needs near=LAT,LON"),
        ({"facets": "year,colour"}, "facets 'colour': unknown facet; known: year, camera.make"),
        ({"facets": "a,b"}, "facets 'a, b': unknown facets"),
    ],
)
def test_bad_options_name_the_input_and_what_is_wrong(options: dict[str, str], says: str) -> None:
    with pytest.raises(BadRequest) as refused:
        search_options(**options)
    assert says in str(refused.value)


def test_a_huge_input_is_quoted_briefly() -> None:
    with pytest.raises(BadRequest) as refused:
        search_options(near="0,0", within="9" * 5000 + "km")
    assert len(str(refused.value)) < 200


# --- Distances -------------------------------------------------------------------------------


def test_distances_are_great_circle_metres() -> None:
    # Paris to Tokyo is about 9,712 km; a degree of latitude about 111.2 km.
    paris_tokyo = distances_m(48.8566, 2.3522, np.array([35.6764]), np.array([139.65]))
    assert paris_tokyo[0] == pytest.approx(9_711_700, rel=1e-3)
    degree = distances_m(0.0, 0.0, np.array([1.0]), np.array([0.0]))
    assert degree[0] == pytest.approx(111_195, rel=1e-4)
    assert math.isnan(distances_m(0.0, 0.0, np.array([np.nan]), np.array([0.0]))[0])


@pytest.mark.parametrize(
    "near",
    [
        GeoFilter(48.8566, 2.3522, 20_000),
        GeoFilter(-16.8, -179.95, 50_000),  # across the antimeridian
        GeoFilter(-16.8, 179.95, 50_000),
        GeoFilter(89.9, 10.0, 30_000),  # over the pole
        GeoFilter(60.0, 0.0, 3_000_000),
    ],
)
def test_the_bounding_box_holds_every_point_within_the_distance(near: GeoFilter) -> None:
    box = bounding_box(near)
    # Points all around the circle, up to twice as far as the distance in each direction.
    rng = np.random.default_rng(3)
    angle = math.degrees(near.meters / 6_371_000)
    lats = rng.uniform(max(near.lat - 2 * angle, -90), min(near.lat + 2 * angle, 90), 100_000)
    spread = min(180.0, 2 * angle / max(math.cos(math.radians(near.lat)), 1e-3))
    lons = (near.lon + rng.uniform(-spread, spread, 100_000) + 180) % 360 - 180
    within = distances_m(near.lat, near.lon, lats, lons) <= near.meters
    assert within.any()
    in_lat = (lats >= box.min_lat) & (lats <= box.max_lat)
    in_lon = np.zeros_like(in_lat) if box.lon_ranges else np.ones_like(in_lat)
    for west, east in box.lon_ranges:
        in_lon |= (lons >= west) & (lons <= east)
    assert not (within & ~(in_lat & in_lon)).any()


# --- What can be stored -------------------------------------------------------------------


def test_values_no_backend_can_index_are_left_out_and_the_rest_kept() -> None:
    photo = PhotoMetadata(
        format="JPEG",
        taken_at="0000-00-00T00:00:00",
        camera=Camera("Canon", "EOS R5"),
        exposure=Exposure(iso=2**40, f_number=float("nan"), exposure_time=0.01),
        location=GeoPoint(200.0, 10.0),
        place=Place("Paris", None, "France", "FR"),
        keywords=("holiday", "holiday", "beach"),
    )
    kept = storable(photo)
    assert kept.taken_at is None
    assert kept.location is None
    assert kept.exposure == Exposure(None, None, 0.01, None)
    assert kept.keywords == ("holiday", "beach")
    assert (kept.camera, kept.place, kept.format) == (photo.camera, photo.place, "JPEG")


@pytest.mark.parametrize(
    ("stored", "instant"),
    [
        ("2019-07-14T10:30:00+02:00", datetime(2019, 7, 14, 8, 30, tzinfo=UTC)),
        ("2019-07-14T10:30:00", datetime(2019, 7, 14, 10, 30, tzinfo=UTC)),
        ("2019-07-14T10:30:00.123456789Z", datetime(2019, 7, 14, 10, 30, 0, 123456, UTC)),
        ("2019-07-14", datetime(2019, 7, 14, tzinfo=UTC)),
        ("1650-01-01T00:00:00", None),  # before photography, and outside tantivy's dates
        ("2019:07:14 10:30:00", None),  # EXIF's own spelling: the reader converts it
        ("20190714", None),  # Elasticsearch's default date format would refuse it
    ],
)
def test_the_instant_of_a_stored_date(stored: str, instant: datetime | None) -> None:
    assert taken_instant(stored) == instant


def test_a_document_keeps_its_photo_through_storage_and_its_fields_are_reserved() -> None:
    photo = PhotoMetadata(
        format="HEIF",
        taken_at="2021-03-01T09:00:00+09:00",
        camera=Camera("Apple", "iPhone 12"),
        lens="iPhone 12 back camera",
        exposure=Exposure(64, 1.6, 0.001, 4.2),
        location=GeoPoint(35.6764, 139.65),
        place=Place("Tokyo", "Tokyo", "Japan", "JP"),
        keywords=("spring",),
        title="Hanami",
        description="Cherry blossom by the river",
    )
    document = ImageDocument(
        id="a" * 64,
        uri="/photos/tokyo.heic",
        categories=(Category("n1 cherry", 0.5),),
        tags=("cherry",),
        embedding=None,
        width=4032,
        height=3024,
        model="efficientnet_lite0/1",
        indexed_at="2025-01-01T00:00:00Z",
        metadata={"album": "japan"},
        photo=photo,
    )
    source = document_to_source(document)
    assert source["taken_at"] == "2021-03-01T09:00:00+09:00"
    assert source["location"] == {"lat": 35.6764, "lon": 139.65}
    assert document_from_source(document.id, source) == document
    older = {k: v for k, v in source.items() if k not in photo.to_fields()}
    assert document_from_source(document.id, older).photo is None
    with pytest.raises(ValueError, match="taken_at"):
        check_metadata_keys(["album", "taken_at"])


# --- Facets and Elasticsearch requests -------------------------------------------------------


def test_facet_values_come_in_the_same_order_from_either_backend() -> None:
    values = [FacetValue("2018", 4), FacetValue("2021", 1), FacetValue("2019", 4)]
    assert [v.value for v in ordered("year", values)] == ["2021", "2019", "2018"]
    cameras = [FacetValue("iPhone 12", 2), FacetValue("EOS R5", 3), FacetValue("EOS 90D", 2)]
    assert [v.value for v in ordered("camera.model", cameras)] == [
        "EOS R5",
        "EOS 90D",
        "iPhone 12",
    ]
    answer = {
        "facet_0": {"buckets": [{"key": 1546300800000, "key_as_string": "2019", "doc_count": 2}]},
        "facet_1": {"buckets": [{"key": 2021.0, "doc_count": 1}]},
    }
    (es_years, tantivy_years) = facets_from(["year", "year"], answer)
    assert es_years.values == (FacetValue("2019", 2),)
    assert tantivy_years.values == (FacetValue("2021", 1),)


def test_the_elasticsearch_request_filters_sorts_and_counts() -> None:
    options = search_options(
        sort="-taken_at", near="48.8566,2.3522", within="20km", facets="year,camera.model"
    )
    body = search_body("taken_at:2019", ["tags"], options)
    assert body["query"] == {
        "bool": {
            "must": {
                "query_string": {
                    "query": "taken_at:[2019-01-01T00:00:00Z TO 2020-01-01T00:00:00Z}",
                    "fields": ["tags"],
                    "lenient": True,
                }
            },
            "filter": {
                "geo_distance": {
                    "distance": "20000.000m",
                    "location": {"lat": 48.8566, "lon": 2.3522},
                    "ignore_unmapped": True,
                }
            },
        }
    }
    assert body["sort"] == [
        {"taken_at": {"order": "desc", "missing": "_last", "unmapped_type": "date"}}
    ]
    assert body["aggs"]["facet_0"]["date_histogram"]["calendar_interval"] == "year"
    assert body["aggs"]["facet_1"] == {"terms": {"field": FACETS["camera.model"], "size": 20}}
    assert search_body("*", ["tags"], SearchOptions()) == {"query": {"match_all": {}}}


@pytest.mark.parametrize(
    ("query", "options", "involved"),
    [
        ("*", SearchOptions(), False),
        ("tags:dog AND categories.score:>0.5", SearchOptions(), False),
        ("paris", SearchOptions(), True),
        ('"crash helmet"', SearchOptions(), True),
        ("place.city:paris", SearchOptions(), True),
        ("tags:dog AND -taken_at:*", SearchOptions(), True),
        ("*", SearchOptions(sort=SortOrder()), True),
        ("*", SearchOptions(facets=("year",)), True),
    ],
)
def test_which_searches_depend_on_photo_metadata(
    query: str, options: SearchOptions, involved: bool
) -> None:
    assert involves_photo(query, options) is involved
