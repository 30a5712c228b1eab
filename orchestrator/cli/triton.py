"""``deeptag triton start|stop|status``: the bundled tritonserver, on CPU, on this machine."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from orchestrator.cli.common import console, fail, user_errors
from orchestrator.settings import load_settings
from orchestrator.triton.launcher import (
    LocalTriton,
    TritonPorts,
    find_detached,
    is_ready,
    start_detached,
    stop_detached,
)

triton_app = typer.Typer(
    help="Run the bundled Triton Inference Server locally (CPU).", no_args_is_help=True
)

HttpPort = Annotated[
    int | None, typer.Option("--http-port", help="Default 8000 (DEEPTAG_TRITON_HTTP_PORT).")
]


@triton_app.command()
@user_errors
def start(
    http_port: HttpPort = None,
    grpc_port: Annotated[int | None, typer.Option("--grpc-port", help="Default 8001.")] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Default 8002.")
    ] = None,
    model_repository: Annotated[
        Path | None, typer.Option(help="Default ./model_repository (DEEPTAG_MODEL_REPOSITORY).")
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Run in the background.")] = False,
) -> None:
    """Start Triton and serve until Ctrl-C or SIGTERM (or in the background with --detach)."""
    settings = load_settings(
        triton_http_port=http_port,
        triton_grpc_port=grpc_port,
        triton_metrics_port=metrics_port,
        model_repository=model_repository,
    )
    ports = TritonPorts(
        settings.triton_http_port, settings.triton_grpc_port, settings.triton_metrics_port
    )
    triton = LocalTriton(
        settings.model_repository,
        settings.state_dir / "triton",
        ports,
        start_timeout_s=settings.triton_start_timeout_s,
    )
    started = time.perf_counter()
    if detach:
        record = start_detached(triton, settings.state_dir)
        console.print(
            f"Triton ready in {time.perf_counter() - started:.1f}s (pid {record.pid}): "
            f"HTTP {ports.http}, gRPC {ports.grpc}, metrics {ports.metrics}; log {record.log_path}"
        )
        return

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        triton.start()
        console.print(
            f"Triton ready in {time.perf_counter() - started:.1f}s: HTTP {triton.http_url}, "
            f"gRPC {triton.grpc_url}, metrics {triton.metrics_url}. Ctrl-C stops it."
        )
        code = triton.wait()
        raise fail(f"tritonserver exited with code {code}:\n{triton.log_tail()}")
    except KeyboardInterrupt:
        console.print("stopping Triton")
    finally:
        triton.stop()
        signal.signal(signal.SIGTERM, previous)


@triton_app.command()
@user_errors
def stop(http_port: HttpPort = None) -> None:
    """Stop a Triton started with --detach, found by its HTTP port."""
    settings = load_settings(triton_http_port=http_port)
    record = stop_detached(settings.state_dir, settings.triton_http_port)
    if record is None:
        raise fail(f"no detached Triton found on HTTP port {settings.triton_http_port}")
    console.print(f"stopped Triton (pid {record.pid}) on HTTP port {settings.triton_http_port}")


@triton_app.command()
@user_errors
def status(http_port: HttpPort = None) -> None:
    """Say whether a Triton answers ready on the HTTP port."""
    settings = load_settings(triton_http_port=http_port)
    port = settings.triton_http_port
    record = find_detached(settings.state_dir, port)
    ready = is_ready(port)
    owner = f" (pid {record.pid}, started by deeptag)" if record else ""
    if ready:
        console.print(f"Triton on HTTP port {port} is ready{owner}")
        return
    if record:
        raise fail(f"Triton on HTTP port {port}{owner} is running but not ready")
    raise fail(f"no Triton is ready on HTTP port {port}")
