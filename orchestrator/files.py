"""Small file-system helpers shared by the stages that keep files (pure I/O, no deeptag state)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` whole or not at all (a killed run leaves no torn file).

    The temporary file ends in ``.tmp`` beside the target, so a repository's ignore rules and
    Triton's model scan both pass it over. ``durable``: the data and the rename are on disk
    before returning (fsync of the file, then of the folder), for files that other files'
    consistency rests on after a power loss.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def sha256_of(path: str | Path) -> str | None:
    """The SHA-256 of a file's bytes (a document's id), or None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None
