"""``deeptag search``: query the index by words, or by an example image."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.common import Sink, console, err_console, run_async, user_errors
from orchestrator.errors import BadRequest, DeeptagError, DocumentNotFound
from orchestrator.search import hybrid
from orchestrator.search.base import (
    NO_OPTIONS,
    BackendKind,
    ImageDocument,
    SearchBackend,
    SearchOptions,
    SearchPage,
    is_document_id,
)
from orchestrator.search.facets import FACETS
from orchestrator.search.factory import open_backend
from orchestrator.search.hybrid import ModePage, SearchMode
from orchestrator.search.limits import MAX_RESULT_WINDOW, check_query, check_window
from orchestrator.search.options import SORT_HELP, search_options
from orchestrator.search.results import mode_page_json, score_of
from orchestrator.semantic import label_text
from orchestrator.settings import Settings, load_settings
from orchestrator.types import ItemFailure


class Mode(StrEnum):
    """The ``--mode`` choices."""

    hybrid = "hybrid"
    words = "words"
    semantic = "semantic"


@dataclass
class TritonWait:
    """The seconds a search waited for Triton (starting it, loading a model), for the
    time it reports: set where Triton is started, deep in the call."""

    seconds: float = 0.0


async def _embed(settings: Settings, image: str, wait: TritonWait) -> list[float]:
    # Here, not above: a search by words or by an indexed image needs no model, and the
    # pipeline's imports cost a fresh `deeptag search` a third of its time.
    from orchestrator.pipeline import TagOptions
    from orchestrator.runtime import tagging_session, triton_for
    from orchestrator.sources import classify

    with triton_for(settings) as triton:
        wait.seconds = triton.startup_s
        async with tagging_session(settings, triton.endpoints, path_roots=None) as session:
            (outcome,) = await session.tagger.tag(
                [classify(image, 0)], TagOptions(best=1, with_embedding=True)
            )
    if isinstance(outcome, ItemFailure):
        raise BadRequest(f"--like {image}: {outcome.error.message}")
    assert outcome.embedding is not None
    return [float(x) for x in outcome.embedding]


async def _like(
    backend: SearchBackend,
    settings: Settings,
    like: str,
    size: int,
    wait: TritonWait,
    filter: str | None = None,
) -> SearchPage:
    """The ``size`` images nearest ``like``, among those matching ``filter`` when given."""
    if is_document_id(like):
        document = await backend.get(like)
        if document is None:
            raise DocumentNotFound(f"--like {like}: no indexed image has this id")
        if document.embedding is None:
            raise BadRequest(f"--like {like}: this image was indexed without an embedding")
        return await backend.knn(document.embedding, k=size, filter=filter)
    return await backend.knn(await _embed(settings, like, wait), k=size, filter=filter)


async def _by_words_and_meaning(
    backend: SearchBackend,
    settings: Settings,
    query: str,
    mode: SearchMode,
    size: int,
    offset: int,
    wait: TritonWait,
    options: SearchOptions = NO_OPTIONS,
    filter: str | None = None,
) -> ModePage:
    """The query in ``mode``; Triton (for the text encoder) only when the query needs it."""

    async def run(encode: hybrid.Encode | None = None, unavailable: str | None = None) -> ModePage:
        return await hybrid.search(
            backend,
            query,
            mode,
            size=size,
            offset=offset,
            encode=encode,
            unavailable=unavailable,
            min_score=settings.semantic_min_score,
            options=options,
            filter=filter,
        )

    ordered = options.sort is not None or options.near is not None
    if ordered or hybrid.runs_as_words(query, mode) or await backend.count_with("semantic") == 0:
        return await run()
    from orchestrator.runtime import triton_for
    from orchestrator.text_encoder import TextEncoder

    # A Triton started for this query loads the text model alone: the one a query needs.
    with triton_for(settings, models=frozenset({settings.text_model})) as triton:
        wait.seconds = triton.startup_s
        try:
            encoder = TextEncoder.for_settings(settings, triton.endpoint)
            await encoder.connect()
        except DeeptagError as e:
            # Words still answer; the notice says what semantic search is missing.
            return await run(unavailable=e.message)
        try:
            return await run(encoder.encode_one)
        finally:
            await encoder.close()


async def _search(
    settings: Settings,
    kind: BackendKind | None,
    query: str | None,
    like: str | None,
    size: int,
    offset: int = 0,
    mode: SearchMode = "hybrid",
    options: SearchOptions = NO_OPTIONS,
    filter: str | None = None,
    wait: TritonWait | None = None,
) -> ModePage:
    wait = wait or TritonWait()
    backend = await open_backend(settings, kind)
    try:
        if like:
            return ModePage(await _like(backend, settings, like, size, wait, filter), "words")
        return await _by_words_and_meaning(
            backend, settings, query or "*", mode, size, offset, wait, options, filter
        )
    finally:
        await backend.close()


URI_MIN_WIDTH = 120


def render(
    page: SearchPage, scored: bool = True, waited_s: float | None = None, triton_s: float = 0.0
) -> Table:
    """The hits as a table; ``scored`` False for hits sorted by date, which have no score.
    The caption gives the time the user waited (``waited_s``; default: the search's own),
    and the part of it spent starting Triton."""
    table = Table(caption=caption(page, waited_s, triton_s), show_lines=False)
    if scored:
        table.add_column("score", justify="right")
    # Why each matched: `tags: tabby`, `semantic: 0.62`.
    explained = any(hit.matched for hit in page.hits)
    if explained:
        table.add_column("matched")
    # The path or URL is what a user copies: it gets its width first (up to a bound) and the
    # word columns wrap instead; only a longer one folds.
    longest = max((len(hit.document.uri) for hit in page.hits), default=5)
    table.add_column("image", overflow="fold", min_width=min(longest, URI_MIN_WIDTH))
    # When and where, for pages with photo metadata; an index from before has no such column.
    dated = any(taken(hit.document) for hit in page.hits)
    placed = any(place(hit.document) for hit in page.hits)
    if dated:
        table.add_column("taken", no_wrap=True)
    if placed:
        table.add_column("place")
    # The text read in the images (`--ocr`), for pages that have some.
    texted = any(text_of(hit.document) for hit in page.hits)
    if texted:
        table.add_column("text")
    table.add_column("top categories")
    table.add_column("concepts")
    for hit in page.hits:
        categories = ", ".join(
            f"{label_text(c.category)} {c.score:.2f}" for c in hit.document.categories[:3]
        )
        concepts = ", ".join(c.concept for c in hit.document.concepts[:4])
        row = [f"{score_of(hit):.2f}"] if scored else []
        row += [escape("; ".join(hit.matched))] if explained else []
        row.append(hit.document.uri)
        row += [taken(hit.document)] if dated else []
        row += [place(hit.document)] if placed else []
        row += [escape(text_of(hit.document))] if texted else []
        table.add_row(*row, categories, concepts)
    return table


def caption(page: SearchPage, waited_s: float | None = None, triton_s: float = 0.0) -> str:
    """``3 hits in 0.7 s``, ``1 hit in 3.1 s (2.4 s of it starting Triton)`` (pure)."""
    seconds = page.took_ms / 1000 if waited_s is None else waited_s
    took = f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
    startup = f" ({triton_s:.1f} s of it starting Triton)" if triton_s >= 0.1 else ""
    return f"{page.total} hit{'' if page.total == 1 else 's'} in {took}{startup}"


def text_of(document: ImageDocument, limit: int = 40) -> str:
    """The first line of the text read in the image, cut to ``limit`` characters."""
    text = str(document.analyses.get("ocr", {}).get("text") or "")
    first = text.split("\n", 1)[0]
    return first if len(first) <= limit and first == text else first[: limit - 1] + "…"


def taken(document: ImageDocument) -> str:
    """The date and time as the camera recorded them (its own clock), to the minute."""
    when = document.photo.taken_at if document.photo else None
    return when[:16].replace("T", " ") if when else ""


def place(document: ImageDocument) -> str:
    where = document.photo.place if document.photo else None
    if where is None:
        return ""
    return ", ".join(p for p in (where.city, where.country_code or where.country) if p)


def render_facets(page: SearchPage) -> str:
    """One line per facet: ``year: 2019 (3), 2018 (1)``."""
    lines = []
    for facet in page.facets:
        values = ", ".join(f"{v.value} ({v.count})" for v in facet.values) or "none"
        lines.append(f"{facet.name}: {values}")
    return "\n".join(lines)


@user_errors
def search(
    query: Annotated[
        str | None,
        typer.Argument(
            help="Words or an Elasticsearch query string: espresso, '\"crash helmet\"', "
            "'categories.score:>0.5'. Default: everything.",
            show_default=False,
        ),
    ] = None,
    like: Annotated[
        str | None,
        typer.Option(help="An image file, URL, or indexed id: find the images closest to it."),
    ] = None,
    size: Annotated[int, typer.Option(min=1, max=1000, help="How many hits.")] = 10,
    offset: Annotated[
        int,
        typer.Option(
            "--from",
            min=0,
            help=f"Hits to skip (paging); from + size is at most {MAX_RESULT_WINDOW}.",
        ),
    ] = 0,
    mode: Annotated[
        Mode,
        typer.Option(
            help="hybrid: words and meaning fused by rank; words: the query string only; "
            "semantic: meaning only. Queries with field:value, ranges or AND/OR/- run as words.",
        ),
    ] = Mode.hybrid,
    sort: Annotated[
        str | None,
        typer.Option(help=f"Order by date instead of relevance: {SORT_HELP}."),
    ] = None,
    near: Annotated[
        str | None,
        typer.Option(metavar="LAT,LON", help="Only photos taken near this point (with --within)."),
    ] = None,
    within: Annotated[
        str | None,
        typer.Option(metavar="DISTANCE", help="How far from --near: 500m, 20km."),
    ] = None,
    facets: Annotated[
        str | None,
        typer.Option(
            metavar="NAMES",
            help=f"Count the hits per value of these, comma-separated: {', '.join(FACETS)}.",
        ),
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter",
            metavar="QUERY",
            help="Only images matching this word query, in every mode and with --like: "
            "camera.make:canon, categories.category:dog, 'tags:espresso AND taken_at:>=2020'.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the /search JSON.")] = False,
    sink: Annotated[
        Sink | None,
        typer.Option(help="Default: es when DEEPTAG_ES_URL is set, else embedded."),
    ] = None,
) -> None:
    """Search indexed images by words, or by similarity with --like."""
    began = time.perf_counter()
    if query and like:
        raise BadRequest("give a QUERY or --like, not both")
    if like and offset:
        raise BadRequest("--from pages through QUERY hits; --like has no pages")
    options = search_options(sort, near, within, facets)
    if like and options != NO_OPTIONS:
        raise BadRequest("--sort, --near and --facets apply to QUERY searches, not to --like")
    # Before anything starts: a page past the window is refused at once, not after Triton.
    check_window(size, offset)
    check_query(query or "*")
    settings = load_settings()
    kind = sink.kind if sink else None
    wait = TritonWait()
    result = run_async(
        _search(settings, kind, query, like, size, offset, mode.value, options, filter_, wait)
    )
    if as_json:
        print(json.dumps(mode_page_json(result)))
        return
    if result.notice:
        err_console.print(f"[yellow]note:[/] {escape(result.notice)}", highlight=False)
    if not result.page.hits:
        narrowed = f" with --filter {filter_!r}" if filter_ else ""
        # Escaped: a query's brackets (`width:[1000 TO 3000]`) are not Rich markup.
        console.print(escape(f"no images match {query or like or '*'!r}{narrowed}"))
    else:
        waited = time.perf_counter() - began
        console.print(render(result.page, options.sort is None, waited, wait.seconds))
    if result.page.facets:
        console.print(escape(render_facets(result.page)), highlight=False)
