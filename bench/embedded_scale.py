"""The embedded index at 10k-1M documents: search latency, memory, kNN recall, build and disk.

Builds, per size, an embedded index of synthetic documents shaped like deeptag's (sha256 ids,
photo paths, five ImageNet categories with scores, tags, concepts, photo metadata, a 1,280-float
``embedding`` and a 384-float ``semantic``) through the API, in batches, into the folder that
DEEPTAG_DATA_DIR points the CLI and server at. Vectors are not uniform noise (on which any
approximate index loses its neighbours): embeddings are a mixture of Gaussians around 2,000
centres, and semantic vectors are made from each document's categories and concepts with the
real label embeddings, as deeptag makes them. They are also kept as float16 ``.npy`` memmaps, so
that recall@10 of ``knn`` is measured against an exact chunked scan, at 1M without 5 GB of RAM.

Then, with one local Triton (for the text encoder), it times as a user would:
``deeptag search WORDS`` (hybrid), ``--like ID`` and ``--mode words`` in fresh processes (p50
of --runs, raw and net of a bare ``python -c pass``; peak RSS from wait4), and ``deeptag
serve`` over HTTP (first query, then p50/p95 of --requests each of GET /search?q=WORDS and
POST /search {"like": ID}; the server's RSS after). Indexes are kept in --work and reused
while the code of orchestrator/search is unchanged (a fingerprint names the folder).

Run: .venv/bin/python bench/embedded_scale.py [--sizes 10000 100000 1000000] [--work DIR]
Another checkout (e.g. before a change): PYTHONPATH=/path/to/it, same command.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import httpx
import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

import orchestrator
from orchestrator.concepts import (
    DEFAULT_LIMIT,
    ConceptTable,
    concept_scores,
    concepts_from_scores,
    load_table,
)
from orchestrator.photo import Camera, Exposure, GeoPoint, PhotoMetadata, Place
from orchestrator.runtime import shim_options
from orchestrator.search.base import (
    EMBEDDING_DIMS,
    Category,
    ConceptScore,
    ImageDocument,
    Location,
    VectorField,
)
from orchestrator.search.embedded import EmbeddedIndex
from orchestrator.semantic import SemanticSpace, load_space, semantic_vectors
from orchestrator.settings import Settings, load_settings
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port

REPO = Path(__file__).resolve().parents[1]  # this checkout: it has the exported models
CODE = Path(orchestrator.__file__).resolve().parents[1]  # the checkout under test
MODELS = REPO / "model_repository"
CENTRES = 2000
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CAMERAS = [  # (make, model, share of documents): the rest have no camera
    ("Apple", "iPhone 12", 0.30),
    ("Samsung", "SM-G991B", 0.12),
    ("Canon", "EOS 5D Mark IV", 0.05),
    ("Google", "Pixel 7", 0.05),
    ("Sony", "ILCE-7M3", 0.04),
    ("NIKON CORPORATION", "NIKON D750", 0.03),
]
PLACES = [
    (48.8584, 2.2945, Place("Paris", "Île-de-France", "France", "FR")),
    (52.52, 13.405, Place("Berlin", "Berlin", "Germany", "DE")),
    (40.7128, -74.006, Place("New York", "New York", "United States", "US")),
    (35.6762, 139.6503, Place("Tokyo", "Tokyo", "Japan", "JP")),
    (45.764, 4.8357, Place("Lyon", "Auvergne-Rhône-Alpes", "France", "FR")),
]
FIELDS: tuple[VectorField, ...] = ("embedding", "semantic")
PIXELS = [(4032, 3024), (3024, 4032), (6000, 4000), (1920, 1080)]


@dataclass(frozen=True)
class Corpus:
    """What every batch draws from: labels, cluster centres, the semantic space."""

    labels: list[str]
    centres: npt.NDArray[np.float32]  # (CENTRES, 1280)
    centre_class: npt.NDArray[np.int64]  # the top category of each centre's documents
    similar: npt.NDArray[np.int64]  # (classes, 8): the labels each label is confused with
    space: SemanticSpace
    table: ConceptTable


def load_corpus() -> Corpus:
    rng = np.random.default_rng(2024)
    labels = (MODELS / "efficientnet_lite0" / "labels.txt").read_text().splitlines()
    table = load_table()
    space = load_space(MODELS / "minilm_l6", len(labels), len(table.names))
    # A component every image shares (CNN features are non-negative: unrelated photos still
    # have a cosine of ~0.3), then a centre per kind of photo, each about as long.
    shared = rng.normal(0, 0.6 / EMBEDDING_DIMS**0.5, EMBEDDING_DIMS)
    centres = shared + rng.normal(0, 1 / EMBEDDING_DIMS**0.5, (CENTRES, EMBEDDING_DIMS))
    centre_class = rng.integers(0, len(labels), CENTRES)
    centre_class[: CENTRES * 3 // 100] = rng.choice(CATS, CENTRES * 3 // 100)  # 3 % cats
    # A photo's runner-up labels share its top label's deepest WordNet ancestors (tabby:
    # tiger cat, Egyptian cat...), as a classifier's do; the jitter picks among equals.
    shared = (table.matrix * table.depths) @ table.matrix.T + rng.uniform(0, 0.5, (1000, 1000))
    np.fill_diagonal(shared, -np.inf)
    similar = np.argsort(-shared, axis=1)[:, :8]
    return Corpus(labels, centres.astype(np.float32), centre_class, similar, space, table)


def doc_id(row: int) -> str:
    return hashlib.sha256(f"deeptag-bench-photo-{row}".encode()).hexdigest()


def unit_rows(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    unit: npt.NDArray[np.float32] = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return unit


def make_batch(
    corpus: Corpus, start: int, count: int
) -> tuple[list[ImageDocument], npt.NDArray[np.float16], npt.NDArray[np.float16]]:
    """Documents ``start`` .. ``start + count``, the same on every run, and their vectors."""
    rng = np.random.default_rng([7, start])
    centre = rng.integers(0, CENTRES, count)
    noise = rng.normal(0, 1 / EMBEDDING_DIMS**0.5, (count, EMBEDDING_DIMS))
    spread = rng.uniform(0.6, 1.0, (count, 1))  # some photos sit tighter to their kind
    embedding = unit_rows(corpus.centres[centre] + spread * noise).astype(np.float16)
    classes = np.empty((count, 5), dtype=np.int64)
    classes[:, 0] = corpus.centre_class[centre]
    for r in range(count):
        classes[r, 1:] = rng.choice(corpus.similar[classes[r, 0]], 4, replace=False)
    top = rng.uniform(0.25, 0.95, count)
    rest = (1 - top)[:, None] * rng.dirichlet(np.ones(4), count) * rng.uniform(0.5, 1, (count, 1))
    scores = np.concatenate([top[:, None], rest], axis=1)
    probs = np.zeros((count, len(corpus.labels)), dtype=np.float32)
    np.put_along_axis(probs, classes, scores.astype(np.float32), axis=1)
    # deeptag's own construction: concepts from the probabilities, ConSE semantic vectors.
    per_concept = concept_scores(probs, corpus.table)
    semantic = semantic_vectors(probs, corpus.space, per_concept).astype(np.float16)
    documents = []
    for r in range(count):
        row = start + r
        order = np.argsort(-scores[r])
        categories = tuple(
            Category(corpus.labels[classes[r, i]], round(float(scores[r, i]), 6)) for i in order
        )
        names = [c.category for c in categories]
        concepts = concepts_from_scores(per_concept[r], names, 0.2, DEFAULT_LIMIT, corpus.table)
        year, month = 2010 + row % 15, 1 + row % 12
        uri = f"/photos/{year}/{month:02d}/IMG_{row:07d}.jpg"
        mtime = time.mktime((year, month, 1 + row % 28, 12, 0, 0, 0, 0, -1))
        locations = [Location(uri, int(rng.integers(1_500_000, 6_000_000)), mtime)]
        if row % 33 == 0:  # a few copies elsewhere
            locations.append(Location(f"/backup{uri}", locations[0].size, mtime))
        documents.append(
            ImageDocument(
                id=doc_id(row),
                uri=uri,
                categories=categories,
                tags=tuple(dict.fromkeys(name.split(" ", 1)[1] for name in names)),
                embedding=tuple(embedding[r].astype(np.float32).tolist()),
                width=PIXELS[row % 4][0],
                height=PIXELS[row % 4][1],
                model="efficientnet_lite0/1",
                indexed_at=f"2026-01-{1 + row % 28:02d}T10:00:00Z",
                concepts=tuple(ConceptScore(c.concept, round(c.score, 6)) for c in concepts),
                semantic=tuple(semantic[r].astype(np.float32).tolist()),
                photo=photo_of(rng, year, month, row, int(classes[r, 0]) in CATS),
                locations=tuple(locations),
            )
        )
    return documents, embedding, semantic


def photo_of(rng: np.random.Generator, year: int, month: int, row: int, cat: bool) -> PhotoMetadata:
    draw = rng.uniform()
    camera = None
    for make, model, share in CAMERAS:
        if draw < share:
            camera = Camera(make, model)
            break
        draw -= share
    place = PLACES[row % len(PLACES)] if rng.uniform() < 0.2 else None
    return PhotoMetadata(
        format="JPEG",
        taken_at=f"{year}-{month:02d}-{1 + row % 28:02d}T{row % 24:02d}:30:00+01:00",
        camera=camera,
        exposure=Exposure(int(rng.choice([100, 200, 400, 800])), 1.8, 1 / 120, 4.2)
        if camera
        else None,
        location=GeoPoint(place[0], place[1]) if place else None,
        place=place[2] if place else None,
        # Half of the cat photos say so in their own words: the word query's matches.
        keywords=("kitten", "home") if cat and row % 2 else (),
    )


async def build(
    corpus: Corpus, index_dir: Path, vectors: Path, n: int, batch: int
) -> dict[str, float]:
    """Writes the index through the API and the vectors as memmaps; the seconds spent."""
    shapes = {"embedding": EMBEDDING_DIMS, "semantic": corpus.space.dim}
    files = {
        f: np.lib.format.open_memmap(vectors / f"{f}.npy", "w+", np.float16, (n, d))  # type: ignore[no-untyped-call]
        for f, d in shapes.items()
    }
    generate_s = index_s = 0.0
    index = await EmbeddedIndex.open(index_dir, writer=True)
    try:
        for start in range(0, n, batch):
            started = time.perf_counter()
            documents, embedding, semantic = make_batch(corpus, start, min(batch, n - start))
            files["embedding"][start : start + len(documents)] = embedding
            files["semantic"][start : start + len(documents)] = semantic
            generate_s += time.perf_counter() - started
            started = time.perf_counter()
            async for result in index.index(documents):
                if not result.ok:
                    raise SystemExit(f"could not store {result.uri}: {result.error}")
            index_s += time.perf_counter() - started
            if (start // batch) % max(1, n // batch // 10) == 0:
                print(f"  {start + len(documents)}/{n} indexed, {index_s:.0f} s", flush=True)
    finally:
        started = time.perf_counter()
        await index.close()  # waits for tantivy's merges: part of building
        index_s += time.perf_counter() - started
    for memmap in files.values():
        memmap.flush()
    return {"index_s": index_s, "generate_s": generate_s}


def exact_top(
    matrix: npt.NDArray[np.float16], queries: npt.NDArray[np.float32], k: int
) -> list[set[int]]:
    """Rows of the ``k`` highest cosines per query, scanning the memmap in chunks."""
    best = np.full((len(queries), k), -np.inf, dtype=np.float32)
    rows = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(matrix), 65536):
        block = unit_rows(np.asarray(matrix[start : start + 65536], dtype=np.float32))
        scores = np.concatenate([best, queries @ block.T], axis=1)
        ids = np.concatenate(
            [rows, np.arange(start, start + len(block))[None].repeat(len(queries), 0)], axis=1
        )
        keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best, rows = np.take_along_axis(scores, keep, 1), np.take_along_axis(ids, keep, 1)
    return [set(r.tolist()) for r in rows]


async def recall(
    index_dir: Path, vectors: Path, n: int, queries: int
) -> dict[str, tuple[float, float, float]]:
    """Per field: mean recall@10 of ``knn``, its first call and its p50 in ms (in-process)."""
    out: dict[str, tuple[float, float, float]] = {}
    index = await EmbeddedIndex.open(index_dir)
    try:
        for field in FIELDS:
            matrix = np.load(vectors / f"{field}.npy", mmap_mode="r")
            rng = np.random.default_rng(11)
            picked = np.asarray(matrix[np.sort(rng.choice(n, queries, replace=False))], np.float32)
            # Near a document, not on it: the true neighbours are its neighbours.
            noise = rng.normal(0, 0.3 / matrix.shape[1] ** 0.5, picked.shape)
            probes = unit_rows(picked + noise).astype(np.float32)
            truth = exact_top(matrix, probes, 10)
            found, times = [], []
            for probe, expected in zip(probes, truth, strict=True):
                started = time.perf_counter()
                page = await index.knn(probe.tolist(), k=10, field=field)
                times.append((time.perf_counter() - started) * 1000)
                ids = {doc_id(r) for r in expected}
                found.append(len(ids & {hit.document.id for hit in page.hits}) / 10)
            out[field] = (float(np.mean(found)), times[0], statistics.median(times[1:]))
    finally:
        await index.close()
    return out


# Linux carries a process's peak RSS across exec, starting from its parent's: a child of this
# process (which holds vectors and indexes) would report at least this one's peak. So each
# fresh process is spawned by a small Python that times it and reads its rusage.
LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    out.write(f"{elapsed} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_once(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one fresh process; its output goes to ``log``."""
    result = log.with_suffix(".rusage")
    with log.with_suffix(".out").open("w") as out, log.open("w") as err:
        subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(result), *argv],
            stdout=out, stderr=err, env=env, cwd=CODE, check=True,
        )  # fmt: skip
    elapsed, max_kb, code = result.read_text().split()
    text, errors = log.with_suffix(".out").read_text(), log.read_text()
    # A hybrid query that fell back to words says so in a note: that is not what is timed.
    if code != "0" or "no images match" in text or "note:" in errors:
        raise SystemExit(f"{' '.join(argv)} failed or found nothing:\n{text}\n{errors}")
    return float(elapsed), int(max_kb) / 1024  # kB on Linux


def fresh(argv: list[str], env: dict[str, str], log: Path, runs: int) -> tuple[float, float]:
    """p50 seconds and p50 peak RSS (MB) over ``runs``, after one untimed run (page cache)."""
    run_once(argv, env, log)
    results = [run_once(argv, env, log) for _ in range(runs)]
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


def memory_mb(pid: int, key: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a live process."""
    match = re.search(rf"{key}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


class Served(NamedTuple):
    times: dict[str, tuple[float, float, float]]  # per query: first, p50, p95 in ms
    rss_mb: float  # after the queries
    peak_mb: float


def serve(env: dict[str, str], log: Path, query: str, like: str, requests: int) -> Served:
    """Times each query over HTTP against one ``deeptag serve``, stopped before returning."""
    port = free_port()
    argv = [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)]
    with log.open("w") as output:
        server = subprocess.Popen(
            [*argv, "--log-level", "warning"],
            stdout=output, stderr=subprocess.STDOUT, env=env, cwd=CODE,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=300, trust_env=False) as client:
            deadline = time.monotonic() + 180
            while not ready(client):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"deeptag serve did not start:\n{log.read_text()}")
                time.sleep(0.2)

            def hybrid() -> None:
                body = client.get("/search", params={"q": query}).raise_for_status().json()
                if body["mode"] != "hybrid" or "notice" in body or not body["hits"]:
                    raise SystemExit(f"the hybrid query did not run as hybrid: {body}")

            def similar() -> None:
                body = client.post("/search", json={"like": like}).raise_for_status().json()
                if not body["hits"]:
                    raise SystemExit(f"the like query found nothing: {body}")

            out: dict[str, tuple[float, float, float]] = {}
            for name, call in ((f"GET /search?q={query}", hybrid), ("POST /search like", similar)):
                first = timed(call)  # loads what the query needs: the slow one
                for _ in range(3):
                    call()
                times = [timed(call) for _ in range(requests)]
                out[name] = (first, statistics.median(times), float(np.percentile(times, 95)))
        return Served(out, memory_mb(server.pid, "VmRSS"), memory_mb(server.pid, "VmHWM"))
    finally:
        server.terminate()  # SIGTERM, by its pid: uvicorn shuts down cleanly
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def ready(client: httpx.Client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.TransportError:
        return False


def timed(call: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def fingerprint() -> str:
    """The code that writes and reads the index: a built folder is reused while it is equal."""
    digest = hashlib.sha256()
    for path in sorted((CODE / "orchestrator" / "search").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def disk_bytes(folder: Path) -> int:
    return int(
        subprocess.run(
            ["du", "-s", "-B1", str(folder)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )


class Report:
    """The one table: a row per measure, each filling the columns that apply to it."""

    CELLS = ("p50", "net", "p95", "first", "rss", "result")

    def __init__(self, title: str) -> None:
        self.table = Table(title=title)
        for column in ("docs", "what", "p50", "net of start", "p95", "first", "RSS", "result"):
            self.table.add_column(column, justify="left" if column == "what" else "right")

    def add(self, docs: int | str, what: str, **cells: str) -> None:
        self.table.add_row(str(docs), what, *(cells.get(key, "") for key in self.CELLS))


@dataclass(frozen=True)
class Setup:
    """What every size shares."""

    console: Console
    code: str  # fingerprint() of the code under test
    corpus: Corpus
    env: dict[str, str]  # for subprocesses, without the per-size DEEPTAG_ variables
    triton_url: str
    start_s: float  # p50 of `python -c pass`


def measure(n: int, work: Path, args: argparse.Namespace, setup: Setup, report: Report) -> None:
    """Every row of one size; builds the index first unless this code built it already."""
    console = setup.console
    folder = work / f"{n}-{setup.code}"
    data_dir = folder / "data"
    index_dir = Settings(data_dir=data_dir).embedded_index_dir  # where the CLI looks
    vectors = work / f"vectors-{n}"
    marker = folder / "built.json"
    reused = marker.exists()
    if reused:
        built = json.loads(marker.read_text())
        console.print(f"{n}: reusing {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)  # a build cut short: start over
        vectors.mkdir(parents=True, exist_ok=True)
        console.print(f"{n}: building {index_dir}")
        built = asyncio.run(build(setup.corpus, index_dir, vectors, n, args.batch))
        built["disk"] = disk_bytes(data_dir)
        marker.write_text(json.dumps(built))
    rate = f"{n / built['index_s']:.0f} docs/s (+{built['generate_s']:.0f} s making them)"
    what = f"build via API ({args.batch}/call{', earlier run' if reused else ''})"
    report.add(n, what, p50=f"{built['index_s']:.1f} s", result=rate)
    size = f"{built['disk'] / 1e6:.0f} MB, {built['disk'] / n:.0f} B/doc"
    report.add(n, "size on disk (data dir)", result=size)

    found = asyncio.run(recall(index_dir, vectors, n, args.queries))
    for field, (value, first, p50) in found.items():
        report.add(n, f"knn {field}, in-process", p50=f"{p50:.1f} ms", first=f"{first:.0f} ms",
                   result=f"recall@10 {value:.3f}")  # fmt: skip

    env = {
        **setup.env,
        "DEEPTAG_TRITON_URL": setup.triton_url,
        "DEEPTAG_DATA_DIR": str(data_dir),
        "DEEPTAG_SEARCH_BACKEND": "embedded",
    }
    like = doc_id(n // 2)
    search = [sys.executable, "-m", "orchestrator", "search"]
    for what, argv in (
        (f"search {args.query}", [*search, args.query]),
        ("search --like ID", [*search, "--like", like]),
        (f"search {args.query} --mode words", [*search, args.query, "--mode", "words"]),
    ):
        log = work / "logs" / f"{n}-{re.sub(r'[^a-z]+', '-', what)}.log"
        seconds, peak = fresh(argv, env, log, args.runs)
        net = f"{seconds - setup.start_s:.2f} s"
        report.add(n, what, p50=f"{seconds:.2f} s", net=net, rss=f"{peak:.0f} MB")

    served = serve(env, work / "logs" / f"{n}-serve.log", args.query, like, args.requests)
    for what, (first, p50, p95) in served.times.items():
        report.add(n, f"serve: {what}", p50=f"{p50:.1f} ms", p95=f"{p95:.1f} ms",
                   first=f"{first:.0f} ms", rss=f"{served.rss_mb:.0f} MB",
                   result=f"RSS after both (peak {served.peak_mb:.0f} MB)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--work", type=Path, help="Keep built indexes here (reused).")
    parser.add_argument("--batch", type=int, default=1000, help="Documents per index() call.")
    parser.add_argument("--runs", type=int, default=5, help="Fresh processes per CLI row.")
    parser.add_argument("--requests", type=int, default=50, help="Timed requests per query.")
    parser.add_argument("--queries", type=int, default=100, help="kNN queries for recall.")
    parser.add_argument("--query", default="kitten", help="The WORDS of the word queries.")
    args = parser.parse_args()
    console = Console(width=150)
    began = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")}
    env["DEEPTAG_TRITON_LINGER"] = "false"  # each run starts and stops its own
    env["DEEPTAG_MODEL_REPOSITORY"] = str(MODELS)  # the checkout under test may lack models
    # Subprocesses import from their cwd (CODE) and PYTHONPATH: say which code they ran.
    where = subprocess.run(
        [sys.executable, "-c", "import orchestrator; print(orchestrator.__file__)"],
        env=env, cwd=CODE, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    code = fingerprint()
    console.print(f"code: {orchestrator.__file__}, subprocesses: {where}; search code {code}")
    report = Report(f"embedded index at scale ({os.cpu_count()} cores, CPU Triton)")
    with tempfile.TemporaryDirectory(prefix="deeptag-scale-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        (work / "logs").mkdir(parents=True, exist_ok=True)
        start_s, start_rss = fresh(
            [sys.executable, "-c", "pass"], env, work / "logs" / "pass.log", args.runs
        )
        report.add("", "python -c pass", p50=f"{start_s:.3f} s", rss=f"{start_rss:.0f} MB")
        argv = [sys.executable, "-m", "orchestrator", "--help"]
        help_s, help_rss = fresh(argv, env, work / "logs" / "help.log", args.runs)
        report.add("", "deeptag --help", p50=f"{help_s:.3f} s", net=f"{help_s - start_s:.3f} s",
                   rss=f"{help_rss:.0f} MB")  # fmt: skip
        ports = TritonPorts(free_port(), free_port(), free_port())
        shim = shim_options(load_settings())  # as `deeptag search` would start it
        try:
            with LocalTriton(MODELS, work / "triton", ports, shim=shim) as triton:
                setup = Setup(console, code, load_corpus(), env, triton.http_url, start_s)
                for n in args.sizes:
                    report.table.add_section()
                    measure(n, work, args, setup, report)
                    console.print(f"{n}: done at {time.perf_counter() - began:.0f} s")
        finally:
            console.print(report.table)  # what was measured, even when a later size fails
        console.print(
            f"p50 of {args.runs} fresh processes after one untimed; net = minus `python -c pass`;"
            f" {args.requests} requests per served query after 3 untimed. "
            f"Total {time.perf_counter() - began:.0f} s."
        )


if __name__ == "__main__":
    main()
