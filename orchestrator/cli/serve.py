"""``deeptag serve``: the DeepDetect-compatible HTTP endpoint."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.common import user_errors
from orchestrator.settings import load_settings


def log_config(secrets: list[str]) -> dict[str, Any]:
    """uvicorn's logging, with the API key (and any ``?key=``) blanked on every handler.

    The access log writes each URL with its query string; a client holding an old ``?key=``
    link must not put the key there.
    """
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {
        "redact": {"()": "orchestrator.server.auth.RedactSecrets", "values": secrets}
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    return config


@user_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Default 127.0.0.1 (DEEPTAG_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Default 8080 (DEEPTAG_PORT).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    watch: Annotated[
        list[Path] | None,
        typer.Option(
            "--watch",
            help="Keep the index in line with this folder as `deeptag watch` does "
            "(repeatable; adds to DEEPTAG_WATCH).",
        ),
    ] = None,
) -> None:
    """Serve /predict, /services, /search, /metrics and the web page."""
    import uvicorn

    from orchestrator.server.app import create_app

    settings = load_settings(host=host, port=port)
    if watch:
        settings = settings.model_copy(update={"watch": [*settings.watch, *watch]})
    secrets = [settings.api_key.get_secret_value()] if settings.api_key else []
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        log_config=log_config(secrets),
        # Without this, uvicorn's own error page leaks framework internals; ours are handled.
        server_header=False,
    )
