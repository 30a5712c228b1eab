"""``/search`` (query string or similar images) and ``/index`` (tag and store images)."""

from __future__ import annotations

import io
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from PIL import Image

from orchestrator.analysis.registry import enabled_names
from orchestrator.errors import BadRequest, DocumentNotFound
from orchestrator.pipeline import TagOptions
from orchestrator.search import hybrid
from orchestrator.search.base import NO_OPTIONS, SearchOptions, SearchPage, is_document_id
from orchestrator.search.facets import FACETS
from orchestrator.search.hybrid import SearchMode
from orchestrator.search.limits import MAX_RESULT_WINDOW
from orchestrator.search.options import SORT_HELP, search_options
from orchestrator.search.results import mode_page_json, page_json
from orchestrator.server.cancellation import run_for_client
from orchestrator.server.openapi import BODY_ERRORS, EXAMPLE_IMAGE, described
from orchestrator.server.response_models import IndexResponse, SearchResponse
from orchestrator.server.schemas import IndexRequest, SearchRequest, check_data_items, read_body
from orchestrator.server.state import ServerState, State
from orchestrator.sources import classify, classify_all, decode_base64
from orchestrator.types import ItemFailure, Prediction, SourceKind

router = APIRouter()


async def embedding_of(like: str, state: ServerState) -> list[float]:
    """The embedding of an indexed document (by id) or of an image tagged on the fly."""
    backend = await state.get_backend()
    if is_document_id(like):
        document = await backend.get(like)
        if document is None:
            raise DocumentNotFound(f"like: no indexed image has id {like}")
        if document.embedding is None:
            raise BadRequest(f"like: image {like} was indexed without an embedding")
        return list(document.embedding)
    tagger, _ = await state.tagger_for(state.settings.model)
    (outcome,) = await tagger.tag(
        [classify(like, 0, state.reader.policy.path_roots)],
        TagOptions(best=1, with_embedding=True),
    )
    if isinstance(outcome, ItemFailure):
        raise BadRequest(f"like: {outcome.error.message}")
    assert outcome.embedding is not None
    return [float(x) for x in outcome.embedding]


async def by_query(
    state: ServerState,
    query: str,
    mode: SearchMode,
    size: int,
    offset: int,
    options: SearchOptions = NO_OPTIONS,
    filter: str | None = None,
) -> dict[str, Any]:
    """Words and meaning fused (or one of them), with a notice when something is missing."""
    backend = await state.get_backend()
    encoder = state.text_encoder
    result = await hybrid.search(
        backend,
        query,
        mode,
        size=size,
        offset=offset,
        encode=encoder.encode_one if encoder is not None else None,
        unavailable=state.text_encoder_problem,
        min_score=state.settings.semantic_min_score,
        options=options,
        filter=filter,
    )
    return mode_page_json(result)


@router.get("/search", response_model=None, **described(ok=SearchResponse, errors=(400, 409, 503)))
async def search_get(
    state: State,
    q: str = Query(default="*", description="A query string, as Elasticsearch's q="),
    size: int = Query(default=20, ge=1, le=1000),
    offset: int = Query(
        default=0,
        ge=0,
        alias="from",
        description=f"Hits to skip; from + size is at most {MAX_RESULT_WINDOW}, as on ES",
    ),
    mode: Annotated[
        SearchMode,
        Query(
            description="hybrid: words and meaning fused by rank; words: the query string "
            "only; semantic: meaning only. Queries with field:value, ranges or AND/OR/- run "
            "as words.",
        ),
    ] = "hybrid",
    sort: str | None = Query(
        default=None, description=f"Order by date instead of relevance: {SORT_HELP}"
    ),
    near: str | None = Query(
        default=None,
        description="LAT,LON in decimal degrees: only photos taken within `within` of it",
        examples=["48.8584,2.2945"],
    ),
    within: str | None = Query(
        default=None, description="How far from `near`, in m or km: 500m, 20km"
    ),
    facets: str | None = Query(
        default=None,
        description=f"Count the hits per value of these, comma-separated: {', '.join(FACETS)}",
        examples=["year,camera.model,place.country"],
    ),
    filter: str | None = Query(
        default=None,
        description="A query string the hits must also match, in every mode; by meaning, the "
        "nearest images that match it",
        examples=["camera.make:canon", "categories.category:dog"],
    ),
) -> dict[str, Any]:
    # Parsed before any backend call: a bad value is a 400 naming it, never a 500.
    options = search_options(sort, near, within, facets)
    return await by_query(state, q, mode, size, offset, options, filter)


@router.post(
    "/search",
    response_model=None,
    **described(
        body=SearchRequest,
        example={"q": "espresso", "size": 10, "filter": "taken_at:>=2020"},
        ok=SearchResponse,
        errors=(*BODY_ERRORS, 404, 409, 500, 503),
    ),
)
async def search_post(request: Request, state: State) -> dict[str, Any]:
    body = await read_body(request, SearchRequest)
    options = search_options(body.sort, body.near, body.within, body.facets)
    if body.like:
        if options != NO_OPTIONS:
            raise BadRequest("sort, near and facets apply to q searches, not to like")
        backend = await state.get_backend()
        started = time.perf_counter()
        vector = await embedding_of(body.like, state)
        page = await backend.knn(vector, k=body.k, filter=body.filter)
        # The time a user waited includes embedding the example image.
        took = (time.perf_counter() - started) * 1000
        return page_json(SearchPage(page.total, page.hits, took))
    return await by_query(
        state, body.q or "*", body.mode, body.size, body.offset, options, body.filter
    )


def _store_upload(prediction: Prediction, data: bytes, uploads: Path) -> str:
    uploads.mkdir(parents=True, exist_ok=True)
    target = uploads / f"{prediction.sha256}{_extension_of(data)}"
    if not target.exists():
        target.write_bytes(data)
    return str(target)


#: Extensions for the formats people upload; anything else Pillow reads is kept as ``.img``.
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp"}


def _extension_of(data: bytes) -> str:
    """The usual extension of the image's format, so a kept upload opens anywhere."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return _EXTENSIONS.get(image.format or "", ".img")
    except (OSError, ValueError):
        return ".img"


@router.post(
    "/index",
    response_model=None,
    **described(
        body=IndexRequest,
        example={"data": [EXAMPLE_IMAGE], "metadata": {"album": "examples"}},
        ok=IndexResponse,
        errors=(*BODY_ERRORS, 409, 499, 500, 503, 504),
    ),
)
async def index_images(request: Request, state: State) -> dict[str, Any]:
    """Tag images and store them in the search backend; uploads are kept under the data dir."""
    from orchestrator.search.documents import document_from_prediction

    body = await read_body(request, IndexRequest)
    check_data_items(body.data, state.settings.max_data_items)
    # The analyses the server's settings turn on (DEEPTAG_OCR, DEEPTAG_SAFETY), as for
    # `deeptag index`.
    analyses = enabled_names(state.settings)
    tagger, model = await state.tagger_for(state.settings.model, analyses)
    sources = classify_all(body.data, state.reader.policy.path_roots)
    options = TagOptions(best=5, with_embedding=True, with_probs=True, analyses=analyses)
    outcomes = await run_for_client(
        request,
        tagger.tag(sources, options),
        state.settings.predict_timeout_s,
    )
    backend = await state.get_backend()
    failed: list[dict[str, str]] = [
        {"uri": o.source.uri, "error": o.error.message}
        for o in outcomes
        if isinstance(o, ItemFailure)
    ]
    documents = []
    for outcome in outcomes:
        if not isinstance(outcome, Prediction):
            continue
        if outcome.source.kind is SourceKind.BASE64:
            # Kept so the web page can show the image later; named by content, stored once.
            data = decode_base64(outcome.source.location)
            outcome = _with_uri(
                outcome, _store_upload(outcome, data, state.settings.data_dir / "uploads")
            )
        documents.append(document_from_prediction(outcome, model, body.metadata))
    existing = await backend.existing_ids([d.id for d in documents])
    fresh = [d for d in documents if d.id not in existing]
    indexed: list[str] = []
    async for result in backend.index(fresh):
        if result.ok:
            indexed.append(result.id)
        else:
            failed.append({"uri": result.uri, "error": result.error or "not indexed"})
    return {
        "indexed": len(indexed),
        "skipped": len(documents) - len(fresh),
        "failed": failed,
        "ids": [d.id for d in documents],
    }


def _with_uri(prediction: Prediction, uri: str) -> Prediction:
    return replace(prediction, source=replace(prediction.source, uri=uri))
