"""``deeptag train NAME FOLDER``: a dedicated classifier from a folder of examples, in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.cli.common import console, err_console, run_async, user_errors
from orchestrator.runtime import triton_for
from orchestrator.settings import Settings, load_settings
from orchestrator.training.fit import FitOptions
from orchestrator.training.trainer import TrainProgress, TrainReport, TrainRequest, train
from orchestrator.triton.client import TritonClient


async def _train(settings: Settings, request: TrainRequest) -> tuple[TrainReport, bool]:
    """The report, and whether this command started its own Triton (gone when it exits)."""
    with triton_for(settings) as triton:
        backbone = TritonClient(triton.endpoint, settings.model, settings.triton_timeout_s)
        await backbone.connect()
        try:
            with Progress(
                TextColumn("[bold]{task.fields[phase]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("[dim]{task.fields[cached]} cached, {task.fields[skipped]} skipped"),
                TimeElapsedColumn(),
                console=err_console,
            ) as bar:
                task = bar.add_task("train", total=None, phase="reading", cached=0, skipped=0)

                def show(progress: TrainProgress) -> None:
                    bar.update(
                        task,
                        total=progress.total or None,
                        completed=progress.done,
                        phase=progress.phase,
                        cached=progress.cached,
                        skipped=progress.skipped,
                    )

                report = await train(request, settings, triton, backbone, on_progress=show)
                return report, triton.local is not None
        finally:
            await backbone.close()


def evaluation_table(report: TrainReport) -> Table | None:
    """Per-class precision, recall and F1 on the held-out images, and the confusion matrix."""
    evaluation = report.evaluation
    if evaluation is None:
        return None
    table = Table(title=f"held-out images: {evaluation.test_size}", show_lines=False)
    table.add_column("category")
    for column in ("train", "precision", "recall", "f1", "held out"):
        table.add_column(column, justify="right")
    for label in report.labels:
        table.add_column(f"→{label}", justify="right", style="dim")
    for i, measures in enumerate(evaluation.per_class):
        table.add_row(
            measures.label,
            str(report.counts.get(measures.label, 0) - measures.support),
            f"{measures.precision:.3f}",
            f"{measures.recall:.3f}",
            f"{measures.f1:.3f}",
            str(measures.support),
            *(str(v) for v in evaluation.confusion[i]),
        )
    return table


@user_errors
def train_command(
    name: Annotated[str, typer.Argument(help="The new model's name (a Triton model and service).")],
    folder: Annotated[
        Path, typer.Argument(help="One sub-folder of images per category: FOLDER/astronaut/*.jpg")
    ],
    test_split: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Part of each category held out to measure.")
    ] = 0.2,
    background: Annotated[
        int,
        typer.Option(min=0, help="Add a 'none' class of N images drawn from the search index."),
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
    triton_url: Annotated[
        str | None, typer.Option(help="Use this Triton instead of a local one.")
    ] = None,
) -> None:
    """Train a linear classifier on the image model's embeddings and serve it with Triton."""
    settings = load_settings(triton_url=triton_url)
    request = TrainRequest(
        name=name,
        folder=folder,
        fit=FitOptions(test_split=test_split, seed=seed),
        background=background,
    )
    report, temporary_triton = run_async(_train(settings, request))
    for skipped in report.skipped:
        err_console.print(f"[yellow]skipped[/] {skipped.message}", highlight=False)
    table = evaluation_table(report)
    if table is not None:
        console.print(table)
    measures = report.evaluation
    accuracy = f"held-out accuracy {measures.accuracy:.3f}, " if measures else ""
    console.print(
        f"trained '{report.name}' version {report.version}: {len(report.labels)} classes, "
        f"{report.images} images ({report.cached} cached, {len(report.skipped)} skipped); "
        f"{accuracy}embedding {report.embed_s:.1f}s, fit {report.fit_s:.2f}s, "
        f"total {report.total_s:.1f}s",
        highlight=False,
    )
    if report.publication.loaded and temporary_triton:
        console.print(
            f"[green]Triton loaded it; every command and `deeptag triton start` serve "
            f"'{report.name}' from {settings.model_repository}[/]",
            highlight=False,
        )
        return
    style = "green" if report.publication.loaded else "yellow"
    console.print(f"[{style}]{report.publication.message}[/]", highlight=False)
