"""The analyses deeptag can run beside classification, listed once.

Each entry says what an analysis needs (its Triton models, how large a view of the image) and
what it writes (its document fields); its module is imported only when the analysis is turned
on, so the default install needs none of its libraries. The CLI's ``--ocr``/``--safety``,
``/predict``'s ``output.ocr``/``output.safety``, the indexer and the Ray engine all read this
list: a new analysis is a new module and a new entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orchestrator.analysis.base import Analysis
from orchestrator.errors import BadRequest, ExportDependencyMissing
from orchestrator.settings import Settings

#: The document field listing the analyses that ran on a document (``["ocr", "safety"]``), so
#: one that found nothing (no text) is not run again, and one that never ran can be added.
ANALYSES_FIELD = "analyses"


@dataclass(frozen=True)
class AnalysisSpec:
    name: str
    #: One line for help texts.
    summary: str
    #: The Triton models it calls (their folders in the model repository).
    models: tuple[str, ...]
    #: The document fields it writes; user metadata may not use them.
    fields: frozenset[str]
    #: The longest side of the upright view of the image it reads; None: the 224x224 crop only.
    view_side: int | None
    #: The pip extra its module needs at run time ("" when none).
    extra: str
    #: The module whose ``build(settings) -> Analysis`` makes it.
    module: str

    @property
    def advice(self) -> str:
        """What to run when its models are missing."""
        return f"run `deeptag models export --only {self.name}` and restart Triton"


OCR = AnalysisSpec(
    name="ocr",
    summary="the text in the image (PP-OCRv4 detection and recognition)",
    models=("ocr_det", "ocr_rec"),
    fields=frozenset({"text", "text_lines"}),
    view_side=960,
    extra="ocr",
    module="orchestrator.analysis.ocr",
)
SAFETY = AnalysisSpec(
    name="safety",
    summary="an nsfw score, 0-1 (Yahoo's open_nsfw)",
    models=("open_nsfw",),
    fields=frozenset({"nsfw"}),
    view_side=None,
    extra="",
    module="orchestrator.analysis.safety",
)

#: Every analysis, in the order they are listed and run.
ANALYSES: tuple[AnalysisSpec, ...] = (OCR, SAFETY)
BY_NAME = {spec.name: spec for spec in ANALYSES}
#: Every document field an analysis writes, and the marker of which ran.
ANALYSIS_FIELDS = frozenset({ANALYSES_FIELD}).union(*(spec.fields for spec in ANALYSES))


def specs(names: Iterable[str]) -> tuple[AnalysisSpec, ...]:
    """The entries named (in registry order); an unknown name is a BadRequest."""
    wanted = set(names)
    unknown = sorted(wanted - set(BY_NAME))
    if unknown:
        raise BadRequest(f"unknown analysis {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return tuple(spec for spec in ANALYSES if spec.name in wanted)


def enabled(settings: Settings) -> tuple[AnalysisSpec, ...]:
    """The analyses the settings turn on (``DEEPTAG_OCR``, ``DEEPTAG_SAFETY``)."""
    return tuple(spec for spec in ANALYSES if getattr(settings, spec.name))


def enabled_names(settings: Settings) -> frozenset[str]:
    """The names of the analyses the settings turn on."""
    return frozenset(spec.name for spec in enabled(settings))


def view_side(chosen: Sequence[AnalysisSpec]) -> int | None:
    """The largest view any of ``chosen`` reads (None: none needs more than the crop)."""
    sides = [spec.view_side for spec in chosen if spec.view_side is not None]
    return max(sides) if sides else None


def build(spec: AnalysisSpec, settings: Settings) -> Analysis:
    """Import the analysis' module and make it; a missing library names the extra."""
    try:
        module = importlib.import_module(spec.module)
    except ImportError as e:
        raise ExportDependencyMissing(
            f"the {spec.name} analysis needs {e.name or 'a library'} that is not installed: "
            f"pip install 'deeptag[{spec.extra}]'"
        ) from e
    analysis: Analysis = module.build(settings)
    return analysis
