"""``deeptag models export``: build the ONNX models and their data from packaged weights."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.analysis.registry import ANALYSES, AnalysisSpec
from orchestrator.cli.common import console, user_errors
from orchestrator.errors import BadRequest
from orchestrator.settings import load_settings

models_app = typer.Typer(help="Build the models Triton serves.", no_args_is_help=True)


class Which(StrEnum):
    all = "all"
    image = "image"
    text = "text"
    ocr = "ocr"
    safety = "safety"


@models_app.command()
@user_errors
def export(
    model_repository: Annotated[
        Path | None, typer.Option(help="Default ./model_repository (DEEPTAG_MODEL_REPOSITORY).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Export even when the model is already there.")
    ] = False,
    only: Annotated[
        Which,
        typer.Option(
            help="Export only one of them. all: the image and text models, and the OCR and "
            "safety models when their extras are installed (pip install 'deeptag[ocr,safety]')."
        ),
    ] = Which.all,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="Also write efficientnet_lite0_int8, a statically quantised copy (faster on "
            "CPU), and print its accuracy against FP32; serve it with "
            "DEEPTAG_MODEL=efficientnet_lite0_int8. FP32 stays the default.",
        ),
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="With --int8: a folder of your own photos to calibrate on (a quarter is held "
            "out for the accuracy check unless --held-out is given). Default: crops of the "
            "sample photos."
        ),
    ] = None,
    held_out: Annotated[
        Path | None,
        typer.Option(help="With --int8: photos never used for calibration, to measure on."),
    ] = None,
) -> None:
    """Export EfficientNet-Lite0 (ImageNet-1k) to <repository>/efficientnet_lite0/1/model.onnx,
    the all-MiniLM-L6-v2 sentence encoder to <repository>/minilm_l6/1/model.onnx, and the OCR
    (ocr_det, ocr_rec) and safety (open_nsfw) models."""
    from orchestrator.models.export import MODEL_NAME, export_model, label_lines
    from orchestrator.models.export_text import MODEL_NAME as TEXT_MODEL_NAME
    from orchestrator.models.export_text import export_text_model
    from orchestrator.semantic import CONCEPT_EMBEDDINGS, LABEL_EMBEDDINGS
    from orchestrator.text_encoder import TOKENIZER_FILE

    settings = load_settings(model_repository=model_repository)
    if not int8 and (calibration is not None or held_out is not None):
        raise BadRequest("--calibration and --held-out go with --int8")
    if only in (Which.all, Which.image):
        model_dir = settings.model_repository / MODEL_NAME
        onnx = model_dir / "1" / "model.onnx"
        if onnx.is_file() and (model_dir / "labels.txt").is_file() and not force:
            console.print(f"{onnx} is already exported (use --force to redo it)")
        else:
            started = time.perf_counter()
            result = export_model(model_dir)
            console.print(
                f"exported {result.onnx_path} ({result.onnx_path.stat().st_size / 1e6:.1f} MB) "
                f"and {result.labels_path} in {time.perf_counter() - started:.1f}s"
            )
    if int8:
        _export_int8(settings.model_repository, calibration, held_out)
    if only in (Which.all, Which.text):
        text_dir = settings.model_repository / TEXT_MODEL_NAME
        files = ("1/model.onnx", TOKENIZER_FILE, LABEL_EMBEDDINGS, CONCEPT_EMBEDDINGS)
        if all((text_dir / f).is_file() for f in files) and not force:
            console.print(f"{text_dir / files[0]} is already exported (use --force to redo it)")
        else:
            started = time.perf_counter()
            text = export_text_model(text_dir, label_lines())
            console.print(
                f"exported {text.onnx_path} ({text.onnx_path.stat().st_size / 1e6:.1f} MB), "
                f"its tokenizer and the label and concept embeddings in "
                f"{time.perf_counter() - started:.1f}s"
            )
    for spec in ANALYSES:
        if only is Which(spec.name) or only is Which.all:
            export_analysis_models(settings.model_repository, spec, force, only is Which.all)


def export_analysis_models(
    repository: Path, spec: AnalysisSpec, force: bool, optional: bool
) -> None:
    """Export an analysis' models from the package that ships them; ``optional`` (a plain
    `export`): a missing package is a note, not an error."""
    from orchestrator.errors import ExportDependencyMissing
    from orchestrator.models.export_analyses import export_models

    files = [repository / model / "1" / "model.onnx" for model in spec.models]
    if all(f.is_file() for f in files) and not force:
        console.print(f"the {spec.name} models are already exported (use --force to redo them)")
        return
    started = time.perf_counter()
    try:
        written = export_models(spec, repository)
    except ExportDependencyMissing as e:
        if not optional:
            raise
        console.print(f"[dim]skipped the {spec.name} models: {e.message}[/]")
        return
    sizes = ", ".join(f"{p} ({p.stat().st_size / 1e6:.1f} MB)" for p in written)
    console.print(f"exported {sizes} in {time.perf_counter() - started:.1f}s")


def _export_int8(repository: Path, calibration: Path | None, held_out: Path | None) -> None:
    from rich.table import Table

    from orchestrator.models.quantize import calibration_sets, export_int8
    from orchestrator.samples import sample_photos

    started = time.perf_counter()
    crops, held, where = calibration_sets(calibration, held_out, sample_photos())
    target, report = export_int8(repository, crops, held)
    table = Table(title=f"INT8 against FP32 on {report.held_out_images} held-out images")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("top-1 agreement", f"{report.top1_agreement:.1%}")
    table.add_row("top-5 overlap", f"{report.top5_overlap:.1%}")
    table.add_row(
        "embedding cosine, mean / least",
        f"{report.embedding_cosine_mean:.4f} / {report.embedding_cosine_min:.4f}",
    )
    table.add_row(
        "images/s FP32 / INT8 (this CPU, batch 32)",
        f"{report.fp32_images_per_s:.0f} / {report.int8_images_per_s:.0f}",
    )
    console.print(table)
    console.print(
        f"wrote {target} in {time.perf_counter() - started:.0f}s ({where}); the figures are in "
        f"{target / 'quantization.json'}. Serve it with DEEPTAG_MODEL={target.name}; its "
        "embeddings differ slightly from FP32's, so index a collection with one or the other.",
        highlight=False,
    )


@models_app.command("list")
@user_errors
def list_models(
    model_repository: Annotated[
        Path | None, typer.Option(help="Default ./model_repository (DEEPTAG_MODEL_REPOSITORY).")
    ] = None,
) -> None:
    """The models of the repository; trained ones with their classes, accuracy and version."""
    from rich.table import Table

    from orchestrator.training.repository import HEAD_SUFFIX, ProbeRepository
    from orchestrator.triton.runtime_repository import read_config

    settings = load_settings(model_repository=model_repository)
    root = settings.model_repository
    probes = {p.name: p for p in ProbeRepository(root).probes()}
    table = Table()
    for column in ("model", "kind", "version", "classes", "accuracy", "trained"):
        table.add_column(column, overflow="fold")
    folders = (
        sorted(p for p in root.iterdir() if (p / "config.pbtxt").is_file()) if root.is_dir() else []
    )
    for folder in folders:
        if folder.name.endswith(HEAD_SUFFIX) and folder.name.removesuffix(HEAD_SUFFIX) in probes:
            continue
        probe = probes.get(folder.name)
        if probe is not None:
            accuracy = f"{probe.accuracy:.3f}" if probe.accuracy is not None else "-"
            versions = ", ".join(map(str, probe.versions))
            table.add_row(
                probe.name,
                "trained",
                f"{probe.version} (of {versions})",
                ", ".join(probe.labels),
                accuracy,
                str(probe.report.get("trained_at", "")),
            )
            continue
        config = read_config(folder / "config.pbtxt")
        numbered = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.isdecimal())
        classes = config.output[0].dims[-1] if config.output and config.output[0].dims else 0
        table.add_row(
            config.name or folder.name,
            config.backend or config.platform,
            ", ".join(numbered) or "-",
            str(classes),
            "",
            "",
        )
    console.print(table)


@models_app.command("delete")
@user_errors
def delete_model(
    name: Annotated[str, typer.Argument(help="A model made by `deeptag train`.")],
    version: Annotated[
        int | None, typer.Option(help="Remove this version only (default: every version).")
    ] = None,
    model_repository: Annotated[
        Path | None, typer.Option(help="Default ./model_repository (DEEPTAG_MODEL_REPOSITORY).")
    ] = None,
) -> None:
    """Delete a trained model, or one of its versions (the latest remaining one is served)."""
    from orchestrator.training.repository import ProbeRepository

    settings = load_settings(model_repository=model_repository)
    repository = ProbeRepository(settings.model_repository)
    info = repository.get(name.lower())
    left = None
    for each in [version] if version is not None else list(info.versions):
        left = repository.delete_version(info.name, each, settings.model)
    if left is None:
        console.print(f"deleted model '{info.name}'")
    else:
        console.print(
            f"deleted version {version} of '{info.name}'; version {left.version} is now the latest"
        )
