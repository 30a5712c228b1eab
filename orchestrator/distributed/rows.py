"""The plain rows that travel between the stages of a Ray run, and their conversions (pure).

Ray Data moves columnar blocks between processes, so what crosses a stage boundary is plain
data only: strings, integers, and an image's model input as raw bytes. Clients never travel.
Every source stays one row from the first stage to the last, whatever happens to it, so the
driver counts each image exactly once and reports its failure where it happened.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator.indexing import FailedImage
from orchestrator.photo import PhotoMetadata
from orchestrator.preprocess import CROP_SIZE
from orchestrator.types import ImageSource, ItemFailure, PreparedImage, SourceKind

#: What one decoded image is handed to Triton as (``PreparedImage.pixels``).
PIXELS_SHAPE = (CROP_SIZE, CROP_SIZE, 3)

Row = dict[str, Any]
#: A batch as Ray Data's ``numpy`` format gives and takes it: one array per column.
Batch = dict[str, npt.NDArray[Any]]


class Status(StrEnum):
    READY = "ready"  # decoded, not indexed yet: goes to Triton
    FAILED = "failed"  # see the row's stage, reason and error
    SKIPPED = "skipped"  # already indexed, or a copy of an image earlier in this run
    TAGGED = "tagged"  # classified; its document goes to the writers
    INDEXED = "indexed"


SOURCE_COLUMNS = ("uri", "kind", "location")
#: What the driver reads back: enough to count the row, log its failure, and record a
#: skipped copy's place (its content hash, size and mtime) on the document it copies.
OUTCOME_COLUMNS = ("uri", "status", "stage", "reason", "error", "sha256", "seen")
DECODED_COLUMNS = (
    *SOURCE_COLUMNS,
    "status",
    "stage",
    "reason",
    "error",
    "sha256",
    "width",
    "height",
    "pixels",
    "photo",
    "seen",
    "phash",
    # The larger view analyses read (OCR), as bytes and "height,width"; "" when none.
    "view",
    "view_shape",
    # What the analyses found so far, as JSON by analysis name ("" when none ran).
    "analyses",
)
TAGGED_COLUMNS = (*OUTCOME_COLUMNS, "document")
_INT_COLUMNS = frozenset({"width", "height"})


def source_row(source: ImageSource) -> Row:
    return {"uri": source.uri, "kind": source.kind.value, "location": source.location}


def source_of(row: Mapping[str, Any]) -> ImageSource:
    return ImageSource(uri=row["uri"], kind=SourceKind(row["kind"]), location=row["location"])


def decoded_row(outcome: PreparedImage | ItemFailure) -> Row:
    """A decode stage result; a failure keeps its place with the reason the reader gave."""
    row = source_row(outcome.source)
    if isinstance(outcome, ItemFailure):
        return row | {
            "status": Status.FAILED.value,
            "stage": "read",
            "reason": outcome.reason,
            "error": outcome.error.message,
            "sha256": "",
            "width": 0,
            "height": 0,
            "pixels": b"",
            "photo": "",
            "seen": "",
            "phash": "",
            "view": b"",
            "view_shape": "",
            "analyses": "",
        }
    return row | {
        "status": Status.READY.value,
        "stage": "",
        "reason": "",
        "error": "",
        "sha256": outcome.sha256,
        "width": outcome.width,
        "height": outcome.height,
        "pixels": np.ascontiguousarray(outcome.pixels, dtype=np.uint8).tobytes(),
        "photo": photo_text(outcome.photo),
        # One string column, as size and mtime are both absent for URLs and base64.
        "seen": "" if outcome.size is None else json.dumps([outcome.size, outcome.mtime]),
        "phash": outcome.phash or "",
        "view": b"" if outcome.view is None else np.ascontiguousarray(outcome.view).tobytes(),
        "view_shape": "" if outcome.view is None else "{},{}".format(*outcome.view.shape[:2]),
        "analyses": "",
    }


def prepared_of(row: Mapping[str, Any]) -> PreparedImage:
    pixels = np.frombuffer(row["pixels"], dtype=np.uint8).reshape(PIXELS_SHAPE)
    return PreparedImage(
        source=source_of(row),
        pixels=pixels,
        width=int(row["width"]),
        height=int(row["height"]),
        sha256=row["sha256"],
        photo=photo_of(row.get("photo") or ""),
        phash=row.get("phash") or None,
        view=_view_of(row.get("view") or b"", row.get("view_shape") or ""),
        **_seen_of(row.get("seen") or ""),
    )


def _view_of(data: bytes, shape: str) -> npt.NDArray[np.uint8] | None:
    if not shape:
        return None
    height, width = (int(n) for n in shape.split(","))
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)


def _seen_of(text: str) -> dict[str, Any]:
    """The file's size and mtime at read time, from the ``seen`` column (none for "")."""
    if not text:
        return {}
    size, mtime = json.loads(text)
    return {"size": int(size), "mtime": None if mtime is None else float(mtime)}


def photo_text(photo: PhotoMetadata | None) -> str:
    """A photo's metadata as one JSON string column ("" for none); warnings travel too."""
    if photo is None:
        return ""
    return json.dumps({"fields": photo.to_fields(), "warnings": list(photo.warnings)})


def photo_of(text: str) -> PhotoMetadata | None:
    """The inverse of :func:`photo_text`."""
    if not text:
        return None
    value = json.loads(text)
    notes = tuple(str(w) for w in value.get("warnings") or ())
    return replace(PhotoMetadata.from_fields(value.get("fields") or {}), warnings=notes)


def failure_of(row: Mapping[str, Any]) -> FailedImage | None:
    """The failure-log line of a final row, or None when it did not fail."""
    if row["status"] != Status.FAILED:
        return None
    return FailedImage(row["uri"], row["stage"], row["reason"], row["error"])


def to_rows(batch: Mapping[str, npt.NDArray[Any]]) -> list[Row]:
    """The rows of a column batch, with numpy scalars made plain Python values."""
    columns = list(batch)
    if not columns:
        return []
    values = [batch[c].tolist() for c in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def to_batch(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Batch:
    """A column batch of ``columns`` (others dropped: what the next stage needs only)."""
    batch: Batch = {}
    for column in columns:
        if column in _INT_COLUMNS:
            batch[column] = np.array([int(r[column]) for r in rows], dtype=np.int64)
        else:
            # Object arrays: Arrow stores them as strings or binary, not pickled objects.
            column_values = np.empty(len(rows), dtype=object)
            column_values[:] = [r[column] for r in rows]
            batch[column] = column_values
    return batch
