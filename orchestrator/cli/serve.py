"""``deeptag serve``: the DeepDetect-compatible HTTP endpoint."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.common import user_errors
from orchestrator.settings import load_settings


@user_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Default 127.0.0.1 (DEEPTAG_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Default 8080 (DEEPTAG_PORT).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve /predict, /services, /search, /metrics and the web page."""
    import uvicorn

    from orchestrator.server.app import create_app

    settings = load_settings(host=host, port=port)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        # Without this, uvicorn's own error page leaks framework internals; ours are handled.
        server_header=False,
    )
