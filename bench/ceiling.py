"""Bulk throughput against the machine's ceiling and a hand-written script, in one run.

Over N JPEGs of 1-3 MP (about 2 MP on average, bench/index_throughput.py's generator):

1. model only: onnxruntime in-process on preprocessed tensors, batch 32, all cores: one
   session on a thread per core (onnxruntime's default), and one single-threaded session per
   core side by side (how deeptag's local Triton runs it); the faster is the model's ceiling;
2. decode + resize only: Pillow with ``draft()``, one process per core;
3. the combined ceiling ``1 / (1/model + 1/decode)``: both stages sharing the same cores;
4. a competent single-process script: decode (with ``draft()``), then infer in batches of 32;
5. ``deeptag index`` into a fresh embedded index, against a warm local Triton (its own figure,
   which starts at the first image read and ends after the last commit).

With ``--triton-url URL`` row 5 uses that Triton (any machine, a GPU one included) and
``--decode-workers`` sets deeptag's decode processes, so the same table can be taken elsewhere.

Run: .venv/bin/python bench/ceiling.py [--images 300] [--repeat 2]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from PIL import Image
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from index_throughput import make_photos  # noqa: E402

from orchestrator.runtime import shim_options  # noqa: E402
from orchestrator.settings import load_settings  # noqa: E402
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port  # noqa: E402

ONNX = REPO / "model_repository" / "efficientnet_lite0" / "1" / "model.onnx"
BATCH = 32
SUMMARY = re.compile(r"(\d+) indexed, .* in ([\d.]+) s \(([\d.]+) images/s\)")


def decode(path: Path) -> npt.NDArray[np.uint8]:
    """What a competent user writes: DCT-scaled decode, short side 256, centre crop 224."""
    with Image.open(path) as image:
        w, h = image.size
        scale = 256 / min(w, h)
        image.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
        rgb = image.convert("RGB")
    w, h = rgb.size
    scale = 256 / min(w, h)
    rgb = rgb.resize(
        (max(224, round(w * scale)), max(224, round(h * scale))), Image.Resampling.BILINEAR
    )
    left, top = (rgb.width - 224) // 2, (rgb.height - 224) // 2
    return np.asarray(rgb.crop((left, top, left + 224, top + 224)), dtype=np.uint8)


def session(threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(ONNX), options, providers=["CPUExecutionProvider"])


def model_only(paths: list[Path], sessions: int = 1) -> float:
    """Batches of 32 on ``sessions`` sessions at once: one on every core's thread, or one
    single-threaded session for each core."""
    models = [session(1 if sessions > 1 else 0) for _ in range(sessions)]
    pixels = np.stack([decode(p) for p in paths[:BATCH]])
    sizes = [min(BATCH, len(paths) - start) for start in range(0, len(paths), BATCH)]

    def run(model: ort.InferenceSession, share: list[int]) -> None:
        for size in share:
            model.run(None, {"image": pixels[:size]})

    for model in models:
        model.run(None, {"image": pixels})  # warm-up
    started = time.perf_counter()
    # onnxruntime lets go of the GIL while it runs: threads are enough.
    with ThreadPoolExecutor(sessions) as pool:
        list(pool.map(run, models, [sizes[i::sessions] for i in range(sessions)]))
    return len(paths) / (time.perf_counter() - started)


def decode_only(paths: list[Path]) -> float:
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(decode, paths[:8]))  # workers started
        started = time.perf_counter()
        list(pool.map(decode, paths, chunksize=8))
        return len(paths) / (time.perf_counter() - started)


def script(paths: list[Path]) -> float:
    model = session()
    model.run(None, {"image": np.zeros((1, 224, 224, 3), np.uint8)})
    started = time.perf_counter()
    for start in range(0, len(paths), BATCH):
        batch = np.stack([decode(p) for p in paths[start : start + BATCH]])
        model.run(None, {"image": batch})
    return len(paths) / (time.perf_counter() - started)


def deeptag_index(
    folder: Path,
    work: Path,
    triton_url: str | None,
    workers: int | None = None,
    in_flight: int = 0,
) -> float:
    """images/s of `deeptag index FOLDER` into a fresh embedded index; ``triton_url`` None:
    the command starts its own Triton."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")}
    env["DEEPTAG_TRITON_LINGER"] = "false"  # each run starts and stops its own
    env.update(
        DEEPTAG_DATA_DIR=str(work / f"data-{time.monotonic_ns()}"),
        DEEPTAG_SEARCH_BACKEND="embedded",
        COLUMNS="400",
    )
    if triton_url is not None:
        env["DEEPTAG_TRITON_URL"] = triton_url
    if workers is not None:
        env["DEEPTAG_DECODE_WORKERS"] = str(workers)
    if in_flight:
        env["DEEPTAG_INDEX_IN_FLIGHT"] = str(in_flight)
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "index", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=False,
    )
    match = SUMMARY.search(done.stderr)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"deeptag index failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return float(match.group(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=2, help="runs of rows 3-5")
    parser.add_argument("--triton-url", help="an existing Triton for row 5")
    parser.add_argument("--decode-workers", type=int, help="DEEPTAG_DECODE_WORKERS for row 5")
    args = parser.parse_args()
    console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="deeptag-ceiling-") as tmp:
        work = Path(tmp)
        folder = work / "photos"
        console.print(f"making {args.images} photos of 1-3 MP ...")
        size_mb = make_photos(folder, args.images)
        paths = sorted(folder.glob("*.jpg"))
        local = None
        url = args.triton_url
        if url is None:
            local = LocalTriton(
                REPO / "model_repository",
                work / "triton",
                TritonPorts(free_port(), free_port(), free_port()),
                # Laid out as the Triton `deeptag index` starts for itself.
                shim=shim_options(load_settings()),
            )
            local.start()
            # Spoken to as deeptag speaks to a local Triton by default: over gRPC.
            url = f"grpc://127.0.0.1:{local.ports.grpc}"
            # Warm: the first run pays for the model's first batches.
            deeptag_index(folder, work, url, args.decode_workers)
        try:
            runs: list[dict[str, float]] = []
            for _ in range(args.repeat):
                model, per_core = model_only(paths), model_only(paths, os.cpu_count() or 1)
                decoded = decode_only(paths)
                runs.append(
                    {
                        "model": model,
                        "per_core": per_core,
                        "decode": decoded,
                        "ceiling": 1 / (1 / max(model, per_core) + 1 / decoded),
                        "script": script(paths),
                        "deeptag": deeptag_index(folder, work, url, args.decode_workers),
                    }
                )
        finally:
            if local is not None:
                local.stop()
    table = Table(
        title=f"images/s over {args.images} JPEGs ({size_mb:.1f} MB mean), {os.cpu_count()} cores"
    )
    table.add_column("what")
    for i in range(len(runs)):
        table.add_column(f"run {i + 1}", justify="right")
    names = {
        "model": "model only: onnxruntime in-process, batch 32, all cores",
        "per_core": "model only: a single-threaded session per core",
        "decode": "decode + resize only: Pillow draft(), one process per core",
        "ceiling": "combined ceiling 1 / (1/faster model + 1/decode)",
        "script": "a competent script: decode, then infer in batches of 32",
        "deeptag": "deeptag index, embedded index, warm Triton",
    }
    for key, name in names.items():
        table.add_row(name, *(f"{run[key]:.1f}" for run in runs))
    table.add_row("deeptag / ceiling", *(f"{run['deeptag'] / run['ceiling']:.2f}" for run in runs))
    table.add_row("deeptag / script", *(f"{run['deeptag'] / run['script']:.2f}" for run in runs))
    console.print(table)


if __name__ == "__main__":
    main()
