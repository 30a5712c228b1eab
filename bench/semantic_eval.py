"""Words, semantic and hybrid search compared: recall@3 and query latency on both backends.

The photos are every real photo that ships offline in the installed packages (scikit-image's
samples, scikit-learn's two), copied under neutral names (img01.jpg...) so that no file name
gives a query away. The queries are words none of the photos' labels contain, each with the
photos it should find. Starts one local Triton and noida-db (the Elasticsearch API), indexes
the photos into each backend, then prints, per backend and mode, recall@3 (the share of a
query's expected photos, up to three, found in its top three, averaged over queries) and the
p50 of the query latency (text encoding included).

Run: .venv/bin/python bench/semantic_eval.py [--rounds 5] [--labels]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from rich.console import Console
from rich.table import Table

from orchestrator.indexing import Indexer, IndexOptions
from orchestrator.runtime import tagging_session
from orchestrator.samples import sample_dir
from orchestrator.search import hybrid
from orchestrator.search.base import SearchBackend
from orchestrator.search.factory import open_backend
from orchestrator.search.hybrid import SearchMode
from orchestrator.settings import Settings
from orchestrator.sources import classify
from orchestrator.text_encoder import TextEncoder
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port

REPO = Path(__file__).resolve().parents[1]

#: Photo name -> where it ships. Drawings, scans, micrographs and test patterns are left out.
PHOTOS = {
    "astronaut": ("skimage", "astronaut.png"),
    "chelsea": ("skimage", "chelsea.png"),
    "coffee": ("skimage", "coffee.png"),
    "rocket": ("skimage", "rocket.jpg"),
    "motorcycle": ("skimage", "motorcycle_left.png"),
    "hubble": ("skimage", "hubble_deep_field.jpg"),
    "moon": ("skimage", "moon.png"),
    "camera": ("skimage", "camera.png"),
    "coins": ("skimage", "coins.png"),
    "brick": ("skimage", "brick.png"),
    "grass": ("skimage", "grass.png"),
    "gravel": ("skimage", "gravel.png"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
}

#: Queries outside every photo's labels, and the photos each should find.
QUERIES: dict[str, set[str]] = {
    "kitten": {"chelsea"},
    "pet": {"chelsea"},
    "animal": {"chelsea"},
    "drink": {"coffee"},
    "breakfast": {"coffee"},
    "vehicle": {"motorcycle", "rocket"},  # a launch vehicle on its pad
    "motorbike": {"motorcycle"},
    "spaceship": {"rocket"},
    "space": {"rocket", "astronaut", "hubble", "moon"},
    "astronomy": {"hubble", "moon"},
    "money": {"coins"},
    "wall": {"brick"},
    "lawn": {"grass"},
    "pebbles": {"gravel"},
    "temple": {"china"},
    "blossom": {"flower"},
    "photographer": {"camera"},
}
#: Words of the photos' labels (the classifier's own names), and the photos they name.
LABEL_QUERIES: dict[str, set[str]] = {
    "tabby": {"chelsea"},
    "espresso": {"coffee"},
    "cup": {"coffee"},
    "scooter": {"motorcycle"},
    "missile": {"rocket"},
    "daisy": {"flower"},
    "tripod": {"camera"},
    "palace": {"china"},
}
#: Concept words (WordNet's words above the labels), and the photos they describe.
CONCEPT_QUERIES: dict[str, set[str]] = {
    "cat": {"chelsea"},
    "coffee": {"coffee"},
    "beverage": {"coffee"},
    "flower": {"flower"},
    "plant": {"flower"},
    "building": {"china"},
    "motorcycle": {"motorcycle"},
}
#: Every query with the photos relevant to it: what precision and recall are measured on.
ALL_QUERIES = {**QUERIES, **LABEL_QUERIES, **CONCEPT_QUERIES}
#: Queries about nothing in the photos: the relevance cut-off should leave them (nearly) empty.
ABSENT = ("pizza", "giraffe", "violin", "wedding", "snowboard", "baboon")
MODES: tuple[SearchMode, ...] = ("words", "semantic", "hybrid")


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed: it ships some of the photos")
    return Path(next(iter(spec.submodule_search_locations)))


def copy_photos(folder: Path) -> dict[str, str]:
    """JPEG copies named img01.jpg...; returns their path -> photo name."""
    folder.mkdir(parents=True, exist_ok=True)
    roots = {"skimage": sample_dir(), "sklearn": package_dir("sklearn")}
    names = {}
    for i, (name, (package, relative)) in enumerate(PHOTOS.items(), start=1):
        target = folder / f"img{i:02d}.jpg"
        Image.open(roots[package] / relative).convert("RGB").save(target, "JPEG", quality=92)
        names[str(target)] = name
    return names


def start_noida(work: Path) -> tuple[object, str]:
    sys.path.insert(0, str(Path(__file__).parent))
    from index_throughput import start_noida as start  # the same launcher as that bench

    return start(work)


async def index(settings: Settings, paths: list[str]) -> None:
    backend = await open_backend(settings, writer=True)
    try:
        endpoint = Endpoint.parse(str(settings.triton_url))
        async with tagging_session(settings, (endpoint,), path_roots=None) as session:
            indexer = Indexer(session.tagger, session.model, backend, IndexOptions())
            stats = await indexer.run(classify(p, i) for i, p in enumerate(paths))
        if stats.indexed != len(paths):
            raise SystemExit(f"indexed {stats.indexed} of {len(paths)} photos")
    finally:
        await backend.close()


def recall_at_3(found: list[str], expected: set[str]) -> float:
    return len(set(found[:3]) & expected) / min(len(expected), 3)


@dataclass(frozen=True)
class Result:
    recall: float  # mean recall@3 over ALL_QUERIES
    in_top3: int  # queries with a relevant photo in their top three
    precision: float  # relevant hits / hits returned (first page of 10), over ALL_QUERIES
    mean_precision: float  # each query's precision, averaged over queries that returned hits
    returned: int  # hits returned over ALL_QUERIES
    p50_ms: float
    absent: float  # mean hits (of 10) of the ABSENT queries
    tops: dict[str, list[str]]  # each query's first page
    scores: dict[str, list[float]]  # and the 0-1 score of each of its hits


async def evaluate(
    settings: Settings,
    names: dict[str, str],
    rounds: int,
    modes: tuple[SearchMode, ...] = MODES,
    cutoff: hybrid.SemanticCutoff | None = None,
) -> dict[SearchMode, Result]:
    """Per mode: recall@3 and queries answered in the top three, precision of the hits on
    the first page (10), p50 latency, hits of the absent queries."""
    encoder = TextEncoder.for_settings(settings, Endpoint.parse(str(settings.triton_url)))
    await encoder.connect()
    backend: SearchBackend = await open_backend(settings)
    results: dict[SearchMode, Result] = {}
    options: dict[str, object] = {
        "encode": encoder.encode_one,
        "min_score": settings.semantic_min_score,
    }
    if cutoff is not None:
        options["cutoff"] = cutoff
    try:
        for mode in modes:
            latencies: list[float] = []
            tops: dict[str, list[str]] = {}
            scores: dict[str, list[float]] = {}
            for _ in range(rounds):
                for query in ALL_QUERIES:
                    started = time.perf_counter()
                    page = await hybrid.search(backend, query, mode, size=10, **options)
                    latencies.append((time.perf_counter() - started) * 1000)
                    tops[query] = [names[hit.document.uri] for hit in page.page.hits]
                    # (getattr: the bench also measures the deeptag before 0-1 scores.)
                    scores[query] = [
                        getattr(hit, "relevance", None) or 0.0 for hit in page.page.hits
                    ]
            returned = sum(len(tops[q]) for q in ALL_QUERIES)
            relevant = sum(len([n for n in tops[q] if n in ALL_QUERIES[q]]) for q in ALL_QUERIES)
            absent = [
                len((await hybrid.search(backend, q, mode, size=10, **options)).page.hits)
                for q in ABSENT
            ]
            answered = [q for q in ALL_QUERIES if tops[q]]
            per_query = [
                len([n for n in tops[q] if n in ALL_QUERIES[q]]) / len(tops[q]) for q in answered
            ]
            results[mode] = Result(
                recall=statistics.mean(recall_at_3(tops[q], ALL_QUERIES[q]) for q in ALL_QUERIES),
                in_top3=sum(bool(set(tops[q][:3]) & ALL_QUERIES[q]) for q in ALL_QUERIES),
                precision=relevant / returned if returned else 1.0,
                mean_precision=statistics.mean(per_query) if per_query else 1.0,
                returned=returned,
                p50_ms=statistics.median(latencies),
                absent=statistics.mean(absent),
                tops=tops,
                scores=scores,
            )
    finally:
        await backend.close()
        await encoder.close()
    return results


def sweep(settings: Settings, names: dict[str, str], console: Console) -> None:
    """Hybrid search under each cut-off of a grid: how the defaults were chosen."""
    table = Table(title="hybrid: semantic-only hits kept when confident, or near the best")
    for column in ("confidence", "ratio", "precision (hits)", "relevant in top 3", "recall@3"):
        table.add_column(column, justify="right")
    for confidence in (0.5, 0.6, 0.7, 0.8, 1.01):
        for ratio in (0.9, 0.95, 1.0, 1.01):
            cutoff = hybrid.SemanticCutoff(confidence, ratio)
            (r,) = asyncio.run(evaluate(settings, names, 1, ("hybrid",), cutoff)).values()
            table.add_row(
                f"{confidence:g}",
                f"{ratio:g}",
                f"{r.precision:.2f} ({r.returned})",
                f"{r.in_top3} of {len(ALL_QUERIES)}",
                f"{r.recall:.2f}",
            )
    console.print(table)


async def fit_calibration(settings: Settings, names: dict[str, str], console: Console) -> None:
    """Fit P(relevant | cosine) by logistic regression over every (query, photo) pair of
    ALL_QUERIES, and print the coefficients orchestrator/search/relevance.py uses."""
    from sklearn.linear_model import LogisticRegression

    encoder = TextEncoder.for_settings(settings, Endpoint.parse(str(settings.triton_url)))
    await encoder.connect()
    backend: SearchBackend = await open_backend(settings)
    cosines: list[float] = []
    relevant: list[int] = []
    try:
        for query, expected in ALL_QUERIES.items():
            vector = await encoder.encode_one(query)
            page = await backend.knn(vector, k=len(names), field="semantic", min_score=-1.0)
            for hit in page.hits:
                cosines.append(hit.score)
                relevant.append(int(names[hit.document.uri] in expected))
    finally:
        await backend.close()
        await encoder.close()
    model = LogisticRegression(C=10.0).fit([[c] for c in cosines], relevant)
    slope, intercept = float(model.coef_[0][0]), float(model.intercept_[0])
    console.print(
        f"P(relevant | cosine) = sigmoid({slope:.3f} * cosine + {intercept:.3f}) over "
        f"{len(cosines)} pairs ({sum(relevant)} relevant); 0.5 at cosine "
        f"{-intercept / slope:.3f}",
        highlight=False,
    )


async def show_labels(settings: Settings, names: dict[str, str], console: Console) -> None:
    backend = await open_backend(settings)
    try:
        page = await backend.search("*", size=100)
    finally:
        await backend.close()
    for hit in sorted(page.hits, key=lambda h: names[h.document.uri]):
        labels = ", ".join(f"{t}" for t in hit.document.tags[:3])
        concepts = ", ".join(c.concept for c in hit.document.concepts[:5])
        console.print(f"{names[hit.document.uri]:>11}: {labels} | {concepts}", highlight=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="Times each query is timed.")
    parser.add_argument("--backends", nargs="+", default=["embedded", "es"])
    parser.add_argument("--labels", action="store_true", help="Print each photo's labels.")
    parser.add_argument("--min-score", type=float, help="DEEPTAG_SEMANTIC_MIN_SCORE to try.")
    parser.add_argument("--dump", action="store_true", help="Print every query's first page.")
    parser.add_argument(
        "--fit", action="store_true", help="Fit the cosine calibration of relevance.py first."
    )
    parser.add_argument(
        "--sweep", action="store_true", help="Try hybrid cut-offs on the first backend."
    )
    args = parser.parse_args()
    console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="deeptag-semantic-") as tmp:
        work = Path(tmp)
        names = copy_photos(work / "photos")
        noida, es_url = start_noida(work) if "es" in args.backends else (None, "")
        ports = TritonPorts(free_port(), free_port(), free_port())
        table = Table(
            title=f"{len(PHOTOS)} photos; {len(QUERIES)} queries beyond the labels, "
            f"{len(LABEL_QUERIES)} label words, {len(CONCEPT_QUERIES)} concept words"
        )
        columns = (
            "backend",
            "mode",
            "precision (hits)",
            "per query",
            "relevant in top 3",
            "recall@3",
            "p50 latency",
            "hits, absent queries",
        )
        for column in columns:
            table.add_column(column, justify="right")
        misses: list[str] = []
        try:
            with LocalTriton(REPO / "model_repository", work / "triton", ports) as triton:
                for kind in args.backends:
                    settings = Settings(
                        triton_url=triton.http_url,
                        model_repository=REPO / "model_repository",
                        data_dir=work / f"data-{kind}",
                        search_backend=kind,
                        es_url=es_url or None,
                        es_index=f"semantic-eval-{uuid.uuid4().hex[:8]}",
                        **(
                            {} if args.min_score is None else {"semantic_min_score": args.min_score}
                        ),
                    )
                    asyncio.run(index(settings, list(names)))
                    if args.labels and kind == args.backends[0]:
                        asyncio.run(show_labels(settings, names, console))
                    if args.fit and kind == args.backends[0]:
                        asyncio.run(fit_calibration(settings, names, console))
                    if args.sweep and kind == args.backends[0]:
                        sweep(settings, names, console)
                    results = asyncio.run(evaluate(settings, names, args.rounds))
                    for mode, r in results.items():
                        table.add_row(
                            kind,
                            mode,
                            f"{r.precision:.2f} ({r.returned})",
                            f"{r.mean_precision:.2f}",
                            f"{r.in_top3} of {len(ALL_QUERIES)}",
                            f"{r.recall:.2f}",
                            f"{r.p50_ms:.1f} ms",
                            f"{r.absent:.1f} of 10",
                        )
                        if kind == args.backends[0] and (args.dump or mode == "hybrid"):
                            misses += [
                                f"{mode:>8} {q!r}: "
                                + ", ".join(
                                    f"{n}{'' if n in ALL_QUERIES[q] else '(x)'} {score:.3f}"
                                    for n, score in zip(r.tops[q], r.scores[q], strict=True)
                                )
                                + f"; expected {sorted(ALL_QUERIES[q])}"
                                for q in ALL_QUERIES
                                if args.dump or set(r.tops[q]) != ALL_QUERIES[q]
                            ]
        finally:
            if noida is not None:
                os.killpg(noida.pid, signal.SIGTERM)  # type: ignore[attr-defined]
        console.print(table)
        console.print(
            "First pages that are not exactly the relevant photos, (x) irrelevant "
            "(first backend; hybrid, every mode with --dump):",
            highlight=False,
        )
        for line in misses:
            console.print(f"  {line}", highlight=False)
        cut = Settings().semantic_min_score if args.min_score is None else args.min_score
        console.print(f"{os.cpu_count()} CPU cores; semantic_min_score {cut}")


if __name__ == "__main__":
    main()
