"""A local Triton that outlives the command that started it, until it has been idle a while.

The first command that needs Triton, with none configured, starts one on free ports and
leaves a state file in the data directory; the next commands find it there and use it, so
only the first pays Triton's start-up. A watcher process (:mod:`idle_watch`) stops it after
``DEEPTAG_TRITON_IDLE_S`` without requests.

Two ``flock`` locks, which the kernel releases when their holder dies, so a killed command
never leaves one taken:

- the start lock: one command at a time looks for the lingering Triton and starts it or
  loads its models, so two commands started together start one Triton, not two;
- the lease: each command holds it shared while it uses the Triton; the watcher stops the
  Triton only once it can take the lease alone, so never under a command that uses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import httpx

from orchestrator.errors import TritonStartError
from orchestrator.triton.launcher import (
    LocalTriton,
    TritonPorts,
    free_port,
    is_ready,
    remove_stub_memory,
)
from orchestrator.triton.processes import process_alive, terminate_group
from orchestrator.triton.runtime_repository import ShimOptions

STATE_FILE = "triton-lingering.json"
LOCK_FILE = "triton-lingering.lock"
LEASE_FILE = "triton-lingering.lease"
#: The lingering Triton's runtime repository and log live here, apart from other Tritons'.
WORK_DIR = "triton-lingering"
#: How long loading one more model into a lingering Triton may take.
LOAD_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LingerPaths:
    state: Path
    lock: Path
    lease: Path
    work_dir: Path

    @classmethod
    def of(cls, state_dir: Path) -> LingerPaths:
        return cls(
            state_dir / STATE_FILE,
            state_dir / LOCK_FILE,
            state_dir / LEASE_FILE,
            state_dir / WORK_DIR,
        )


@dataclass(frozen=True)
class LingerState:
    """What the state file says about the lingering Triton."""

    pid: int
    ports: TritonPorts
    #: The model repository it serves and its version (see :func:`repository_version`).
    repository: str
    version: str
    runtime_repository: str
    log_path: str
    idle_s: float
    started_at: float
    started_by: str
    #: The idle watcher's pid; 0 until it is started.
    watcher_pid: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports.http}"

    @property
    def url(self) -> str:
        """Its HTTP API: health, statistics, the repository API."""
        return f"http://{self.address}"

    @classmethod
    def load(cls, path: Path) -> LingerState | None:
        """The state in ``path``; None when there is none or it cannot be read."""
        try:
            raw = json.loads(path.read_text())
            return cls(**{**raw, "ports": TritonPorts(**raw["ports"])})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError):
            # Half-written by a killed command, or from another version: not ours to trust.
            path.unlink(missing_ok=True)
            return None

    def save(self, path: Path) -> None:
        """Write atomically: a reader sees the old state or the new, never half of one."""
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(asdict(self)))
        scratch.replace(path)


@dataclass(frozen=True)
class LingerSpec:
    """The lingering Triton a command wants."""

    repository: Path
    state_dir: Path
    shim: ShimOptions
    #: The model folders it serves (None: all); the version covers them.
    serve: frozenset[str] | None
    #: The models this command needs ready (None: all it serves).
    load: frozenset[str] | None
    idle_s: float
    start_timeout_s: float
    started_by: str


def repository_version(repository: Path, shim: ShimOptions) -> str:
    """A fingerprint of the model repository's files (names, sizes, times) and the layout:
    a model exported or trained since, or other layout settings, make another version."""
    digest = hashlib.sha256(repr(shim).encode())
    root = repository.resolve()
    for path in sorted(_files(root, depth=3)):
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    digest.update(str(root).encode())
    return digest.hexdigest()[:16]


def _files(folder: Path, depth: int) -> Iterator[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir():
            if depth > 1:
                yield from _files(Path(entry.path), depth - 1)
        else:
            yield Path(entry.path)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def stop_lingering(state: LingerState, paths: LingerPaths, grace_s: float = 15.0) -> None:
    """Stop the Triton and its watcher (unless the caller is the watcher) and clean up."""
    if state.watcher_pid and state.watcher_pid != os.getpid():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(state.watcher_pid, signal.SIGTERM)
    if process_alive(state.pid):
        terminate_group(state.pid, grace_s)
    forget(state, paths)


def forget(state: LingerState, paths: LingerPaths) -> None:
    """Remove what a stopped (or dead) lingering Triton left: state, memory, repository."""
    current = LingerState.load(paths.state)
    if current is not None and current.pid == state.pid:
        paths.state.unlink(missing_ok=True)
    remove_stub_memory(state.ports.http)
    shutil.rmtree(state.runtime_repository, ignore_errors=True)


def current(paths: LingerPaths) -> LingerState | None:
    """The lingering Triton whose process lives; a state file of a dead one is cleaned up."""
    state = LingerState.load(paths.state)
    if state is not None and not process_alive(state.pid):
        forget(state, paths)
        return None
    return state


def _usable(paths: LingerPaths, version: str) -> LingerState | None:
    """The lingering Triton if it serves ``version`` and answers; else None, after stopping
    one of another version (a model exported since) or one that no longer answers."""
    state = current(paths)
    if state is None:
        return None
    if state.version != version or not is_ready(state.ports.http, timeout=5.0):
        stop_lingering(state, paths)
        return None
    return state


def loaded_models(state: LingerState) -> list[str]:
    """The models the lingering Triton has ready (empty when it does not answer)."""
    try:
        response = httpx.post(f"{state.url}/v2/repository/index", json={}, timeout=5.0)
        response.raise_for_status()
        entries = response.json()
    except (httpx.HTTPError, ValueError):
        return []
    return sorted(e["name"] for e in entries if e.get("state") == "READY")


def _served(state: LingerState) -> frozenset[str]:
    runtime = Path(state.runtime_repository)
    return frozenset(p.name for p in runtime.iterdir() if (p / "config.pbtxt").is_file())


def ensure_loaded(state: LingerState, models: frozenset[str] | None) -> None:
    """Load those of ``models`` (None: every model it serves) the Triton has not loaded."""
    wanted = _served(state) if models is None else models
    missing = sorted(wanted - set(loaded_models(state)))
    for name in missing:
        try:
            response = httpx.post(
                f"{state.url}/v2/repository/models/{name}/load",
                json={},
                timeout=LOAD_TIMEOUT_S,
            )
        except httpx.HTTPError as e:
            raise TritonStartError(
                f"the local Triton on {state.address} did not load model '{name}': {e}"
            ) from e
        if response.status_code != 200:
            raise TritonStartError(
                f"the local Triton on {state.address} did not load model '{name}': "
                f"{response.text[:300]}"
            )


def _start(spec: LingerSpec, paths: LingerPaths, version: str) -> LingerState:
    paths.work_dir.mkdir(parents=True, exist_ok=True)
    # The last one's log stays until the next start, for whoever wonders why it stopped.
    for old in paths.work_dir.glob("tritonserver-*.log"):
        old.unlink(missing_ok=True)
    triton = LocalTriton(
        spec.repository,
        paths.work_dir,
        TritonPorts(free_port(), free_port(), free_port()),
        start_timeout_s=spec.start_timeout_s,
        shim=spec.shim,
        die_with_parent=False,
        only=spec.serve,
        load=spec.load,
    )
    triton.start()
    try:
        assert triton.pid is not None
        state = LingerState(
            pid=triton.pid,
            ports=triton.ports,
            repository=str(spec.repository.resolve()),
            version=version,
            runtime_repository=str(triton.runtime_repository),
            log_path=str(triton.log_path),
            idle_s=spec.idle_s,
            started_at=time.time(),
            started_by=spec.started_by,
        )
        state.save(paths.state)
        state = replace(state, watcher_pid=_start_watcher(paths))
        state.save(paths.state)
    except BaseException:
        triton.stop()
        paths.state.unlink(missing_ok=True)
        raise
    triton.disown()
    return state


def _start_watcher(paths: LingerPaths) -> int:
    """The idle watcher, in a session of its own: the terminal's Ctrl-C is not for it."""
    with (paths.work_dir / "idle-watch.log").open("ab") as log:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.triton.idle_watch", str(paths.state)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return watcher.pid


def describe_idle(seconds: float) -> str:
    """900 -> "15 min", 90 -> "90 s" (pure)."""
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:g} s"


@contextlib.contextmanager
def lingering_triton(spec: LingerSpec, announce: Callable[[str], None]) -> Iterator[LingerState]:
    """The lingering Triton with ``spec.load`` ready, started if there is none; held (the
    lease) for the block, so it is not stopped under it."""
    paths = LingerPaths.of(spec.state_dir)
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    version = repository_version(spec.repository, spec.shim)
    lease = os.open(paths.lease, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with _exclusive(paths.lock):
            # Waits while a watcher stops an idle Triton; after that, there is none.
            fcntl.flock(lease, fcntl.LOCK_SH)
            state = _usable(paths, version)
            if state is None:
                state = _start(spec, paths, version)
                announce(
                    f"started a local Triton on {state.address}; it stops after "
                    f"{describe_idle(spec.idle_s)} idle; `deeptag triton stop` stops it now"
                )
            else:
                ensure_loaded(state, spec.load)
        yield state
    finally:
        os.close(lease)


def stop_current(state_dir: Path) -> LingerState | None:
    """Stop the lingering Triton of ``state_dir`` now (`deeptag triton stop`); None: none."""
    paths = LingerPaths.of(state_dir)
    if not paths.state.exists():
        return None
    with _exclusive(paths.lock):
        state = current(paths)
        if state is not None:
            stop_lingering(state, paths)
    return state
