"""The shapes of the server's JSON answers, as documented in ``/openapi.json``.

DeepDetect's envelope (``status``, ``head``, ``body``) with deeptag's fields; each model is
open (extra fields allowed), since deeptag adds to DeepDetect's shapes and may add more.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    # Described loosely: deeptag adds fields to DeepDetect's shapes, and may add more.
    model_config = ConfigDict(extra="allow")


class ErrorStatus(_Open):
    code: int = Field(description="The HTTP status.")
    msg: str
    dd_code: int = Field(description="DeepDetect's error code (1001 No Data, 1002...).")
    dd_msg: str = Field(description="What went wrong, naming the offending input.")


class ErrorResponse(_Open):
    """DeepDetect's error shape, for every error status of every route."""

    status: ErrorStatus


class OkStatus(_Open):
    code: int
    msg: str


class Acknowledged(_Open):
    status: OkStatus


class Health(_Open):
    status: Literal["ok"]


class Head(_Open):
    method: str


class PredictClass(_Open):
    cat: str
    prob: float
    last: bool = False


class Concept(_Open):
    concept: str
    score: float


class ItemErrorBody(_Open):
    code: int
    dd_code: int
    reason: str
    msg: str


class PredictionBody(_Open):
    uri: str
    classes: list[PredictClass]
    error: ItemErrorBody | None = Field(default=None, description="Why this image failed.")
    concepts: list[Concept] = Field(default_factory=list, description="With output.concepts.")
    last: bool = False


class PredictStatus(OkStatus):
    failed: int = Field(default=0, description="Images that could not be tagged.")


class PredictHead(Head):
    service: str
    time: float


class PredictBody(_Open):
    predictions: list[PredictionBody]


class PredictResponse(_Open):
    status: PredictStatus
    head: PredictHead
    body: PredictBody


class ServiceDescription(_Open):
    name: str
    description: str
    mllib: str
    mltype: str
    type: str
    parameters: dict[str, Any]
    width: int
    height: int
    model: str
    stats: dict[str, Any]


class ServiceHead(Head):
    service: str


class ServiceResponse(_Open):
    status: OkStatus
    head: ServiceHead
    body: ServiceDescription


class InfoHead(Head):
    version: str
    services: list[ServiceDescription]
    triton: dict[str, Any]
    model: dict[str, Any]
    search: dict[str, Any]


class InfoResponse(_Open):
    status: OkStatus
    head: InfoHead


class Category(_Open):
    category: str
    score: float


class Camera(_Open):
    make: str | None = None
    model: str | None = None


class Exposure(_Open):
    iso: int | None = None
    f_number: float | None = None
    exposure_time: float | None = Field(default=None, description="Seconds.")
    focal_length: float | None = Field(default=None, description="Millimetres.")


class Location(_Open):
    lat: float
    lon: float


class Place(_Open):
    city: str | None = None
    region: str | None = None
    country: str | None = None
    country_code: str | None = Field(default=None, description="ISO 3166-1 alpha-2: FR.")


class SearchHit(_Open):
    """A hit; the photo's own fields are present when the image has them."""

    id: str
    uri: str
    locations: list[str] = Field(
        default_factory=list,
        description="Every known path or URL of the same content (same SHA-256), uri first.",
    )
    score: float = Field(
        description="How sure deeptag is that the image is what was asked for, 0 to 1, on the "
        "same scale in every query and mode; found by example, its similarity to the example."
    )
    rank_score: float = Field(
        description="The backend's own ranking value (BM25, reciprocal rank fusion, cosine); "
        "0 when hits are sorted by date."
    )
    matched: list[str] = Field(
        default_factory=list,
        description="Why it matched: 'tags: tabby', 'concepts: cat', 'text: EXIT', "
        "'semantic: 0.62'.",
    )
    categories: list[Category]
    concepts: list[Concept]
    width: int | None
    height: int | None
    metadata: dict[str, Any]
    thumbnail: str
    taken_at: str | None = Field(
        default=None, description="ISO 8601, with the offset the camera recorded, if any."
    )
    camera: Camera | None = None
    lens: str | None = None
    exposure: Exposure | None = None
    location: Location | None = None
    place: Place | None = None
    keywords: list[str] | None = None
    title: str | None = None
    description: str | None = None
    format: str | None = Field(default=None, description="JPEG, PNG, HEIF, RAW...")


class FacetBucket(_Open):
    value: str = Field(description="A year (2019) or a field's whole value (EOS 5D Mark IV).")
    count: int = Field(description="Hits of the query with this value.")


class SearchResponse(_Open):
    total: int
    took_ms: float
    hits: list[SearchHit]
    mode: Literal["hybrid", "words", "semantic"] | None = Field(
        default=None, description="The mode that ran (query searches)."
    )
    notice: str | None = Field(
        default=None,
        description="Why a mode fell back, or how many images lack what the search uses.",
    )
    facets: dict[str, list[FacetBucket]] | None = Field(
        default=None,
        description="With facets=: per facet, its values among all hits with their counts; "
        "years newest first, other values most frequent first.",
    )


class IndexFailure(_Open):
    uri: str
    error: str


class IndexResponse(_Open):
    indexed: int
    skipped: int = Field(description="Images already in the index.")
    failed: list[IndexFailure]
    ids: list[str]


class SessionBody(_Open):
    session: bool
    expires_in_s: int | None


class SessionResponse(_Open):
    status: OkStatus
    head: Head
    body: SessionBody


class TrainHead(Head):
    status: Literal["running", "finished", "terminated", "error"]
    job: int | None = None
    time: float | None = None


class TrainResponse(_Open):
    status: OkStatus
    head: TrainHead
    body: dict[str, Any] = Field(default_factory=dict)


class DuplicateMember(_Open):
    location: str
    id: str
    keeper: bool = Field(description="The copy deeptag suggests keeping.")
    width: int
    height: int
    pixels: int
    bytes: int | None = None
    format: str | None = None
    taken_at: str | None = None


class DuplicateGroup(_Open):
    kind: Literal["exact", "near"] = Field(
        description="exact: one content at several locations; near: different files of "
        "the same picture (resized, re-encoded, lightly cropped or edited)."
    )
    keeper: str = Field(description="The location suggested to keep.")
    why: str = Field(description="Why that one: most pixels, original format, earliest date...")
    members: list[DuplicateMember] = Field(description="Every copy, the keeper first.")


class DuplicatesResponse(_Open):
    total: int = Field(description="Groups found in all.")
    groups: list[DuplicateGroup]
    unhashed: int = Field(
        description="Images indexed before perceptual hashes, not compared (refresh adds them)."
    )
