"""The watcher of a lingering local Triton: it stops the Triton once idle, then exits.

``python -m orchestrator.triton.idle_watch STATE_FILE``, started by the command that started
the Triton (:mod:`lingering`). Idle means: no command holds the lease and Triton reports no
inference, for the state's ``idle_s``. It also exits, cleaning up, when the Triton dies, and
quietly when the state file no longer names its Triton (`deeptag triton stop`, a restart).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

from orchestrator.triton.lingering import LingerPaths, LingerState, forget, stop_lingering
from orchestrator.triton.processes import process_alive

#: The longest pause between two looks: the Triton stops at most this late.
MAX_POLL_S = 10.0


def last_inference(state: LingerState) -> float:
    """When Triton last ran an inference (epoch seconds), 0 when it has not or does not say."""
    try:
        response = httpx.get(f"{state.url}/v2/models/stats", timeout=5.0)
        stats = response.json().get("model_stats", [])
    except (httpx.HTTPError, ValueError, AttributeError):
        return 0.0
    return max((float(s.get("last_inference", 0)) / 1000 for s in stats), default=0.0)


def lease_taken(lease: int) -> bool:
    """Whether some command holds the lease (tried without waiting, released at once)."""
    try:
        fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(lease, fcntl.LOCK_UN)
    return False


def watch(state_file: Path) -> int:
    paths = LingerPaths.of(state_file.parent)
    state = LingerState.load(paths.state)
    if state is None:
        return 0
    poll_s = max(0.2, min(MAX_POLL_S, state.idle_s / 4))
    lease = os.open(paths.lease, os.O_RDWR | os.O_CREAT, 0o600)
    busy_at = time.time()
    while True:
        time.sleep(poll_s)
        now_state = LingerState.load(paths.state)
        if now_state is None or now_state.pid != state.pid:
            return 0  # stopped or replaced by a command: nothing left to watch
        if not process_alive(state.pid):
            print(f"Triton (pid {state.pid}) exited; see {state.log_path}", flush=True)
            forget(state, paths)
            return 1
        now = time.time()
        if lease_taken(lease):
            busy_at = now
        if now - max(busy_at, last_inference(state)) < state.idle_s:
            continue
        try:
            # Held until this process exits: a command waits, then starts a fresh Triton.
            fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        stop_lingering(state, paths)
        return 0


def main() -> None:
    def on_term(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(watch(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
