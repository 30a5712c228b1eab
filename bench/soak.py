"""Soak `/predict`: sustained concurrent load, throughput, latency, errors and memory over time.

Starts a local Triton, a local image server and `deeptag serve` (as bench/predict_latency.py
does), then for each images-per-call setting keeps ``--concurrency`` clients calling /predict
for ``--duration`` seconds. Prints calls/s, images/s, p50/p95/p99, errors by HTTP status (or
exception) and the resident memory of the server, tritonserver and its python backend stub
process(es) at the start, the middle and the end of each run, read from /proc.

Run: .venv/bin/python bench/soak.py [--duration 60] [--concurrency 32] [--per-call 1 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from predict_latency import percentile, predict_stack
from rich.console import Console
from rich.table import Table

from orchestrator.triton.client import TritonClient
from orchestrator.triton.endpoint import Endpoint

STUB_NAME = "triton_python_backend_stub"
#: RSS in MiB of the server, tritonserver and its python stub(s).
Memory = tuple[float, float, float]
PHASES = ("start", "middle", "end")


def rss_mib(pid: int) -> float:
    """Resident set size of one process in MiB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children_named(parent: int, name: str) -> list[int]:
    """Pids of the direct children of ``parent`` whose command name starts with ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # comm is in parentheses and may hold spaces; the fields after it are plain.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == parent and comm == name[:15]:
            found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class Processes:
    server: int
    triton: int

    def memory(self) -> Memory:
        """RSS in MiB of the server, tritonserver and the sum of its backend stubs."""
        stubs = sum(rss_mib(pid) for pid in children_named(self.triton, STUB_NAME))
        return rss_mib(self.server), rss_mib(self.triton), stubs


@dataclass
class Run:
    per_call: int
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    memory: dict[str, Memory] = field(default_factory=dict)
    elapsed_s: float = 0.0


async def client_loop(
    http: httpx.AsyncClient, url: str, images: list[str], run: Run, deadline: float, offset: int
) -> None:
    call = offset
    while time.monotonic() < deadline:
        data = [images[(call * run.per_call + i) % len(images)] for i in range(run.per_call)]
        call += 1
        started = time.perf_counter()
        try:
            response = await http.post(
                f"{url}/predict",
                json={"service": "imageserv", "parameters": {"output": {"best": 3}}, "data": data},
            )
        except httpx.HTTPError as e:
            run.errors[type(e).__name__] += 1
            continue
        if response.status_code != 200 or response.headers.get("X-Deeptag-Failed", "0") != "0":
            run.errors[str(response.status_code)] += 1
        else:
            run.latencies.append(time.perf_counter() - started)


async def soak(
    url: str, images: list[str], per_call: int, args: argparse.Namespace, procs: Processes
) -> Run:
    run = Run(per_call)
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=args.call_timeout, limits=limits) as http:
        # A few calls first, so the model and connections are warm before anything is counted.
        warmup = Run(per_call)
        await client_loop(http, url, images, warmup, time.monotonic() + 3, 0)
        run.memory["start"] = procs.memory()
        started = time.monotonic()
        deadline = started + args.duration
        clients = [
            asyncio.create_task(client_loop(http, url, images, run, deadline, i * 7))
            for i in range(args.concurrency)
        ]
        await asyncio.sleep(args.duration / 2)
        run.memory["middle"] = procs.memory()
        await asyncio.gather(*clients)
        run.elapsed_s = time.monotonic() - started
        run.memory["end"] = procs.memory()
    return run


async def one_full_batch(triton_url: str) -> int:
    """Send Triton one batch of the model's max batch size: the memory one batch needs."""
    client = TritonClient(Endpoint.parse(triton_url), "efficientnet_lite0")
    info = await client.connect()
    try:
        pixels = [np.zeros(info.input_shape, np.uint8)] * info.max_batch_size
        await client.classify(pixels, top_k=1)
    finally:
        await client.close()
    return info.max_batch_size


def report(
    runs: list[Run], args: argparse.Namespace, reference: tuple[int, dict[str, Memory]]
) -> None:
    console = Console(width=120)
    title = (
        f"/predict soak, concurrency {args.concurrency}, {args.duration:.0f} s per row, "
        f"local Triton on CPU ({os.cpu_count()} cores)"
    )
    table = Table(title=title)
    columns = ("images/call", "calls", "calls/s", "images/s", "p50", "p95", "p99", "errors")
    for column in columns:
        table.add_column(column, justify="right")
    for run in runs:
        ok = len(run.latencies)
        ms = [
            f"{percentile(run.latencies, q) * 1000:.0f} ms" if ok > 1 else "-" for q in (50, 95, 99)
        ]
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(run.errors.items())) or "0"
        table.add_row(
            str(run.per_call),
            str(ok + sum(run.errors.values())),
            f"{ok / run.elapsed_s:.1f}",
            f"{ok * run.per_call / run.elapsed_s:.1f}",
            *ms,
            errors,
        )
    console.print(table)
    memory = Table(title="Resident memory (MiB)")
    for column in ("images/call", "phase", "deeptag serve", "tritonserver", "python stub"):
        memory.add_column(column, justify="right")
    batch, fresh = reference
    rows = [("-", phase, fresh[phase]) for phase in fresh]
    rows += [(str(run.per_call), phase, run.memory[phase]) for run in runs for phase in PHASES]
    for per_call, phase, (server, triton, stub) in rows:
        memory.add_row(per_call, phase, f"{server:.0f}", f"{triton:.0f}", f"{stub:.0f}")
    console.print(memory)
    console.print(
        f"'idle' is right after start-up; 'one batch' after a single batch of {batch} images "
        "(the model's max batch size) sent straight to Triton: what one batch needs."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per setting")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--per-call", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--call-timeout", type=float, default=120.0)
    args = parser.parse_args()
    # Bounded: a soak is a few minutes, not an unattended overnight run.
    args.duration = min(args.duration, 300.0)
    with predict_stack() as stack:
        assert stack.triton.pid is not None
        procs = Processes(stack.server.pid, stack.triton.pid)
        fresh = {"idle": procs.memory()}
        batch = asyncio.run(one_full_batch(stack.triton.http_url))
        fresh["one batch"] = procs.memory()
        runs = [asyncio.run(soak(stack.url, stack.images, n, args, procs)) for n in args.per_call]
    report(runs, args, (batch, fresh))


if __name__ == "__main__":
    main()
