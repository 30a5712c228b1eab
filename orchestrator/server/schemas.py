"""Request bodies of the HTTP API, validated by pydantic (DeepDetect's shapes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.errors import BadRequest, RequestTooLarge
from orchestrator.search.documents import check_metadata_keys
from orchestrator.search.limits import MAX_RESULT_WINDOW
from orchestrator.settings import Settings
from orchestrator.templates import EscapeMode

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """A request body part: unknown keys are a 400 that names them, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Lenient(BaseModel):
    # DeepDetect clients send many library-specific keys here (gpu, gpuid, mean...);
    # they have no meaning for Triton and are accepted and ignored.
    model_config = ConfigDict(extra="allow", frozen=True)


class NetworkOptions(StrictModel):
    url: str
    http_method: Literal["POST", "PUT"] = "POST"
    content_type: str | None = None

    @field_validator("http_method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class OutputOptions(StrictModel):
    best: int = Field(default=1, ge=1, le=1000)
    confidence_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    template: str | None = None
    template_escape: EscapeMode = "json"
    network: NetworkOptions | None = None
    #: deeptag extension: each prediction also lists its WordNet concepts (``dog``, ``fruit``).
    concepts: bool = False
    #: deeptag extension: each prediction also carries what the photo says about itself
    #: (``taken_at``, ``camera``, ``place``, ``keywords``...), for templates to write.
    metadata: bool = False
    #: deeptag extension: each prediction also carries the text read in the image (``text``,
    #: and ``text_lines`` with boxes in the image's pixels and scores). Needs the OCR models.
    ocr: bool = False
    #: deeptag extension: each prediction also carries its ``nsfw`` score (0-1).
    safety: bool = False


class InputOptions(_Lenient):
    connector: str | None = None
    width: int | None = Field(default=None, ge=1)
    height: int | None = Field(default=None, ge=1)


class MllibOptions(_Lenient):
    gpu: bool | None = None
    nclasses: int | None = Field(default=None, ge=1)


class PredictParameters(StrictModel):
    input: InputOptions = InputOptions()
    mllib: MllibOptions = MllibOptions()
    output: OutputOptions = OutputOptions()


class PredictRequest(StrictModel):
    service: str = Field(min_length=1)
    parameters: PredictParameters = PredictParameters()
    data: list[str]

    @field_validator("data", mode="before")
    @classmethod
    def _no_arrays(cls, value: object) -> object:
        # DeepDetect's CSV and tensor connectors take rows of numbers; an image service does not.
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, list | int | float):
                    raise ValueError(
                        f"item {i} is a {type(item).__name__}, not a string: an image service "
                        "takes image URLs, paths or base64 images (encode an array as PNG and "
                        "send it as base64, as dd_client does)"
                    )
        return value


class ServiceParameters(StrictModel):
    input: InputOptions = InputOptions()
    mllib: MllibOptions = MllibOptions()
    output: dict[str, Any] = Field(default_factory=dict)


class ServiceModel(_Lenient):
    #: The Triton model that serves the service (default: DEEPTAG_MODEL).
    name: str | None = None
    repository: str | None = None


class ServiceCreate(StrictModel):
    mllib: str = "triton"
    description: str = ""
    type: Literal["supervised", "unsupervised"] = "supervised"
    parameters: ServiceParameters = ServiceParameters()
    model: ServiceModel = ServiceModel()


class SearchRequest(StrictModel):
    q: str | None = None
    like: str | None = Field(default=None, description="An image URL, base64/data URI, or an id.")
    k: int = Field(default=20, ge=1, le=1000)
    size: int = Field(default=20, ge=1, le=1000)
    mode: Literal["hybrid", "words", "semantic"] = Field(
        default="hybrid",
        description="hybrid: words and meaning fused by rank; words: q only; semantic: meaning "
        "only. Structured queries (field:value, ranges, AND/OR/-) run as words.",
    )
    offset: int = Field(
        default=0,
        ge=0,
        alias="from",
        description=f"Hits to skip; from + size is at most {MAX_RESULT_WINDOW}, as on ES",
    )
    sort: str | None = Field(
        default=None,
        description="taken_at (oldest first) or -taken_at (newest first); photos without a "
        "date come last. Default: relevance.",
    )
    near: str | None = Field(
        default=None, description="LAT,LON in decimal degrees, with within: 48.8584,2.2945"
    )
    within: str | None = Field(default=None, description="How far from near: 500m, 20km")
    facets: str | list[str] | None = Field(
        default=None,
        description="Facet names, comma-separated or a list: year, camera.model, place.country...",
    )
    filter: str | None = Field(
        default=None,
        description="A query string the hits must also match, with q in every mode or with "
        "like (then the nearest images that match it): camera.make:canon, "
        "categories.category:dog",
    )


class IndexRequest(StrictModel):
    data: list[str] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _no_reserved_keys(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        check_metadata_keys(metadata)
        return metadata


def describe_errors(errors: Sequence[Any]) -> str:
    """pydantic's errors as one line naming each offending field (pure)."""
    parts = []
    for item in errors:
        if item.get("type") == "json_invalid":
            return (
                f"request body is not valid JSON: {item.get('ctx', {}).get('error', item['msg'])}"
            )
        location = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        message = item["msg"]
        if item.get("type") == "value_error":
            # Our own validators' messages, without pydantic's "Value error, " prefix.
            message = str(item.get("ctx", {}).get("error", message))
        parts.append(f"{location or 'body'}: {message}")
    return "; ".join(parts)


def _body_limit(request: Request) -> int:
    state = getattr(request.app.state, "deeptag", None)
    if state is None:
        default: int = Settings.model_fields["max_body_bytes"].default
        return default
    limit: int = state.settings.max_body_bytes
    return limit


async def read_bounded(request: Request, limit: int) -> bytearray:
    """The body, refused as soon as it is known to exceed ``limit`` bytes.

    The declared Content-Length is checked before anything is read, and the bytes are
    counted while they arrive (chunked bodies declare nothing), so an oversized body never
    sits in memory whole.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > limit:
        raise RequestTooLarge(_too_large(limit, f"its Content-Length is {int(declared)} bytes"))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLarge(_too_large(limit, f"more than {limit} bytes arrived"))
    return body


def _too_large(limit: int, why: str) -> str:
    return (
        f"request body is over the {limit} byte limit (DEEPTAG_MAX_BODY_BYTES): {why}; "
        "send fewer or smaller images per request"
    )


def check_data_items(data: Sequence[str], limit: int, field: str = "data") -> None:
    """Refuse a request with more than ``limit`` items before any of them is fetched."""
    if len(data) > limit:
        raise RequestTooLarge(
            f"{field} has {len(data)} items, over the limit of {limit} per request "
            "(DEEPTAG_MAX_DATA_ITEMS): split it into several requests"
        )


async def read_body(request: Request, model: type[M]) -> M:
    """Parse the body as JSON whatever its Content-Type: DeepDetect's examples use
    ``curl -d``, which labels JSON as a form."""
    raw = await read_bounded(request, _body_limit(request))
    if not raw.strip():
        raise BadRequest("request body is empty: expected a JSON object")
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        raise BadRequest(describe_errors(e.errors())) from e
