"""One local CPU Triton layout for both lone calls and bulk indexing: which one?

For each candidate layout (model instances x onnxruntime threads each, spinning on/off) this
starts one local Triton (free ports, the image and text models only) and measures:

- lone calls: p50/p95 of single-image ``classify`` calls (top 5, embedding and probabilities)
  through :class:`orchestrator.triton.client.TritonClient` over gRPC, one at a time, on an
  idle server (what one ``/predict`` of one image costs in Triton);
- bulk: ``deeptag index FOLDER`` of N photos of 1-3 MP (bench/index_throughput.py's
  generator) as a subprocess with ``DEEPTAG_TRITON_URL`` on that Triton, a fresh data dir each
  run, the embedded backend; images/s from its summary line. Some rows also set
  ``DEEPTAG_INDEX_IN_FLIGHT`` (batches the indexer keeps in Triton).

Plus, for reference, ``deeptag index`` with no ``DEEPTAG_TRITON_URL`` (the Triton it starts for
itself), and the machine's combined ceiling as bench/ceiling.py measures it (before and after;
the mean is used). The layouts are run round-robin ``--rounds`` times, so drift of the machine
spreads over all of them.

Run: .venv/bin/python bench/triton_layout.py [--images 600] [--rounds 2] [--calls 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from ceiling import decode, decode_only, deeptag_index, model_only  # noqa: E402
from index_throughput import make_photos  # noqa: E402

from orchestrator.settings import load_settings  # noqa: E402
from orchestrator.triton.client import TritonClient  # noqa: E402
from orchestrator.triton.endpoint import Endpoint  # noqa: E402
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port  # noqa: E402
from orchestrator.triton.runtime_repository import ShimOptions  # noqa: E402

MODELS = frozenset({"efficientnet_lite0", "minilm_l6"})


@dataclass(frozen=True)
class Layout:
    name: str
    shim: ShimOptions
    #: DEEPTAG_INDEX_IN_FLIGHT values to run the bulk job with (0: the indexer's default).
    in_flight: tuple[int, ...] = (0,)


LAYOUTS = (
    Layout(
        "1x0 (one instance on every core)", ShimOptions(intra_op_threads=0, instances=1), (0, 4)
    ),
    Layout("1x2", ShimOptions(intra_op_threads=2, instances=1)),
    Layout("2x1 (instance per core)", ShimOptions(intra_op_threads=1, instances=2), (0, 4)),
    # An instance per core, and a batch that runs alone gets both cores (today's default).
    Layout("2x1+2", ShimOptions(intra_op_threads=1, instances=2, alone_threads=2)),
    Layout("2x1 spinning", ShimOptions(intra_op_threads=1, instances=2, spinning=True)),
    Layout("4x1", ShimOptions(intra_op_threads=1, instances=4)),
    # Two instances that each may use every core: a lone call gets both, two batches at
    # once oversubscribe them (4 threads on 2 cores).
    Layout("2x2", ShimOptions(intra_op_threads=2, instances=2)),
)
OWN = "index's own Triton (no URL)"


@dataclass
class Row:
    lone_ms: list[float] = field(default_factory=list)
    bulk: list[float] = field(default_factory=list)


def run_index(folder: Path, work: Path, url: str | None, in_flight: int = 0) -> float:
    return deeptag_index(folder, work, url, in_flight=in_flight)


async def lone_calls(
    address: str, model: str, image: npt.NDArray[np.uint8], calls: int
) -> list[float]:
    """Milliseconds of ``calls`` single-image calls, one at a time, after a warm-up; then a
    few batches of 32 so the bulk run that follows starts on a warm model."""
    client = TritonClient(Endpoint("grpc", address), model, shared_memory=True)
    await client.connect()
    try:
        for _ in range(5):
            await client.classify([image], 5, with_embedding=True, with_probs=True)
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            await client.classify([image], 5, with_embedding=True, with_probs=True)
            times.append((time.perf_counter() - started) * 1000)
        for _ in range(3):
            await client.classify([image] * 32, 5, with_embedding=True, with_probs=True)
        return times
    finally:
        await client.close()


def ceiling(paths: list[Path]) -> float:
    model = max(model_only(paths), model_only(paths, os.cpu_count() or 1))
    return 1 / (1 / model + 1 / decode_only(paths))


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2, help="round-robin passes")
    parser.add_argument("--calls", type=int, default=30, help="lone calls per layout and round")
    parser.add_argument("--photos", type=Path, help="keep the generated photos here (reused)")
    parser.add_argument(
        "--layouts",
        nargs="+",
        help="only these layouts, by their first word (1x0 1x2 2x1 2x1+2 4x1 2x2; 'own' for "
        "the Triton `deeptag index` starts itself); default all",
    )
    args = parser.parse_args()
    console = Console(width=160)
    model = load_settings().model
    rows: dict[str, Row] = {}
    ceilings: list[float] = []
    with tempfile.TemporaryDirectory(prefix="deeptag-layout-") as tmp:
        work = Path(tmp)
        folder = (args.photos or work / "photos") / f"set_{args.images}"
        started = time.perf_counter()
        size_mb = make_photos(folder, args.images)
        paths = sorted(folder.glob("*.jpg"))
        console.print(
            f"{len(paths)} photos ({size_mb:.1f} MB mean) in {time.perf_counter() - started:.0f} s"
        )
        image = decode(paths[0])
        ceilings.append(ceiling(paths))
        console.print(f"ceiling: {ceilings[-1]:.1f} images/s")
        chosen = [
            layout
            for layout in LAYOUTS
            if args.layouts is None or layout.name.split()[0] in args.layouts
        ]
        own = args.layouts is None or "own" in args.layouts
        for round_ in range(args.rounds):
            for layout in chosen:
                ports = TritonPorts(free_port(), free_port(), free_port())
                with LocalTriton(
                    REPO / "model_repository",
                    work / "triton",
                    ports,
                    shim=layout.shim,
                    only=MODELS,
                ) as triton:
                    lone = asyncio.run(lone_calls(triton.grpc_url, model, image, args.calls))
                    rows.setdefault(layout.name, Row()).lone_ms.extend(lone)
                    url = f"grpc://{triton.grpc_url}"
                    for in_flight in layout.in_flight:
                        name = layout.name + (f", in flight {in_flight}" if in_flight else "")
                        speed = run_index(folder, work, url, in_flight)
                        rows.setdefault(name, Row()).bulk.append(speed)
                        console.print(
                            f"round {round_ + 1}: {name}: lone p50 {pct(lone, 50):.1f} ms, "
                            f"index {speed:.1f} images/s"
                        )
            if own:
                speed = run_index(folder, work, None)
                rows.setdefault(OWN, Row()).bulk.append(speed)
                console.print(f"round {round_ + 1}: {OWN}: index {speed:.1f} images/s")
        ceilings.append(ceiling(paths))
        console.print(f"ceiling: {ceilings[-1]:.1f} images/s")

    limit = statistics.mean(ceilings)
    best = max(statistics.mean(row.bulk) for row in rows.values())
    table = Table(
        title=f"local CPU Triton layouts: {len(paths)} JPEGs of 1-3 MP, {os.cpu_count()} cores, "
        f"ceiling {' / '.join(f'{c:.1f}' for c in ceilings)} images/s"
    )
    for column in ("layout (instances x threads)", "lone p50 ms", "lone p95 ms"):
        table.add_column(column, justify="left" if "layout" in column else "right")
    for column in ("index images/s (runs)", "mean", "÷ best", "÷ ceiling"):
        table.add_column(column, justify="right")
    for name, row in rows.items():
        mean = statistics.mean(row.bulk)
        table.add_row(
            name,
            f"{pct(row.lone_ms, 50):.1f}" if row.lone_ms else "-",
            f"{pct(row.lone_ms, 95):.1f}" if row.lone_ms else "-",
            " / ".join(f"{s:.1f}" for s in row.bulk),
            f"{mean:.1f}",
            f"{mean / best:.2f}",
            f"{mean / limit:.2f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
