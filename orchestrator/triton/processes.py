"""Processes deeptag started and left running (a Triton, its python stubs, a watcher): whether
they run, and stopping a process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether a process of that id runs (one we may not signal counts; a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped: a lingering Triton outlives the
    command that started it, so its exit is reaped by init, whenever init gets to it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name, which is in parentheses and may hold spaces.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def terminate_group(
    pid: int, grace_s: float = 15.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL what is left after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                break
        elif not process_alive(pid):
            break
        time.sleep(0.05)
    # The stubs may outlive the server for a moment; the group kill reaches them too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
