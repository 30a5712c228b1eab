"""Export the models of an analysis (orchestrator.analysis.registry) into the repository,
each from the package that ships it: a table, so the CLI has no branch per analysis."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.analysis.registry import OCR, SAFETY, AnalysisSpec


def _ocr(repository: Path) -> list[Path]:
    from orchestrator.models.export_ocr import export_ocr_models

    return export_ocr_models(repository)


def _safety(repository: Path) -> list[Path]:
    from orchestrator.models.export_safety import export_safety_model

    return [export_safety_model(repository)]


EXPORTERS: dict[str, Callable[[Path], list[Path]]] = {OCR.name: _ocr, SAFETY.name: _safety}


def export_models(spec: AnalysisSpec, repository: Path) -> list[Path]:
    """The files written; :class:`ExportDependencyMissing` when the package is absent."""
    return EXPORTERS[spec.name](repository)
