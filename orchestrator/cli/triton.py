"""``deeptag triton start|stop|status``: the bundled tritonserver, on CPU, on this machine.

``--instances N`` runs N servers side by side; instance i listens on each base port + 10*i,
so ``stop`` and ``status`` find the same N servers again from the same base HTTP port.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Annotated, TypeVar

import typer

from orchestrator.cli.common import console, fail, user_errors
from orchestrator.errors import ConfigError, DeeptagError
from orchestrator.runtime import served_models, shim_options, usable_cores
from orchestrator.settings import load_settings
from orchestrator.triton.detached import find_detached, start_detached, stop_detached
from orchestrator.triton.launcher import LocalTriton, TritonPorts, check_ports_free, is_ready
from orchestrator.triton.lingering import (
    LingerPaths,
    LingerState,
    current,
    describe_idle,
    loaded_models,
    stop_current,
)

#: Instance i of ``--instances N`` listens on each base port + 10*i.
INSTANCE_PORT_STRIDE = 10
MAX_INSTANCES = 16
#: How often the foreground command looks whether one of its servers has exited.
POLL_INTERVAL_S = 0.2

triton_app = typer.Typer(
    help="Run the bundled Triton Inference Server locally (CPU).", no_args_is_help=True
)

HttpPort = Annotated[
    int | None, typer.Option("--http-port", help="Default 8000 (DEEPTAG_TRITON_HTTP_PORT).")
]
Instances = Annotated[
    int,
    typer.Option(
        "--instances",
        min=1,
        max=MAX_INSTANCES,
        help="How many servers. Instance i (from 0) uses each port + 10*i: with the default "
        "ports the first is on 8000/8001/8002, the second on 8010/8011/8012, and so on.",
    ),
]

T = TypeVar("T")
R = TypeVar("R")


# --- The port layout of several instances (pure) ---------------------------------------------


def spread_ports(start: int, count: int, option: str = "--http-port") -> list[int]:
    """One kind of port of ``count`` local instances: ``start`` (from ``option``), + 10 each."""
    if not 1 <= count <= MAX_INSTANCES:
        raise ConfigError(f"--instances {count}: choose 1 to {MAX_INSTANCES}")
    ports = [start + INSTANCE_PORT_STRIDE * i for i in range(count)]
    if ports[0] < 1 or ports[-1] > 65535:
        raise ConfigError(
            f"{option} {start} with --instances {count} needs ports {ports[0]} to "
            f"{ports[-1]}; ports run from 1 to 65535"
        )
    return ports


def instance_ports(base: TritonPorts, count: int) -> list[TritonPorts]:
    """The ports of ``count`` local instances: ``base``, then each port + 10.

    Refuses a layout where one instance's port is another's: gRPC 8010 next to HTTP 8000
    would put instance 1's HTTP port on instance 0's gRPC port.
    """
    columns = {
        kind: spread_ports(start, count, f"--{kind.lower()}-port")
        for kind, start in (("HTTP", base.http), ("gRPC", base.grpc), ("metrics", base.metrics))
    }
    owners: dict[int, str] = {}
    for kind, ports in columns.items():
        for index, port in enumerate(ports):
            name = f"instance {index}'s {kind} port"
            if port in owners:
                raise ConfigError(
                    f"--instances {count} with HTTP port {base.http}, gRPC port {base.grpc} "
                    f"and metrics port {base.metrics} puts {owners[port]} and {name} both on "
                    f"{port}: choose base ports that do not differ by a multiple of "
                    f"{INSTANCE_PORT_STRIDE}"
                )
            owners[port] = name
    return [
        TritonPorts(http, grpc, metrics)
        for http, grpc, metrics in zip(
            columns["HTTP"], columns["gRPC"], columns["metrics"], strict=True
        )
    ]


def cores_per_server(count: int) -> int:
    """The cores each of ``count`` servers sharing this machine runs onnxruntime on.

    N servers each with threads for every core would run N threads per core, which preempt
    each other mid-matmul and thrash the caches, so every batch gets slower; cores // N each
    (at least one) keeps the total at about one thread per core.
    """
    return max(1, usable_cores() // max(1, count))


def instance_urls(ports: list[TritonPorts], protocol: str) -> str:
    """The DEEPTAG_TRITON_URL value that reaches every local instance."""
    if protocol == "grpc":
        return ",".join(f"grpc://127.0.0.1:{p.grpc}" for p in ports)
    return ",".join(f"http://127.0.0.1:{p.http}" for p in ports)


# --- Starting and stopping several -----------------------------------------------------------


def _name(index: int, count: int) -> str:
    """How messages call instance ``index``: plain "Triton" when there is only one."""
    return "Triton" if count == 1 else f"Triton {index}"


def _in_parallel(action: Callable[[T], R], items: list[T]) -> list[R]:
    """Stopping waits for each server to exit: wait for all of them at once."""
    if len(items) <= 1:
        return [action(item) for item in items]
    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(action, items))


def start_all(
    tritons: list[LocalTriton],
    start_one: Callable[[LocalTriton], R],
    undo: Callable[[LocalTriton], object],
) -> list[R]:
    """Start every server, or none: a failure stops those already started.

    One after the other, from this thread, not in a pool: the servers die with the thread
    that forked them (PR_SET_PDEATHSIG follows the thread), so a pool thread's exit would take
    its server along; and on a small machine parallel starts barely save time.
    """
    count = len(tritons)
    # Every port first, so a port in use fails before anything was started.
    for index, triton in enumerate(tritons):
        try:
            check_ports_free(triton.ports)
        except DeeptagError as e:
            if count == 1:
                raise
            raise type(e)(f"{_name(index, count)}: {e}") from None
    results: list[R] = []
    try:
        for triton in tritons:
            results.append(start_one(triton))
    except BaseException as e:
        _in_parallel(undo, tritons[: len(results)])
        if count == 1 or not isinstance(e, DeeptagError):
            raise
        index = len(results)
        stopped = f"; stopped the {index} started before it" if index else ""
        raise type(e)(f"{_name(index, count)} did not start{stopped}: {e}") from None
    return results


def _first_exit(tritons: list[LocalTriton]) -> tuple[int, int]:
    """Block until one server exits; (its index, its exit code)."""
    while True:
        for index, triton in enumerate(tritons):
            code = triton.poll()
            if code is not None:
                return index, code
        time.sleep(POLL_INTERVAL_S)


def _exit_reason(code: int) -> str:
    """Popen's negative return codes are signals: say which, as a user would kill it."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def _print_export(ports: list[TritonPorts], protocol: str) -> None:
    # soft_wrap: a wrapped line would not paste back into a shell as one value.
    console.print(
        f"export DEEPTAG_TRITON_URL={instance_urls(ports, protocol)}",
        soft_wrap=True,
        highlight=False,
    )


# --- The commands ----------------------------------------------------------------------------


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
    instances: Instances = 1,
) -> None:
    """Start Triton and serve until Ctrl-C or SIGTERM (or in the background with --detach).

    With --instances N, N servers; in the foreground, when one exits the others are stopped.
    """
    settings = load_settings(
        triton_http_port=http_port,
        triton_grpc_port=grpc_port,
        triton_metrics_port=metrics_port,
        model_repository=model_repository,
    )
    base = TritonPorts(
        settings.triton_http_port, settings.triton_grpc_port, settings.triton_metrics_port
    )
    port_sets = instance_ports(base, instances)
    cores = cores_per_server(instances)
    tritons = [
        # One work dir: the runtime repository and the log are named by HTTP port in it.
        LocalTriton(
            settings.model_repository,
            settings.state_dir / "triton",
            ports,
            start_timeout_s=settings.triton_start_timeout_s,
            shim=shim_options(settings, cores),
            # Every model exported: the commands and servers that use it may ask for any.
            only=served_models(settings, every_model=True),
        )
        for ports in port_sets
    ]
    started = time.perf_counter()
    if detach:
        records = start_all(
            tritons,
            lambda t: start_detached(t, settings.state_dir),
            lambda t: stop_detached(settings.state_dir, t.ports.http),
        )
        elapsed = time.perf_counter() - started
        for index, record in enumerate(records):
            ports = record.ports
            took = f" in {elapsed:.1f}s" if instances == 1 else ""
            console.print(
                f"{_name(index, instances)} ready{took} (pid {record.pid}): "
                f"HTTP {ports.http}, gRPC {ports.grpc}, metrics {ports.metrics}; "
                f"log {record.log_path}",
                soft_wrap=True,
            )
        if instances > 1:
            console.print(f"{instances} Tritons ready in {elapsed:.1f}s, in the background.")
        _print_export(port_sets, settings.local_triton_protocol)
        return

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        start_all(tritons, LocalTriton.start, LocalTriton.stop)
        elapsed = time.perf_counter() - started
        if instances == 1:
            triton = tritons[0]
            console.print(
                f"Triton ready in {elapsed:.1f}s: HTTP {triton.http_url}, "
                f"gRPC {triton.grpc_url}, metrics {triton.metrics_url}. Ctrl-C stops it.",
                soft_wrap=True,
            )
        else:
            for index, triton in enumerate(tritons):
                console.print(
                    f"{_name(index, instances)} ready (pid {triton.pid}): HTTP "
                    f"{triton.http_url}, gRPC {triton.grpc_url}, metrics {triton.metrics_url}",
                    soft_wrap=True,
                )
            console.print(f"{instances} Tritons ready in {elapsed:.1f}s. Ctrl-C stops them.")
        _print_export(port_sets, settings.local_triton_protocol)
        index, code = _first_exit(tritons)
        dead = tritons[index]
        if instances == 1:
            raise fail(f"tritonserver exited with code {code}:\n{dead.log_tail()}")
        raise fail(
            f"{_name(index, instances)} (HTTP port {dead.ports.http}) {_exit_reason(code)}, "
            f"so the others are stopped too; the end of its log "
            f"({dead.log_path}):\n{dead.log_tail()}"
        )
    except KeyboardInterrupt:
        console.print("stopping Triton" if instances == 1 else f"stopping {instances} Tritons")
    finally:
        _in_parallel(LocalTriton.stop, tritons)
        signal.signal(signal.SIGTERM, previous)


@triton_app.command()
@user_errors
def stop(http_port: HttpPort = None, instances: Instances = 1) -> None:
    """Stop the lingering local Triton and those started with --detach (found by their HTTP
    ports); with --http-port, only those."""
    settings = load_settings(triton_http_port=http_port)
    lingering = stop_current(settings.state_dir) if http_port is None else None
    if lingering is not None:
        console.print(f"stopped the lingering Triton (pid {lingering.pid}) on {lingering.address}")
    ports = spread_ports(settings.triton_http_port, instances)
    records = _in_parallel(lambda port: stop_detached(settings.state_dir, port), ports)
    for port, record in zip(ports, records, strict=True):
        if record is not None:
            console.print(f"stopped Triton (pid {record.pid}) on HTTP port {port}")
        elif lingering is None:
            fail(f"no detached Triton found on HTTP port {port}")
    # Some already gone is fine (they are stopped either way); none found is a mistake.
    if lingering is None and all(record is None for record in records):
        raise typer.Exit(1)


@triton_app.command()
@user_errors
def status(http_port: HttpPort = None, instances: Instances = 1) -> None:
    """Say whether Tritons answer ready on their HTTP ports (one line each), and which local
    Triton lingers after a command (unless --http-port is given)."""
    settings = load_settings(triton_http_port=http_port)
    lingering = current(LingerPaths.of(settings.state_dir)) if http_port is None else None
    if lingering is not None:
        console.print(describe_lingering(lingering), soft_wrap=True)
    ports = spread_ports(settings.triton_http_port, instances)
    all_ready = True
    for port in ports:
        record = find_detached(settings.state_dir, port)
        owner = f" (pid {record.pid}, started by deeptag)" if record else ""
        if is_ready(port):
            console.print(f"Triton on HTTP port {port} is ready{owner}")
            continue
        if record:
            all_ready = False
            fail(f"Triton on HTTP port {port}{owner} is running but not ready")
        elif lingering is not None and instances == 1:
            console.print(f"no Triton on HTTP port {port}")
        else:
            all_ready = False
            fail(f"no Triton is ready on HTTP port {port}")
    if not all_ready:
        raise typer.Exit(1)


def describe_lingering(state: LingerState) -> str:
    """One line on the lingering Triton: where, what it serves, whose, until when."""
    ready = is_ready(state.ports.http, timeout=2.0)
    models = ", ".join(loaded_models(state)) or "none"
    age = describe_idle(round(time.time() - state.started_at))
    return (
        f"lingering Triton on {state.address} (pid {state.pid}, gRPC {state.ports.grpc}), "
        f"{'ready' if ready else 'not ready'}, models: {models}; started by "
        f"`{state.started_by}` {age} ago; stops after {describe_idle(state.idle_s)} idle"
    )
