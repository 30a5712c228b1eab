"""``/health`` (no key needed) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.server.openapi import TEXT, described
from orchestrator.server.response_models import Health
from orchestrator.server.state import State

router = APIRouter()
health_router = APIRouter()


@health_router.get("/health", response_model=None, **described(ok=Health))
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/metrics",
    # The route makes its own Response; this only keeps JSON out of the document.
    response_class=Response,
    **described(
        ok_description="Prometheus' text exposition format.",
        content={"text/plain": TEXT},
    ),
)
async def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
