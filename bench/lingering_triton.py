"""The lingering local Triton's targets, before (each command starts its own) and after.

1. CLI wall time, as a user runs the commands (subprocesses, a fresh data directory holding
   the sample photos, no Triton configured): ``deeptag search kitten`` and
   ``deeptag predict one.jpg``, first and second call. Before: ``DEEPTAG_TRITON_LINGER=false``
   (every call starts and stops a Triton). After: lingering on; the first call starts it, the
   second uses it; ``deeptag triton stop`` between the two commands, so each first call
   starts one.
2. Bulk: ``deeptag index`` of N photos of 1-3 MP against a running ``deeptag triton start
   --detach`` (the real command, default layout), against the Triton the command starts for
   itself, and both divided by this machine's ceiling (model only x decode only, one run,
   bench/ceiling.py) and by a competent single-process batch-32 script (bench/ceiling.py).
3. A lone ``/predict`` of one image, p50 and p95 over ``--calls`` calls, through
   ``deeptag serve`` on a local Triton laid out as before (one instance on every core,
   ``DEEPTAG_TRITON_CPU_INSTANCES=1``) and as now (the default: one instance per core).

Run: .venv/bin/python bench/lingering_triton.py [--images 1200] [--rounds 3] [--calls 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from ceiling import decode_only, deeptag_index, model_only, script  # noqa: E402
from index_throughput import make_photos  # noqa: E402
from predict_latency import measure, percentile, predict_stack  # noqa: E402

from orchestrator.samples import sample_photos  # noqa: E402
from orchestrator.triton.launcher import free_port  # noqa: E402


def deeptag(env: dict[str, str], *args: str) -> float:
    """Wall seconds of one ``deeptag`` command, as a shell would time it."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"deeptag {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def cli_environment(data_dir: Path, linger: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")}
    env.update(
        DEEPTAG_DATA_DIR=str(data_dir),
        DEEPTAG_SEARCH_BACKEND="embedded",
        DEEPTAG_TRITON_LINGER=str(linger).lower(),
        # Nothing listens there: a `deeptag triton start` of this machine is not used.
        DEEPTAG_TRITON_HTTP_PORT=str(free_port()),
        COLUMNS="200",
    )
    return env


def cli_rows(work: Path, rounds: int) -> dict[str, list[float]]:
    photos = work / "samples"
    photos.mkdir()
    for photo in sample_photos():
        shutil.copy(photo, photos)
    one = str(photos / "chelsea.png")
    data = work / "cli-data"
    deeptag(cli_environment(data, linger=False), "index", str(photos))
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for linger in (False, True):
            env = cli_environment(data, linger)
            when = "after" if linger else "before"
            commands = (("search kitten", ("search", "kitten")), ("predict", ("predict", one)))
            for name, args in commands:
                for call in ("first", "second"):
                    times.setdefault(f"{name}|{call}|{when}", []).append(deeptag(env, *args))
                if linger:
                    deeptag(env, "triton", "stop")
    return times


def bulk_rows(work: Path, count: int) -> dict[str, float]:
    folder = work / "photos"
    make_photos(folder, count)
    paths = sorted(folder.glob("*.jpg"))
    data = work / "bulk-data"
    env = cli_environment(data, linger=False)
    ports = [free_port(), free_port(), free_port()]
    triton = [sys.executable, "-m", "orchestrator", "triton"]
    http, grpc, metrics = (str(port) for port in ports)
    where = ["--http-port", http, "--grpc-port", grpc, "--metrics-port", metrics]
    subprocess.run(
        [*triton, "start", "--detach", *where],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    try:
        url = f"grpc://127.0.0.1:{ports[1]}"
        deeptag_index(folder, work, url)  # warm-up: the model's first batches
        running = deeptag_index(folder, work, url)
    finally:
        subprocess.run(
            [*triton, "stop", "--http-port", str(ports[0])],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )
    own = deeptag_index(folder, work, None)
    model = max(model_only(paths), model_only(paths, os.cpu_count() or 1))
    ceiling = 1 / (1 / model + 1 / decode_only(paths))
    return {"running": running, "own": own, "ceiling": ceiling, "script": script(paths)}


def predict_rows(calls: int, rounds: int) -> dict[str, list[float]]:
    """Seconds of lone calls of 1 and of 16 images, per layout (``before|1``...)."""
    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, instances in (("before", "1"), ("after", "0")):
            os.environ["DEEPTAG_TRITON_CPU_INSTANCES"] = instances
            with predict_stack() as stack:
                for per_call, count in ((1, calls), (16, max(10, calls // 4))):
                    results.setdefault(f"{name}|{per_call}", []).extend(
                        measure(stack.url, stack.images, per_call, count)
                    )
    os.environ.pop("DEEPTAG_TRITON_CPU_INSTANCES", None)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument(
        "--parts", default="cli,bulk,predict", help="which parts to run (comma-separated)"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    console = Console(width=130)
    median: Callable[[list[float]], float] = statistics.median
    with tempfile.TemporaryDirectory(prefix="deeptag-linger-") as tmp:
        work = Path(tmp)
        console.print("CLI calls ...")
        cli = cli_rows(work, args.rounds) if "cli" in parts else {}
        console.print(f"bulk: {args.images} photos ...")
        bulk = bulk_rows(work, args.images) if "bulk" in parts else {}
        console.print("lone /predict ...")
        lone = predict_rows(args.calls, args.rounds) if "predict" in parts else {}

    table = Table(title=f"lingering local Triton, {os.cpu_count()} cores (medians)")
    for column in ("measure", "before", "after", "target"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name in ("search kitten", "predict") if cli else ():
        for call, target in (("second", "≤ 1.0 s"), ("first", "≤ 4 s")):
            table.add_row(
                f"`deeptag {name}`, {call} call",
                f"{median(cli[f'{name}|{call}|before']):.2f} s",
                f"{median(cli[f'{name}|{call}|after']):.2f} s",
                target,
            )
    if bulk:
        bulk_table(table, bulk, args.images)
    for per_call in (1, 16) if lone else ():
        for q in (50, 95):
            table.add_row(
                f"lone /predict of {per_call} image{'s' if per_call > 1 else ''}, p{q}",
                f"{percentile(lone[f'before|{per_call}'], q) * 1000:.1f} ms",
                f"{percentile(lone[f'after|{per_call}'], q) * 1000:.1f} ms",
                "no worse" if (q, per_call) == (50, 1) else "",
            )
    console.print(table)


def bulk_table(table: Table, bulk: dict[str, float], images: int) -> None:
    table.add_row(
        f"`deeptag index` {images} photos vs `triton start`, ÷ ceiling ({bulk['ceiling']:.1f}/s)",
        "",
        f"{bulk['running'] / bulk['ceiling']:.2f} ({bulk['running']:.1f}/s)",
        "≥ 0.85",
    )
    table.add_row(
        f"the same ÷ batch-32 script ({bulk['script']:.1f}/s)",
        "",
        f"{bulk['running'] / bulk['script']:.2f}",
        "≥ 1.0",
    )
    table.add_row(
        "`deeptag index` with its own Triton, ÷ ceiling",
        "",
        f"{bulk['own'] / bulk['ceiling']:.2f} ({bulk['own']:.1f}/s)",
        "= running",
    )


if __name__ == "__main__":
    main()
