"""``deeptag models export``: build the ONNX model and its labels from packaged weights."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import console, user_errors
from orchestrator.settings import load_settings

models_app = typer.Typer(help="Build the models Triton serves.", no_args_is_help=True)


@models_app.command()
@user_errors
def export(
    model_repository: Annotated[
        Path | None, typer.Option(help="Default ./model_repository (DEEPTAG_MODEL_REPOSITORY).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Export even when the model is already there.")
    ] = False,
) -> None:
    """Export EfficientNet-Lite0 (ImageNet-1k) to <repository>/efficientnet_lite0/1/model.onnx."""
    from orchestrator.models.export import MODEL_NAME, export_model

    settings = load_settings(model_repository=model_repository)
    model_dir = settings.model_repository / MODEL_NAME
    onnx = model_dir / "1" / "model.onnx"
    if onnx.is_file() and (model_dir / "labels.txt").is_file() and not force:
        console.print(f"{onnx} is already exported (use --force to redo it)")
        return
    started = time.perf_counter()
    result = export_model(model_dir)
    console.print(
        f"exported {result.onnx_path} ({result.onnx_path.stat().st_size / 1e6:.1f} MB) and "
        f"{result.labels_path} in {time.perf_counter() - started:.1f}s"
    )
