"""`deeptag watch` taking a burst of files copied in, against `deeptag index` of the same files.

Makes N distinct JPEGs of about 0.3 MP (tagging cost does not depend on the file's size, and
10,000 camera-sized files would only fill the disk), starts one local Triton, then:

- runs `deeptag index FOLDER` on a fresh embedded index, as the baseline;
- starts `deeptag watch WATCHED` on an empty folder and a fresh index, copies the N files in
  (in subfolders of 500, as a camera import would), and waits until the watcher's log has
  reported all N as new.

Both are subprocesses run as a user would. For each: seconds (for the watcher, from the first
file copied to the last reported), images/s, peak RSS (`ru_maxrss`) and the peak of its
anonymous part (sampled from /proc/PID/status: heap and buffers, what would grow with the
burst; the rest is index files memory-mapped by tantivy, which the kernel drops at will).

Run: .venv/bin/python bench/watch_burst.py [--counts 2000 10000] [--photos DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from orchestrator.runtime import shim_options
from orchestrator.samples import sample_photos
from orchestrator.settings import load_settings
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port

REPO = Path(__file__).resolve().parents[1]
NEW = re.compile(r"(\d+) new")
SUMMARY = re.compile(r"(\d+) indexed,\s+(\d+) skipped")
PER_FOLDER = 500


def make_photo(args: tuple[int, Path]) -> None:
    i, folder = args
    path = folder / f"{i // PER_FOLDER:03d}" / f"photo_{i:05d}.jpg"
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(i)
    photos = sample_photos()
    image = Image.open(photos[i % len(photos)]).convert("RGB")
    w, h = image.size
    cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    photo = image.crop((x, y, x + cw, y + ch)).resize((640, 480), Image.Resampling.BILINEAR)
    photo.save(path, "JPEG", quality=int(rng.integers(80, 95)))


@dataclass(frozen=True)
class Run:
    seconds: float
    images: int
    peak_mb: float
    anon_mb: float


class Sampler:
    """Samples a process's anonymous resident memory until it exits."""

    def __init__(self, pid: int) -> None:
        self.status = Path(f"/proc/{pid}/status")
        self.peak_anon_kb = 0

    def sample(self) -> None:
        try:
            match = re.search(r"RssAnon:\s+(\d+)", self.status.read_text())
        except OSError:
            return
        if match:
            self.peak_anon_kb = max(self.peak_anon_kb, int(match.group(1)))


def reap(process: subprocess.Popen[bytes], sampler: Sampler) -> float:
    """Waits for ``process`` while sampling it; returns its peak RSS in MB."""
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_maxrss / 1024
        sampler.sample()
        time.sleep(0.1)


def start(command: str, folder: Path, env: dict[str, str], work: Path) -> subprocess.Popen[bytes]:
    """``deeptag COMMAND FOLDER`` as a user runs it, its stderr in ``work/COMMAND.log``."""
    with (work / f"{command}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator", command, str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=work,
            env=env,
        )


def run_index(folder: Path, env: dict[str, str], work: Path) -> Run:
    log = work / "index.log"
    process = start("index", folder, env, work)
    sampler = Sampler(process.pid)
    started = time.perf_counter()
    peak = reap(process, sampler)
    seconds = time.perf_counter() - started
    match = SUMMARY.search(log.read_text())
    if process.returncode != 0 or match is None:
        raise SystemExit(f"deeptag index failed:\n{log.read_text()}")
    return Run(seconds, int(match.group(1)), peak, sampler.peak_anon_kb / 1024)


def copy_in(source: Path, target: Path) -> None:
    for sub in sorted(source.iterdir()):
        shutil.copytree(sub, target / sub.name)


def run_watch(source: Path, count: int, env: dict[str, str], work: Path) -> Run:
    watched = work / "watched"
    watched.mkdir()
    log = work / "watch.log"
    process = start("watch", watched, env, work)
    sampler = Sampler(process.pid)
    while "watching" not in log.read_text():
        time.sleep(0.1)
    time.sleep(2)  # the start-up sync of the empty folder
    started = time.perf_counter()
    copier = threading.Thread(target=copy_in, args=(source, watched))
    copier.start()
    seen, last = 0, started
    deadline = started + 60 + count  # far beyond any sane rate: a stuck watcher ends the run
    while seen < count and time.perf_counter() < deadline and process.poll() is None:
        sampler.sample()
        total = sum(int(n) for n in NEW.findall(log.read_text()))
        if total > seen:
            seen, last = total, time.perf_counter()
        time.sleep(0.2)
    copier.join()
    process.send_signal(signal.SIGTERM)
    peak = reap(process, sampler)
    if seen < count:
        print(log.read_text()[-3000:], file=sys.stderr)
    return Run(last - started, seen, peak, sampler.peak_anon_kb / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--photos", type=Path, help="Keep generated photos here (reused).")
    args = parser.parse_args()
    console = Console(width=120)
    table = Table(title="A burst of files: deeptag watch against deeptag index (embedded, CPU)")
    for column in ("files", "command", "found", "seconds", "images/s", "peak RSS", "of it anon"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory(prefix="deeptag-burst-") as tmp:
        work = Path(tmp)
        photos_root = args.photos or work / "photos"
        shim = shim_options(load_settings())
        ports = TritonPorts(free_port(), free_port(), free_port())
        with LocalTriton(REPO / "model_repository", work / "triton", ports, shim=shim) as triton:
            for count in args.counts:
                source = photos_root / f"burst_{count}"
                with ProcessPoolExecutor() as pool:
                    list(pool.map(make_photo, [(i, source) for i in range(count)], chunksize=32))
                for command in ("index", "watch"):
                    run_dir = work / f"{command}-{count}"
                    run_dir.mkdir()
                    env = {
                        **{k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")},
                        "DEEPTAG_TRITON_URL": triton.http_url,
                        "DEEPTAG_DATA_DIR": str(run_dir / "data"),
                        "DEEPTAG_SEARCH_BACKEND": "embedded",
                        "COLUMNS": "200",
                    }
                    run = (
                        run_index(source, env, run_dir)
                        if command == "index"
                        else run_watch(source, count, env, run_dir)
                    )
                    table.add_row(
                        str(count),
                        f"deeptag {command}",
                        str(run.images),
                        f"{run.seconds:.1f}",
                        f"{run.images / run.seconds:.1f}",
                        f"{run.peak_mb:.0f} MB",
                        f"{run.anon_mb:.0f} MB",
                    )
                    console.print(f"{command} x {count}: {run.images / run.seconds:.1f} images/s")
    console.print(table)
    console.print(f"{os.cpu_count()} CPU cores; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
