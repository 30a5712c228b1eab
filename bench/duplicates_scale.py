"""`deeptag duplicates` over a large embedded index: how long, how much memory, what it found.

Builds an embedded index of N synthetic documents through the API (clustered 1,280-value
embeddings, random perceptual hashes) with planted duplicates: P near-duplicate pairs (a
document's vector plus a little noise, its hash with 2 bits flipped) and C exact copies (one
document at two locations). Then runs `deeptag duplicates --json` as a fresh process, as a user
would, and prints its wall time, peak RSS and how many of the planted groups it found (and how
many it found that were not planted).

Run: .venv/bin/python bench/duplicates_scale.py [--count 100000] [--pairs 1000] [--copies 500]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from orchestrator.search.base import Category, ImageDocument, Location
from orchestrator.search.embedded import EmbeddedIndex
from orchestrator.settings import Settings

BATCH = 1000
CENTRES = 2000


def path(i: int) -> str:
    return f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg"


def doc_id(i: int) -> str:
    return hashlib.sha256(f"photo {i}".encode()).hexdigest()


def document(i: int, vector: np.ndarray, phash: str, places: list[str]) -> ImageDocument:
    return ImageDocument(
        id=doc_id(i),
        uri=places[0],
        categories=(Category("n02123045 tabby", 0.8),),
        tags=("tabby",),
        embedding=tuple(vector.tolist()),
        width=1600,
        height=1200,
        model="efficientnet_lite0/1",
        indexed_at="2026-12-05T00:00:00Z",
        locations=tuple(Location(p, 500_000, 1.0) for p in places),
        phash=phash,
    )


def build_in_child(folder: Path, count: int, pairs: int, copies: int) -> float:
    return asyncio.run(build(folder, count, pairs, copies))


async def build(folder: Path, count: int, pairs: int, copies: int) -> float:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(CENTRES, 1280)).astype(np.float32)
    index = await EmbeddedIndex.open(folder, writer=True)
    started = time.perf_counter()
    twin_of = {count - pairs + j: j for j in range(pairs)}  # the last P are near twins
    kept: dict[int, tuple[np.ndarray, int]] = {}
    try:
        for start in range(0, count, BATCH):
            batch = []
            for i in range(start, min(start + BATCH, count)):
                if i in twin_of:
                    vector, bits = kept[twin_of[i]]
                    vector = vector + 0.2 * rng.normal(size=1280).astype(np.float32) / 35
                    bits ^= 0b101  # two bits differ
                else:
                    vector = centres[rng.integers(0, CENTRES)] + rng.normal(size=1280) * 0.9
                    bits = int(rng.integers(0, 2**63))
                vector = (vector / np.linalg.norm(vector)).astype(np.float32)
                if i < pairs:
                    kept[i] = (vector, bits)
                places = [path(i)]
                if pairs <= i < pairs + copies:
                    places.append(f"/photos/backup/IMG_{i:06d}.jpg")
                batch.append(document(i, vector, f"{bits:016x}", places))
            async for result in index.index(batch):
                assert result.ok, result
    finally:
        await index.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--copies", type=int, default=500)
    args = parser.parse_args()
    console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="deeptag-dups-") as tmp:
        data = Path(tmp) / "data"
        folder = Settings(data_dir=data).embedded_index_dir
        # Built in a child process: this one stays small, so the peak RSS of the
        # `deeptag duplicates` it starts is that command's own.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            built = pool.apply(build_in_child, (folder, args.count, args.pairs, args.copies))
        console.print(f"{args.count} documents built in {built:.0f} s")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")},
            "DEEPTAG_DATA_DIR": str(data),
            "DEEPTAG_SEARCH_BACKEND": "embedded",
        }
        out_path = Path(tmp) / "groups.json"
        started = time.perf_counter()
        with out_path.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "duplicates", "--json"], stdout=out, env=env
            )
            _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit("deeptag duplicates failed")
        found = json.loads(out_path.read_text())
        peak_mb = usage.ru_maxrss / 1024
    near = [g for g in found["groups"] if g["kind"] == "near"]
    exact = [g for g in found["groups"] if g["kind"] == "exact"]
    planted_near = {
        frozenset({path(j), path(args.count - args.pairs + j)}) for j in range(args.pairs)
    }
    got_near = {frozenset(m["location"] for m in g["members"]) for g in near}
    table = Table(title=f"deeptag duplicates over {args.count:,} embedded documents (2 cores)")
    columns = ("wall s", "peak RSS", "near found / planted", "near not planted", "exact / planted")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(
        f"{seconds:.1f}",
        f"{peak_mb:.0f} MB",
        f"{len(got_near & planted_near)} / {len(planted_near)}",
        str(len(got_near - planted_near)),
        f"{len(exact)} / {args.copies}",
    )
    console.print(table)


if __name__ == "__main__":
    main()
