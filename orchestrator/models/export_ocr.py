"""Lay out the PP-OCRv4 text detection and recognition models for Triton.

Both ONNX files ship inside the ``rapidocr-onnxruntime`` wheel (the ``ocr`` extra), so the
export is a copy: ``ocr_det/1/model.onnx``, ``ocr_rec/1/model.onnx``, and the recognition
model's character set, read from its ONNX metadata, as ``ocr_rec/characters.txt`` (one
character a line, in output order after the CTC blank).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from orchestrator.errors import ExportDependencyMissing

PACKAGE = "rapidocr_onnxruntime"
DET_MODEL = "ocr_det"
REC_MODEL = "ocr_rec"
DET_FILE = "ch_PP-OCRv4_det_infer.onnx"
REC_FILE = "ch_PP-OCRv4_rec_infer.onnx"
CHARACTERS_FILE = "characters.txt"
#: The ONNX metadata key under which PaddleOCR's converter stores the character set.
CHARACTER_KEY = "character"


def package_models() -> Path:
    """The folder of ONNX models inside the installed rapidocr-onnxruntime package (found, not
    imported: the copy needs neither OpenCV nor rapidocr's code)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ExportDependencyMissing(
            f"the OCR models come with {PACKAGE}, which is not installed: "
            "pip install 'deeptag[ocr]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def onnx_characters(onnx_path: Path) -> list[str]:
    """The recognition model's characters, in output order (without blank and space)."""
    import onnx

    model = onnx.load(str(onnx_path))
    for prop in model.metadata_props:
        if prop.key == CHARACTER_KEY:
            # One character a line; split on "\n" only, as str.splitlines() would also split
            # on characters such as U+2028 should the set ever hold one.
            return [c for c in prop.value.split("\n") if c]
    raise ExportDependencyMissing(
        f"{onnx_path} carries no '{CHARACTER_KEY}' metadata: reinstall rapidocr-onnxruntime"
    )


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy through a temporary sibling, so a crash leaves no half file Triton would load."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def _write_atomically(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, target)


def export_ocr_models(repository: Path, version: int = 1) -> list[Path]:
    """Copy the detection and recognition models into ``repository`` (whose ``config.pbtxt``
    files are tracked) and write the character set; the paths written, in order."""
    source = package_models()
    det_source, rec_source = source / DET_FILE, source / REC_FILE
    for path in (det_source, rec_source):
        if not path.is_file():
            raise ExportDependencyMissing(
                f"{path} is missing from the rapidocr-onnxruntime package: "
                "pip install --force-reinstall 'deeptag[ocr]'"
            )
    characters = onnx_characters(rec_source)
    det_target = repository / DET_MODEL / str(version) / "model.onnx"
    rec_target = repository / REC_MODEL / str(version) / "model.onnx"
    characters_target = repository / REC_MODEL / CHARACTERS_FILE
    _copy_atomically(det_source, det_target)
    _copy_atomically(rec_source, rec_target)
    _write_atomically(characters_target, "".join(f"{c}\n" for c in characters))
    return [det_target, rec_target, characters_target]
