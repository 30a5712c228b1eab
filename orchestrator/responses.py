"""DeepDetect-shaped JSON responses (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.errors import DeeptagError
from orchestrator.types import ItemFailure, Outcome, Prediction


def prediction_json(outcome: Outcome, *, metadata: bool = False) -> dict[str, Any]:
    """One ``body.predictions[]`` entry; ``last: true`` marks the last class.

    With ``metadata``, the photo's own fields (``taken_at``, ``camera``, ``place``...) join the
    entry, so a template can write ``{{taken_at}}``; DeepDetect's fields keep their meaning.
    """
    if isinstance(outcome, ItemFailure):
        return {
            "uri": outcome.source.uri,
            "classes": [],
            "error": {
                "code": outcome.error.http_status,
                "dd_code": outcome.error.dd_code,
                "reason": outcome.reason,
                "msg": outcome.error.message,
            },
        }
    classes: list[dict[str, Any]] = [
        {"cat": label.category, "prob": round(label.score, 6)} for label in outcome.labels
    ]
    if classes:
        classes[-1]["last"] = True
    entry: dict[str, Any] = {}
    if metadata and outcome.photo is not None:
        entry.update(outcome.photo.to_fields())
    entry.update(uri=outcome.source.uri, classes=classes)
    if outcome.concepts is not None:
        # Only when asked for (output.concepts): DeepDetect's own shape stays as it was.
        entry["concepts"] = [
            {"concept": c.concept, "score": round(c.score, 6)} for c in outcome.concepts
        ]
    # The analyses asked for (output.ocr, output.safety): `text`, `text_lines`, `nsfw`.
    for fields in outcome.analyses.values():
        entry.update(fields)
    return entry


def predict_response(
    outcomes: Sequence[Outcome], service: str, elapsed_ms: float, *, metadata: bool = False
) -> dict[str, Any]:
    predictions = [prediction_json(o, metadata=metadata) for o in outcomes]
    if predictions:
        predictions[-1]["last"] = True
    failed = sum(isinstance(o, ItemFailure) for o in outcomes)
    status: dict[str, Any] = {"code": 200, "msg": "OK"}
    if failed:
        status["failed"] = failed
        status["dd_msg"] = f"{failed} of {len(outcomes)} images could not be tagged"
    return {
        "status": status,
        "head": {"method": "/predict", "service": service, "time": round(elapsed_ms, 3)},
        "body": {"predictions": predictions},
    }


def error_response(error: DeeptagError) -> dict[str, Any]:
    """The DeepDetect error shape: ``{"status": {code, msg, dd_code, dd_msg}}``."""
    return {
        "status": {
            "code": error.http_status,
            "msg": _STATUS_WORDS.get(error.http_status, "Error"),
            "dd_code": error.dd_code,
            "dd_msg": f"{error.dd_msg}: {error.message}",
        }
    }


_STATUS_WORDS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "PayloadTooLarge",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def tagged(outcomes: Sequence[Outcome]) -> list[Prediction]:
    return [o for o in outcomes if isinstance(o, Prediction)]
