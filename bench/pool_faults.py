"""`deeptag index` with one and two local Tritons, and through the three outages of issue 14.

Makes N distinct 1-3 MP JPEGs (the same generator as bench/index_throughput.py), then runs
`deeptag index FOLDER` as a subprocess, each time into a fresh embedded index (noida-db for the
Elasticsearch scenario):

- one Triton; two Tritons (`DEEPTAG_TRITON_URL=a,b`), no fault;
- Triton killed with SIGKILL after 25 % of the images and restarted 5 s later on its ports;
- noida-db stopped (SIGTERM) after 25 % and restarted 5 s later;
- two Tritons, one killed for good after 25 %.

It prints images/s, the run's wall time, what the fault cost against the fault-free run, how
long the run waited ("resumed after"), and indexed/failed counts.

Run: .venv/bin/python bench/pool_faults.py [--images 400]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from index_throughput import make_photos  # noqa: E402

from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port  # noqa: E402
from tests.outage_support import (  # noqa: E402
    IndexRun,
    Noida,
    inferences,
    kill_9,
    run_index,
    wait_until,
)

MODELS = REPO / "model_repository"
RESUMED = re.compile(r"resumed after (\d+) s")


def triton(work: Path, name: str, ports: TritonPorts | None = None) -> LocalTriton:
    ports = ports or TritonPorts(free_port(), free_port(), free_port())
    return LocalTriton(MODELS, work / name, ports)


def scenario(
    folder: Path, work: Path, env: dict[str, str], fault: Callable[[], None] = lambda: None
) -> IndexRun:
    work.mkdir(parents=True, exist_ok=True)
    base = {"DEEPTAG_DATA_DIR": str(work / "data"), "DEEPTAG_SEARCH_BACKEND": "embedded"}
    return run_index(folder, {**base, **env}, work, fault)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    args = parser.parse_args()
    n, quarter = args.images, args.images // 4
    console = Console(width=150)
    rows: list[tuple[str, IndexRun]] = []
    with tempfile.TemporaryDirectory(prefix="deeptag-faults-") as tmp:
        work = Path(tmp)
        folder = work / "photos"
        folder.mkdir()
        console.print(f"making {n} photos of 1-3 MP ...")
        make_photos(folder, n)
        a, b = triton(work, "a"), triton(work, "b")
        a.start()
        b.start()
        try:
            rows.append(
                ("1 Triton", scenario(folder, work / "one", {"DEEPTAG_TRITON_URL": a.http_url}))
            )
            both = f"{a.http_url},{b.http_url}"
            rows.append(("2 Tritons", scenario(folder, work / "two", {"DEEPTAG_TRITON_URL": both})))

            # Only the image model counts: a kill after a quarter of the images.
            start_a = inferences(a)

            def kill_and_restart() -> None:
                wait_until(lambda: inferences(a) - start_a >= quarter, 600, "a quarter done")
                kill_9(a)
                time.sleep(5)
                a.start()

            rows.append(
                (
                    "Triton kill -9, back 5 s later",
                    scenario(
                        folder, work / "kill", {"DEEPTAG_TRITON_URL": a.http_url}, kill_and_restart
                    ),
                )
            )

            noida = Noida(free_port(), work / "noida")
            noida.data_dir.mkdir()
            noida.start()

            def stop_and_restart() -> None:
                wait_until(lambda: noida.count("bench") >= quarter, 600, "a quarter stored")
                noida.stop()
                time.sleep(5)
                noida.start()

            es_env = {
                "DEEPTAG_TRITON_URL": a.http_url,
                "DEEPTAG_SEARCH_BACKEND": "es",
                "DEEPTAG_ES_URL": noida.url,
                "DEEPTAG_ES_INDEX": "bench",
            }
            try:
                rows.append(
                    (
                        "ES stopped, back 5 s later",
                        scenario(folder, work / "es", es_env, stop_and_restart),
                    )
                )
            finally:
                noida.stop()

            start_b = inferences(b)

            def kill_one() -> None:
                wait_until(lambda: inferences(b) - start_b >= quarter // 2, 600, "b busy")
                kill_9(b)

            rows.append(
                (
                    "2 Tritons, one killed for good",
                    scenario(folder, work / "lose", {"DEEPTAG_TRITON_URL": both}, kill_one),
                )
            )
        finally:
            a.stop()
            b.stop()

    baseline = rows[0][1].elapsed_s
    table = Table(title=f"deeptag index, {n} photos of 1-3 MP, embedded index unless noted")
    for column in (
        "run",
        "images/s",
        "wall s",
        "vs 1 Triton",
        "waited s",
        "indexed",
        "failed",
        "exit",
    ):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name, run in rows:
        waited = RESUMED.search(run.stderr)
        table.add_row(
            name,
            f"{n / run.elapsed_s:.1f}",
            f"{run.elapsed_s:.1f}",
            f"{run.elapsed_s - baseline:+.1f} s",
            waited.group(1) if waited else "-",
            str(run.indexed),
            str(run.failed),
            str(run.returncode),
        )
    console.print(table)
    console.print(
        "images/s include process start, model connect and the final commit; 'waited' is what "
        "the run itself reported (`resumed after N s`)."
    )


if __name__ == "__main__":
    main()
