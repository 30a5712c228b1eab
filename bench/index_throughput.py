"""`deeptag index` over folders of realistic photos: images/s and peak memory per backend.

Makes N JPEGs of 1-3 megapixels from the sample photos (random crops, upscaling, mirroring,
re-encoding at different qualities, so every file has distinct bytes), starts one local Triton
and noida-db (the Elasticsearch API), then runs `deeptag index FOLDER` as a subprocess for each
backend and size, and prints a table. Peak memory is the indexing process's maximum resident
set size (Triton runs in its own process and is reported separately).

Run: .venv/bin/python bench/index_throughput.py [--sizes 1000 5000] [--backends embedded es]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from rich.console import Console
from rich.table import Table

from orchestrator.runtime import shim_options
from orchestrator.samples import sample_photos
from orchestrator.settings import load_settings
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(
    r"(\d+) indexed, (\d+) skipped \(already indexed\), (\d+) failed in ([\d.]+) s"
)


def make_photo(args: tuple[int, Path]) -> int:
    """One 1-3 MP JPEG with its own bytes; returns its size in bytes."""
    i, folder = args
    path = folder / f"photo_{i:05d}.jpg"
    if path.exists():
        return path.stat().st_size
    rng = np.random.default_rng(i)
    photos = sample_photos()
    image = Image.open(photos[i % len(photos)]).convert("RGB")
    w, h = image.size
    cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    megapixels = rng.uniform(1.0, 3.0)
    scale = (megapixels * 1e6 / (cw * ch)) ** 0.5
    photo = image.crop((x, y, x + cw, y + ch)).resize(
        (int(cw * scale), int(ch * scale)), Image.Resampling.BICUBIC
    )
    if i % 2:
        photo = ImageOps.mirror(photo)
    # Upscaled samples compress too well; sensor-like grain gives camera-like file sizes.
    pixels = np.asarray(photo, dtype=np.int16) + rng.normal(0, 4, (photo.height, photo.width, 1))
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    photo.save(path, "JPEG", quality=int(rng.integers(80, 95)))
    return path.stat().st_size


def make_photos(folder: Path, count: int) -> float:
    """Creates what is missing; returns the mean size in MB."""
    folder.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        sizes = list(pool.map(make_photo, [(i, folder) for i in range(count)], chunksize=16))
    return sum(sizes) / len(sizes) / 1e6


def start_noida(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = (data_dir / "noida.log").open("wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "noida-db"),
            "start",
            "--only",
            "elasticsearch",
            "--host",
            "127.0.0.1",
            "--elasticsearch-port",
            "0",
            "--data-dir",
            str(data_dir / "noida"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"elasticsearch\s+(http://\S+)", (data_dir / "noida.log").read_text())
        if match:
            return process, match.group(1)
        time.sleep(0.2)
    raise SystemExit("noida-db did not start: " + (data_dir / "noida.log").read_text())


def run_index(folder: Path, env: dict[str, str], workdir: Path) -> tuple[str, float, float]:
    """Runs `deeptag index`; returns its stderr, peak RSS and peak anonymous RSS in MB.

    Anonymous memory (heap, buffers) is what would grow with the number of images; the rest of
    RSS is file pages mapped by tantivy, which the kernel can drop at any time.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "index", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "index.log").open("wb"),
        cwd=workdir,
        env=env,
    )
    peak_anon_kb = 0
    status_file = Path(f"/proc/{process.pid}/status")
    # wait4 rather than poll(): it reaps the child and returns its rusage in one call.
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        match = re.search(r"RssAnon:\s+(\d+)", status_file.read_text())
        if match:
            peak_anon_kb = max(peak_anon_kb, int(match.group(1)))
        time.sleep(0.1)
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = (workdir / "index.log").read_text()
    if process.returncode != 0:
        raise SystemExit(f"deeptag index failed:\n{stderr}")
    return stderr, usage.ru_maxrss / 1024, peak_anon_kb / 1024  # kB on Linux


def triton_rss_mb(triton: LocalTriton) -> float:
    """Resident memory of tritonserver and its python-backend stubs, now."""
    if triton.pid is None:
        return 0.0
    total_kb = 0
    pids = subprocess.run(
        ["pgrep", "-g", str(os.getpgid(triton.pid))], capture_output=True, text=True
    ).stdout.split()
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+)", status)
        total_kb += int(match.group(1)) if match else 0
    return total_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--backends", nargs="+", default=["embedded", "es"])
    parser.add_argument("--photos", type=Path, help="Keep generated photos here (reused).")
    args = parser.parse_args()
    console = Console(width=120)

    with tempfile.TemporaryDirectory(prefix="deeptag-bench-") as tmp:
        work = Path(tmp)
        photos_root = args.photos or work / "photos"
        folders = {}
        for size in args.sizes:
            folder = photos_root / f"set_{size}"
            started = time.perf_counter()
            mean_mb = make_photos(folder, size)
            console.print(
                f"{size} photos of 1-3 MP ready in {folder} (mean {mean_mb:.2f} MB each, "
                f"{time.perf_counter() - started:.0f} s)"
            )
            folders[size] = folder

        noida, es_url = start_noida(work) if "es" in args.backends else (None, "")
        ports = TritonPorts(free_port(), free_port(), free_port())
        table = Table(title="deeptag index: a folder of 1-3 MP JPEGs, batch 32, CPU Triton")
        for column in ("backend", "images", "indexed", "failed", "seconds", "images/s"):
            table.add_column(column, justify="right")
        table.add_column("peak RSS (indexer)", justify="right")
        table.add_column("of it anonymous", justify="right")
        table.add_column("Triton RSS after", justify="right")
        try:
            shim = shim_options(load_settings())  # as `deeptag index` lays it out
            with LocalTriton(
                REPO / "model_repository", work / "triton", ports, shim=shim
            ) as triton:
                for backend in args.backends:
                    for size, folder in folders.items():
                        run_dir = work / f"{backend}-{size}"
                        run_dir.mkdir()
                        env = {
                            **{k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")},
                            "DEEPTAG_TRITON_URL": triton.http_url,
                            "DEEPTAG_DATA_DIR": str(run_dir / "data"),
                            "DEEPTAG_SEARCH_BACKEND": backend,
                            "DEEPTAG_ES_URL": es_url,
                            "DEEPTAG_ES_INDEX": f"bench-{uuid.uuid4().hex[:8]}",
                        }
                        stderr, peak_mb, peak_anon_mb = run_index(folder, env, run_dir)
                        match = SUMMARY.search(stderr)
                        assert match, stderr
                        indexed, _, failed, seconds = match.groups()
                        table.add_row(
                            backend,
                            str(size),
                            indexed,
                            failed,
                            seconds,
                            f"{int(indexed) / float(seconds):.1f}",
                            f"{peak_mb:.0f} MB",
                            f"{peak_anon_mb:.0f} MB",
                            f"{triton_rss_mb(triton):.0f} MB",
                        )
                        console.print(
                            f"{backend} x {size}: {int(indexed) / float(seconds):.1f} images/s"
                        )
        finally:
            if noida is not None:
                os.killpg(noida.pid, signal.SIGTERM)
                noida.wait(timeout=10)
        console.print(table)
        console.print(f"{os.cpu_count()} CPU cores; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
