"""``deeptag triton start --detach``: a local Triton left running, found again by its HTTP
port through a record in the state directory."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.triton.launcher import LocalTriton, TritonPorts
from orchestrator.triton.processes import process_alive, terminate_group


@dataclass(frozen=True)
class LaunchRecord:
    """What ``--detach`` leaves behind so ``stop`` and ``status`` can find the server."""

    pid: int
    ports: TritonPorts
    log_path: str
    started_at: float

    @classmethod
    def load(cls, path: Path) -> LaunchRecord:
        raw = json.loads(path.read_text())
        return cls(
            pid=raw["pid"],
            ports=TritonPorts(**raw["ports"]),
            log_path=raw["log_path"],
            started_at=raw["started_at"],
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))


def record_path(state_dir: Path, http_port: int) -> Path:
    return state_dir / f"triton-{http_port}.json"


def start_detached(triton: LocalTriton, state_dir: Path) -> LaunchRecord:
    """Start ``triton`` and leave it running after this process exits."""
    state_dir.mkdir(parents=True, exist_ok=True)
    triton.die_with_parent = False
    triton.start()
    assert triton.pid is not None
    record = LaunchRecord(
        pid=triton.pid, ports=triton.ports, log_path=str(triton.log_path), started_at=time.time()
    )
    record.save(record_path(state_dir, triton.ports.http))
    triton.disown()
    return record


def find_detached(state_dir: Path, http_port: int) -> LaunchRecord | None:
    path = record_path(state_dir, http_port)
    if not path.is_file():
        return None
    record = LaunchRecord.load(path)
    if not process_alive(record.pid):
        path.unlink(missing_ok=True)
        return None
    return record


def stop_detached(state_dir: Path, http_port: int) -> LaunchRecord | None:
    record = find_detached(state_dir, http_port)
    if record is None:
        return None
    terminate_group(record.pid)
    record_path(state_dir, http_port).unlink(missing_ok=True)
    return record
