"""The options that turn on the analyses beside classification (orchestrator.analysis), shared
by the commands that tag images: ``--ocr`` and ``--safety`` override ``DEEPTAG_OCR`` and
``DEEPTAG_SAFETY`` when given."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from orchestrator.analysis.registry import OCR, SAFETY

OcrOption = Annotated[
    bool,
    typer.Option(
        "--ocr",
        help="Also read the text in each image (text, text_lines): about 0.3 s per image per "
        "CPU core. On images already indexed, only the text is added (DEEPTAG_OCR).",
    ),
]
SafetyOption = Annotated[
    bool,
    typer.Option(
        "--safety",
        help="Also give each image an nsfw score, 0-1, from the crop the classifier reads; "
        "on images already indexed, only the score is added (DEEPTAG_SAFETY).",
    ),
]


def overrides(ocr: bool, safety: bool) -> dict[str, Any]:
    """Settings overrides for the flags given (an absent flag leaves the environment's)."""
    return {OCR.name: True if ocr else None, SAFETY.name: True if safety else None}
