"""`deeptag sync` of a folder where nothing changed: how long, and how much it reads.

Writes N distinct JPEGs (about 20 KB each) and an embedded index that already holds a document
per file, with the path, size and modification time `deeptag index` would have recorded (the
documents are written directly: tagging 20,000 files first would only time the model). Then
runs `deeptag sync FOLDER --json` as a user would, in a fresh process, with no Triton
reachable: an unchanged folder must need none. The bytes the process read (`rchar` of
/proc/PID/io, which counts every read: Python's own modules included) are compared with the
size of the images (a sync that opened them would read at least that much), beyond what a
sync of an empty folder reads to start. The index itself is memory-mapped, which rchar does not
count: what remains is files read, i.e. images.

Run: .venv/bin/python bench/sync_unchanged.py [--count 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from orchestrator.search.base import Category, ImageDocument, Location
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings

CHUNK = 1000


def make_photos(folder: Path, count: int) -> int:
    """``count`` distinct JPEGs in subfolders of 1,000; their total size in bytes."""
    rng = np.random.default_rng(7)
    total = 0
    base = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    for i in range(count):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        pixels = base.copy()
        pixels[i % 96, :, :] = rng.integers(0, 255, (128, 3), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).resize((256, 192)).save(out, "JPEG", quality=95)
        (sub / f"img{i:06d}.jpg").write_bytes(out.getvalue())
        total += len(out.getvalue())
    return total


def document_of(path: Path) -> ImageDocument:
    data = path.read_bytes()
    stat = path.stat()
    return ImageDocument(
        id=hashlib.sha256(data).hexdigest(),
        uri=str(path),
        categories=(Category("n00000000 noise", 0.5),),
        tags=("noise",),
        embedding=None,
        width=256,
        height=192,
        model="efficientnet_lite0/1",
        indexed_at="2026-12-05T00:00:00Z",
        locations=(Location(str(path), stat.st_size, stat.st_mtime),),
    )


async def write_index(settings: Settings, paths: list[Path]) -> None:
    backend = await open_backend(settings, "embedded", writer=True)
    try:
        for start in range(0, len(paths), CHUNK):
            documents = [document_of(p) for p in paths[start : start + CHUNK]]
            async for result in backend.index(documents):
                if not result.ok:
                    raise SystemExit(f"could not store {result.uri}: {result.error}")
    finally:
        await backend.close()


def timed_sync(folder: Path, env: dict[str, str]) -> tuple[float, int, dict[str, int]]:
    """Wall seconds, bytes read (rchar) and the counts of one `deeptag sync --json`."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "sync", str(folder), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    rchar = 0
    io_path = Path(f"/proc/{process.pid}/io")
    while process.poll() is None:
        try:
            fields = dict(line.split(": ") for line in io_path.read_text().splitlines())
            rchar = max(rchar, int(fields["rchar"]))
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    out, err = process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"deeptag sync failed ({process.returncode}):\n{err}")
    counts: dict[str, int] = json.loads(out)
    return elapsed, rchar, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="deeptag-sync-bench-") as tmp:
        folder = Path(tmp) / "Pictures"
        data_dir = Path(tmp) / "data"
        started = time.perf_counter()
        image_bytes = make_photos(folder, args.count)
        settings = Settings(data_dir=data_dir, search_backend="embedded")
        asyncio.run(write_index(settings, sorted(folder.rglob("*.jpg"))))
        console.print(
            f"{args.count} files ({image_bytes / 1e6:.0f} MB) and their documents written "
            f"in {time.perf_counter() - started:.0f} s"
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")},
            "DEEPTAG_DATA_DIR": str(data_dir),
            "DEEPTAG_SEARCH_BACKEND": "embedded",
            # Nothing listens here: an unchanged folder must not need Triton.
            "DEEPTAG_TRITON_URL": "http://127.0.0.1:9",
        }
        # What any sync reads to start (Python, its modules, the index): an empty folder's.
        empty = Path(tmp) / "empty"
        empty.mkdir()
        start_s, start_bytes, _ = timed_sync(empty, env)
        table = Table(title=f"deeptag sync of an unchanged folder of {args.count} files")
        columns = ("run", "wall s", "read MB", "beyond start-up MB", "unchanged", "changed")
        for column in columns:
            table.add_column(column, justify="right")
        table.add_row("empty folder", f"{start_s:.2f}", f"{start_bytes / 1e6:.1f}", "", "", "")
        for run in range(1, args.runs + 1):
            elapsed, rchar, counts = timed_sync(folder, env)
            changed = sum(v for k, v in counts.items() if k != "unchanged" and isinstance(v, int))
            table.add_row(
                str(run),
                f"{elapsed:.2f}",
                f"{rchar / 1e6:.1f}",
                f"{(rchar - start_bytes) / 1e6:.1f}",
                str(counts.get("unchanged")),
                str(changed),
            )
        console.print(table)
        console.print(f"the images: {image_bytes / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
