"""Run the tritonserver binary bundled with ``nvidia-pytriton`` on this machine, on CPU.

Use :class:`LocalTriton` as a context manager for a server that lives as long as a command;
``deeptag triton start --detach`` (:mod:`detached`) and the lingering Triton (:mod:`lingering`)
outlive theirs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from orchestrator.errors import PortInUse, TritonStartError
from orchestrator.triton.processes import terminate_group
from orchestrator.triton.runtime_repository import (
    DEFAULT_SHIM,
    RuntimeModel,
    ShimOptions,
    materialise,
)

LOG_TAIL_LINES = 25
#: Where POSIX shared memory lives on Linux: Triton's python backend and deeptag's regions.
SHM_DIR = Path("/dev/shm")


@dataclass(frozen=True)
class TritonPorts:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002


def _pytriton_root() -> Path:
    try:
        import pytriton
    except ImportError as e:  # pragma: no cover - a core dependency
        raise TritonStartError("nvidia-pytriton is not installed: run `make setup`") from e
    return Path(pytriton.__file__).parent / "tritonserver"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port_free(port: int, purpose: str) -> None:
    """Raise PortInUse when something listens on ``port``.

    The port is tried as tritonserver binds it, with ``SO_REUSEADDR``: without it, the
    connections a crashed server left in TIME_WAIT refuse the bind for about a minute,
    though nothing listens and the server itself would start.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise PortInUse(
                f"port {port} ({purpose}) is already in use on 127.0.0.1: stop what uses it "
                f"or choose another with --{purpose.split()[0].lower()}-port"
            ) from e


def check_ports_free(ports: TritonPorts) -> None:
    for port, purpose in (
        (ports.http, "http port"),
        (ports.grpc, "grpc port"),
        (ports.metrics, "metrics port"),
    ):
        check_port_free(port, purpose)


def runtime_repository_path(work_dir: Path, http_port: int) -> Path:
    return work_dir / f"model_repository-{http_port}"


def is_ready(http_port: int, timeout: float = 2.0) -> bool:
    try:
        response = httpx.get(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def shm_prefix(http_port: int) -> str:
    """What the python backend's regions under /dev/shm are named by: one server's own."""
    return f"deeptag_triton_{http_port}_"


def remove_stub_memory(http_port: int) -> None:
    """Remove the python backend's /dev/shm files of the server on ``http_port``: a server
    killed with SIGKILL leaves them (about 2 MB a model), and nothing else ever would."""
    for path in SHM_DIR.glob(f"{shm_prefix(http_port)}*"):
        with contextlib.suppress(OSError):
            path.unlink()


def _prepare_backends(work_dir: Path) -> Path:
    """A backend directory whose python backend finds the stub built for this Python."""
    root = _pytriton_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonStartError(
            f"the bundled Triton has no python backend stub for Python {version}"
        )
    python_dir = work_dir / "backends" / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for source in (*(root / "backends" / "python").iterdir(), stub):
        if source.name == "__pycache__":
            continue
        link = python_dir / source.name
        if not link.exists():
            link.symlink_to(source)
    return work_dir / "backends"


def _terminate_with_parent() -> None:
    """Runs in the child before exec: a killed deeptag (even SIGKILL) takes its Triton along."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _server_environment() -> dict[str, str]:
    env = dict(os.environ)
    # The stub runs `python3` from PATH and must import this environment's numpy/onnxruntime.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    libs = _pytriton_root().parent.parent / "nvidia_pytriton.libs"
    lib_dirs = [str(sysconfig.get_config_var("LIBDIR")), str(libs)]
    if env.get("LD_LIBRARY_PATH"):
        lib_dirs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(lib_dirs)
    return env


class LocalTriton:
    """A tritonserver process serving ``model_repository`` on 127.0.0.1."""

    def __init__(
        self,
        model_repository: Path,
        work_dir: Path,
        ports: TritonPorts | None = None,
        start_timeout_s: float = 120.0,
        shim: ShimOptions = DEFAULT_SHIM,
        die_with_parent: bool = True,
        only: frozenset[str] | None = None,
        load: frozenset[str] | None = None,
    ) -> None:
        self.model_repository = model_repository
        #: The model folders to serve; None: every model in the repository.
        self.only = only
        #: The models loaded at start (and waited for); None: all it serves. The others can
        #: be loaded later through the repository API.
        self.load = load
        self.work_dir = work_dir
        self.ports = ports or TritonPorts()
        self.start_timeout_s = start_timeout_s
        self.shim = shim
        self.die_with_parent = die_with_parent
        self.models: list[RuntimeModel] = []
        self._process: subprocess.Popen[bytes] | None = None
        self.log_path = work_dir / f"tritonserver-{self.ports.http}.log"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"

    @property
    def runtime_repository(self) -> Path:
        """The repository the server reads, materialised from ``model_repository``."""
        return runtime_repository_path(self.work_dir, self.ports.http)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def command(self, runtime_repo: Path, backends: Path) -> list[str]:
        binary = _pytriton_root() / "bin" / "tritonserver"
        cache_dir = self.work_dir / "cache"
        cache_dir.mkdir(parents=True, exist_ok=True)
        return [
            str(binary),
            f"--model-repository={runtime_repo}",
            f"--backend-directory={backends}",
            f"--cache-directory={cache_dir}",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            # tritonserver listens on every interface unless told otherwise.
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            "--allow-gpu-metrics=false",
            "--pinned-memory-pool-byte-size=0",
            "--exit-on-error=true",
            "--strict-readiness=true",
            # Models trained while the server runs are loaded through its repository API.
            "--model-control-mode=explicit",
            *(
                ["--load-model=*"]
                if self.load is None
                else [f"--load-model={name}" for name in sorted(self.load)]
            ),
            "--log-verbose=0",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
        ]

    @property
    def shm_prefix(self) -> str:
        return shm_prefix(self.ports.http)

    def remove_stub_memory(self) -> None:
        remove_stub_memory(self.ports.http)

    def disown(self) -> None:
        """Forget the running server, so that nothing in this process stops it."""
        self._process = None

    def start(self) -> None:
        check_ports_free(self.ports)
        # The ports are free, so whatever carries this server's prefix is a dead one's.
        self.remove_stub_memory()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        runtime_repo = self.runtime_repository
        self.models = materialise(self.model_repository, runtime_repo, self.shim, self.only)
        backends = _prepare_backends(self.work_dir)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.command(runtime_repo, backends),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_server_environment(),
                # Its own process group, so stop() also reaches the python stubs it forks.
                start_new_session=True,
                preexec_fn=_terminate_with_parent if self.die_with_parent else None,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise TritonStartError(
                    f"tritonserver exited with code {self._process.returncode} before it was "
                    f"ready; the end of its log ({self.log_path}):\n{self.log_tail()}"
                )
            if is_ready(self.ports.http, timeout=1.0):
                return
            time.sleep(0.1)
        raise TritonStartError(
            f"tritonserver was not ready after {self.start_timeout_s:.0f}s; "
            f"the end of its log ({self.log_path}):\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The log lines that explain a failure (errors, unavailable models), else its tail."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        all_lines = text.splitlines()
        telling = [
            line
            for line in all_lines
            if line.startswith("E1") or "UNAVAILABLE" in line or line.startswith("error:")
        ]
        return "\n".join((telling or all_lines)[-lines:])

    def stop(self, grace_s: float = 15.0) -> None:
        if self._process is None:
            return
        terminate_group(self._process.pid, grace_s, self._process)
        self._process = None
        self.remove_stub_memory()

    def wait(self) -> int:
        assert self._process is not None
        return self._process.wait()

    def poll(self) -> int | None:
        """The server's exit code once it has exited, else None (it runs)."""
        assert self._process is not None
        return self._process.poll()

    def __enter__(self) -> LocalTriton:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
