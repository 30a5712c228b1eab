"""The ``deeptag`` typer application: every command hangs off this."""

from __future__ import annotations

import typer

from orchestrator.cli.demo import demo
from orchestrator.cli.index import index
from orchestrator.cli.models import models_app
from orchestrator.cli.predict import predict
from orchestrator.cli.remove import remove
from orchestrator.cli.search import search
from orchestrator.cli.serve import serve
from orchestrator.cli.sync import sync
from orchestrator.cli.train import train_command
from orchestrator.cli.triton import triton_app
from orchestrator.cli.watch import watch

app = typer.Typer(
    help="Tag images with a deep network served by Triton; search them in Elasticsearch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(predict)
app.command()(demo)
app.command()(index)
app.command()(search)
app.command()(serve)
app.command()(sync)
app.command()(remove)
app.command()(watch)
app.command(name="train")(train_command)
app.add_typer(triton_app, name="triton")
app.add_typer(models_app, name="models")
