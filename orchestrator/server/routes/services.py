"""``/info`` and ``/services/{name}``: DeepDetect's service management."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from orchestrator import __version__
from orchestrator.errors import BadRequest, InputConnectorNotFound, ModelNotFound, quote_input
from orchestrator.server.openapi import BODY_ERRORS, QueryParam, described
from orchestrator.server.response_models import Acknowledged, InfoResponse, ServiceResponse
from orchestrator.server.routes.train import create_trainable_service
from orchestrator.server.schemas import ServiceCreate, read_body
from orchestrator.server.services import ServiceSpec, ServiceStats, service_json, service_key
from orchestrator.server.state import ServerState, State
from orchestrator.training.repository import ProbeRepository
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import is_ready
from orchestrator.triton.pool import TritonPool

router = APIRouter()

#: DeepDetect's ``clear`` values; none deletes anything here, Triton's repository is not ours.
CLEAR_MODES = ("full", "lib", "mem", "dir", "index")


def _flag(name: str, description: str, default: bool = False) -> QueryParam:
    """A boolean query parameter as :func:`query_bool` reads it."""
    return QueryParam(name, {"type": "boolean", "default": default}, description)


def _ok(method: str, **head: Any) -> dict[str, Any]:
    return {"status": {"code": 200, "msg": "OK"}, "head": {"method": method, **head}}


def query_bool(request: Request, name: str, default: bool) -> bool:
    """A boolean query parameter as DeepDetect reads it (``true``/``false``/``1``/``0``)."""
    value = request.query_params.get(name)
    if value is None:
        return default
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be a boolean value (true or false), got '{quote_input(value)}'")


def _model_dir(state: ServerState, spec: ServiceSpec) -> Path:
    return state.settings.model_repository / spec.model


def _labels(state: ServerState, spec: ServiceSpec) -> list[str]:
    # The labels Triton's classification extension uses; a remote Triton's are not visible.
    path = _model_dir(state, spec) / "labels.txt"
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []


def _describe(
    state: ServerState, spec: ServiceSpec, stats: ServiceStats, *, jobs: bool, labels: bool
) -> dict[str, Any]:
    model_dir = _model_dir(state, spec)
    return service_json(
        spec,
        stats,
        with_jobs=jobs,
        labels=_labels(state, spec) if labels else None,
        repository=str(model_dir) if model_dir.is_dir() else "",
    )


def _deps_version() -> str:
    try:
        return f"tritonclient {metadata.version('tritonclient')}"
    except metadata.PackageNotFoundError:
        return ""


async def _search_summary(state: ServerState) -> dict[str, Any]:
    kind = state.settings.resolved_search_backend
    try:
        backend = await state.get_backend()
        return {"backend": backend.kind, "documents": await backend.count()}
    except Exception as e:  # the status panel reports a broken backend, it does not fail
        return {"backend": kind, "documents": None, "error": str(e)}


@router.get(
    "/info",
    response_model=None,
    **described(
        ok=InfoResponse,
        errors=[400],
        query=[_flag("status", "List each service's jobs (DeepDetect's ?status).")],
    ),
)
async def info(request: Request, state: State) -> dict[str, Any]:
    status = query_bool(request, "status", default=False)
    endpoint = state.triton.endpoint
    ready = True
    in_pool: tuple[Endpoint, ...] = ()
    try:
        tagger, model = await state.tagger_for(state.settings.model)
        model_json = {"name": model.name, "version": model.version}
        if isinstance(tagger.triton, TritonPool):
            in_pool = tagger.triton.ready_endpoints()
    except ModelNotFound as e:
        ready, model_json = False, {"name": state.settings.model, "error": str(e)}
    except Exception as e:  # Triton down: /info must still answer
        ready, model_json = False, {"name": state.settings.model, "error": str(e)}
    if state.triton.local is not None:
        ready = ready and is_ready(state.triton.local.ports.http, timeout=1.0)
    head = {
        # DeepDetect's build fields: deeptag is a Python package, not a build of a git tree.
        "build-type": "release",
        "version": __version__,
        "branch": "",
        "commit": "",
        "compile_flags": "",
        "deps_version": _deps_version(),
        "services": [
            _describe(state, spec, stats, jobs=status, labels=False)
            for spec, stats in state.services.entries()
        ],
        "triton": {
            "url": str(endpoint),
            "ready": ready,
            "metrics_url": state.triton.metrics_url,
            # Every endpoint of DEEPTAG_TRITON_URL, and whether it is in the pool now.
            "endpoints": [{"url": str(e), "ready": e in in_pool} for e in state.triton.endpoints],
        },
        "model": model_json,
        "search": await _search_summary(state),
        # Folders the server keeps the index in line with (`serve --watch`).
        "watch": {"folders": list(state.watched)},
        # The page's model filter: documents carry these models' categories under `custom`.
        "trained": _trained(state),
        # The page blurs images whose `nsfw` score is above this (DEEPTAG_NSFW_THRESHOLD).
        "safety": {"nsfw_threshold": state.settings.nsfw_threshold},
    }
    return _ok("/info", **head)


def _trained(state: ServerState) -> list[dict[str, Any]]:
    try:
        probes = ProbeRepository(state.settings.model_repository).probes()
    except (OSError, ValueError):  # an unreadable report must not break /info
        return []
    return [{"name": p.name, "version": p.version, "labels": list(p.labels)} for p in probes]


_CREATE_DOCS = described(
    body=ServiceCreate,
    example={"mllib": "triton", "description": "image classification", "type": "supervised"},
    ok=Acknowledged,
    ok_status=201,
    errors=(*BODY_ERRORS, 404, 409, 503),
)


# Two decorators rather than methods=[...]: each method gets its own operationId.
@router.put("/services/{name}", status_code=201, response_model=None, **_CREATE_DOCS)
@router.post("/services/{name}", status_code=201, response_model=None, **_CREATE_DOCS)
async def create_service(name: str, request: Request, state: State) -> dict[str, Any]:
    body = await read_body(request, ServiceCreate)
    connector = body.parameters.input.connector
    if connector not in (None, "image"):
        raise InputConnectorNotFound(
            f"parameters.input.connector '{quote_input(connector)}': only 'image' is supported"
        )
    if await create_trainable_service(name, body, state):
        return {"status": {"code": 201, "msg": "Created"}}
    model_name = body.model.name or state.settings.model
    try:
        _, model = await state.tagger_for(model_name)
    except ModelNotFound as e:
        raise BadRequest(f"model.name '{quote_input(model_name)}': {e}") from e
    nclasses = body.parameters.mllib.nclasses
    if nclasses is not None and nclasses != model.num_classes:
        raise BadRequest(
            f"parameters.mllib.nclasses is {nclasses} but model '{model_name}' has "
            f"{model.num_classes} classes"
        )
    height, width = model.input_shape[:2]
    state.services.add(
        ServiceSpec(
            name=service_key(name),
            model=model_name,
            description=body.description,
            mllib=body.mllib,
            type=body.type,
            width=width,
            height=height,
            nclasses=model.num_classes,
            repository=body.model.repository or "",
            parameters=body.parameters.model_dump(mode="json", exclude_none=True),
        )
    )
    return {"status": {"code": 201, "msg": "Created"}}


@router.get(
    "/services/{name}",
    response_model=None,
    **described(
        ok=ServiceResponse,
        errors=(400, 404),
        query=[
            _flag("status", "Include the service's jobs (default true).", default=True),
            _flag("labels", "Include the model's labels."),
        ],
    ),
)
async def get_service(name: str, request: Request, state: State) -> dict[str, Any]:
    jobs = query_bool(request, "status", default=True)
    labels = query_bool(request, "labels", default=False)
    spec, stats = state.services.get(name)
    body = _describe(state, spec, stats, jobs=jobs, labels=labels)
    return {**_ok("/services", service=spec.name), "body": body}


@router.delete(
    "/services/{name}",
    response_model=None,
    **described(
        ok=Acknowledged,
        errors=(400, 404),
        query=[
            QueryParam(
                "clear",
                {"type": "string", "enum": list(CLEAR_MODES), "default": "mem"},
                "DeepDetect's clear mode; none deletes files (the model repository is Triton's).",
            )
        ],
    ),
)
async def delete_service(name: str, request: Request, state: State) -> dict[str, Any]:
    clear = request.query_params.get("clear", "mem")
    if clear not in CLEAR_MODES:
        raise BadRequest(
            f"clear must be one of {', '.join(CLEAR_MODES)}, got '{quote_input(clear)}'"
        )
    state.services.remove(name)
    return {"status": {"code": 200, "msg": "OK"}}
