"""``deeptag predict``: classify files or URLs and print the labels."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.analysis.registry import enabled_names
from orchestrator.cli.analyses import OcrOption, SafetyOption, overrides
from orchestrator.cli.common import console, err_console, run_async, user_errors
from orchestrator.pipeline import TagOptions
from orchestrator.responses import predict_response
from orchestrator.runtime import tagging_session, triton_for
from orchestrator.semantic import label_text
from orchestrator.settings import Settings, load_settings
from orchestrator.sources import classify_all
from orchestrator.types import ItemFailure, Outcome


async def _predict(settings: Settings, sources: list[str], options: TagOptions) -> list[Outcome]:
    with triton_for(settings) as triton:
        async with tagging_session(settings, triton.endpoints, path_roots=None) as session:
            return await session.tagger.tag(classify_all(sources), options)


def render_table(outcomes: list[Outcome]) -> Table:
    table = Table(show_lines=False)
    table.add_column("image", overflow="fold")
    table.add_column("label")
    table.add_column("score", justify="right")
    for outcome in outcomes:
        if isinstance(outcome, ItemFailure):
            table.add_row(outcome.source.uri, f"[red]error: {outcome.error.message}[/]", "")
            continue
        for i, label in enumerate(outcome.labels):
            # The label as a person reads it; --json keeps DeepDetect's `cat` with its id.
            name = label_text(label.category)
            table.add_row(outcome.source.uri if i == 0 else "", name, f"{label.score:.3f}")
        for fields in outcome.analyses.values():
            if "nsfw" in fields:
                table.add_row("", "nsfw", f"{fields['nsfw']:.3f}")
            if "text" in fields:
                table.add_row("", f"text: {escape(fields['text'])}", "")
    return table


@user_errors
def predict(
    sources: Annotated[list[str], typer.Argument(help="Image files, http(s) URLs or base64.")],
    best: Annotated[int, typer.Option("--best", min=1, max=1000, help="Labels per image.")] = 5,
    threshold: Annotated[
        float | None, typer.Option(help="Drop labels scoring below this.", min=0.0, max=1.0)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="DeepDetect's response shape.")] = False,
    metadata: Annotated[
        bool,
        typer.Option(
            "--metadata",
            help="With --json: add what each photo says about itself (taken_at, camera, "
            "place, keywords...), as /predict's output.metadata does.",
        ),
    ] = False,
    triton_url: Annotated[
        str | None, typer.Option(help="Use this Triton instead of a local one.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="A Triton model, e.g. one made by `deeptag train` (DEEPTAG_MODEL)."),
    ] = None,
    ocr: OcrOption = False,
    safety: SafetyOption = False,
) -> None:
    """Classify images and print their top labels."""
    model = model.lower() if model else None
    settings = load_settings(triton_url=triton_url, model=model, **overrides(ocr, safety))
    started = time.perf_counter()
    options = TagOptions(
        best=best, confidence_threshold=threshold, analyses=enabled_names(settings)
    )
    outcomes = run_async(_predict(settings, sources, options))
    elapsed_ms = (time.perf_counter() - started) * 1000
    if as_json:
        response = predict_response(outcomes, model or "imageserv", elapsed_ms, metadata=metadata)
        print(json.dumps(response))
    else:
        console.print(render_table(outcomes))
    failures = [o for o in outcomes if isinstance(o, ItemFailure)]
    if failures and not as_json:
        err_console.print(f"{len(failures)} of {len(outcomes)} images could not be classified")
    if len(failures) == len(outcomes):
        raise typer.Exit(1)
