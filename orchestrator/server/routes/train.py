"""``/train``: DeepDetect's training API, fitting a linear probe served by Triton.

``POST``/``PUT /train`` starts a job on a service created with ``parameters.mllib.nclasses``
(see :func:`create_trainable_service`); ``GET /train?service=&job=`` reports progress, then
the final measures once; ``DELETE /train?service=&job=`` cancels. Options that mean nothing
for a linear probe (``solver``, ``net``, ``gpu``...) are accepted and ignored; any other
unknown option is refused by name.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field, field_validator

from orchestrator.errors import (
    BadRequest,
    DeeptagError,
    SourceRefused,
    quote_input,
)
from orchestrator.responses import error_response
from orchestrator.server.openapi import BODY_ERRORS, QueryParam, described
from orchestrator.server.response_models import TrainResponse
from orchestrator.server.schemas import ServiceCreate, StrictModel, read_body
from orchestrator.server.services import ServiceSpec, service_key
from orchestrator.server.state import ServerState, State
from orchestrator.server.training_jobs import JobRegistry, TrainJob
from orchestrator.sources import is_under
from orchestrator.training.fit import MEASURES, FitOptions
from orchestrator.training.repository import ProbeRepository, check_name
from orchestrator.training.trainer import TrainProgress, TrainReport, TrainRequest, measures_json
from orchestrator.training.trainer import train as run_training

router = APIRouter()
#: Longest ``GET /train?timeout=`` wait, in seconds.
MAX_WAIT_S = 600


class TrainInput(StrictModel):
    connector: str | None = None
    width: int | None = None
    height: int | None = None
    test_split: float = Field(default=0.0, ge=0.0, lt=1.0)
    shuffle: bool = False
    seed: int = -1
    #: deeptag's: images drawn from the search index as a "none" class.
    background: int = Field(default=0, ge=0, le=10_000)


class TrainMllib(StrictModel):
    # Meaningless for a logistic regression fitted on embeddings; accepted as DeepDetect
    # clients send them.
    gpu: Any = None
    gpuid: Any = None
    solver: Any = None
    net: Any = None
    resume: Any = None
    nclasses: int | None = Field(default=None, ge=2)


class TrainOutput(StrictModel):
    measure: list[str] = Field(default_factory=list)

    @field_validator("measure")
    @classmethod
    def _known(cls, measures: list[str]) -> list[str]:
        unknown = [m for m in measures if m not in MEASURES]
        if unknown:
            raise ValueError(
                f"unsupported measure(s) {', '.join(quote_input(m, 20) for m in unknown[:5])}; "
                f"a linear probe reports {', '.join(sorted(MEASURES))}"
            )
        return measures


class TrainParameters(StrictModel):
    input: TrainInput = TrainInput()
    mllib: TrainMllib = TrainMllib()
    output: TrainOutput = TrainOutput()


class TrainBody(StrictModel):
    service: str = Field(min_length=1)
    run_async: bool = Field(default=True, alias="async")
    parameters: TrainParameters = TrainParameters()
    data: list[str] = Field(min_length=1, max_length=1)


def _jobs(state: ServerState, request: Request) -> JobRegistry:
    jobs: JobRegistry | None = getattr(request.app.state, "training_jobs", None)
    if jobs is None:
        jobs = JobRegistry()
        request.app.state.training_jobs = jobs
        # Jobs still running when the server stops are cancelled before Triton goes.
        state.exit_stack.push_async_callback(jobs.close)
    return jobs


def _is_probe_model(state: ServerState, model: str) -> bool:
    """A model that ``/train`` may (re)write: a trained probe, or a name not taken yet."""
    if model == state.settings.model:
        return False
    try:
        ProbeRepository(state.settings.model_repository).check_free(model)
    except BadRequest:
        return False
    return True


async def create_trainable_service(name: str, body: ServiceCreate, state: ServerState) -> bool:
    """Create a service whose model ``/train`` will make, when the body asks for one.

    That is a body with ``parameters.mllib.nclasses`` whose model (``model.name``, else the
    service's name) is a trained probe or does not exist yet; anything else is left to the
    ordinary service creation (returns False).
    """
    nclasses = body.parameters.mllib.nclasses
    if nclasses is None:
        return False
    if body.model.name is None:
        _, backbone = await state.tagger_for(state.settings.model)
        if nclasses == backbone.num_classes:
            return False
    model = check_name(body.model.name or name)
    if not _is_probe_model(state, model):
        return False
    state.services.add(
        ServiceSpec(
            name=service_key(name),
            model=model,
            description=body.description or "image classification (linear probe)",
            mllib=body.mllib,
            type=body.type,
            nclasses=nclasses,
            repository=body.model.repository or "",
            parameters=body.parameters.model_dump(mode="json", exclude_none=True),
        )
    )
    return True


def _folder(state: ServerState, data: str) -> Path:
    folder = Path(data).expanduser()
    if not is_under(folder.resolve(), tuple(state.settings.image_roots)):
        raise SourceRefused(
            f"training folder '{quote_input(data)}': the server reads local folders only under "
            "the configured image roots (DEEPTAG_IMAGE_ROOTS)"
        )
    return folder


def _report_body(report: TrainReport, measures: frozenset[str]) -> dict[str, Any]:
    return {
        "measure": measures_json(report.fit, measures),
        "model": {
            "name": report.name,
            "version": report.version,
            "labels": list(report.labels),
            "counts": report.counts,
            "images": report.images,
            "cached": report.cached,
            "skipped": [
                {"path": quote_input(s.path), "reason": s.reason, "msg": s.message}
                for s in report.skipped
            ],
            "loaded": report.publication.loaded,
            "msg": report.publication.message,
            "embed_s": round(report.embed_s, 3),
            "fit_s": round(report.fit_s, 3),
        },
    }


def _head(job: TrainJob, status: str) -> dict[str, Any]:
    return {"method": "/train", "status": status, "job": job.id, "time": round(job.elapsed_s, 3)}


_START_DOCS = described(
    body=TrainBody,
    example={
        "service": "flowers",
        "async": True,
        "parameters": {"input": {"test_split": 0.2}, "output": {"measure": ["acc", "f1"]}},
        "data": ["/data/flowers"],
    },
    ok=TrainResponse,
    ok_status=201,
    errors=(*BODY_ERRORS, 403, 404, 409, 500, 503),
)


# Two decorators rather than methods=[...]: each method gets its own operationId.
@router.post("/train", status_code=201, response_model=None, **_START_DOCS)
@router.put("/train", status_code=201, response_model=None, **_START_DOCS)
async def start_training(request: Request, state: State) -> dict[str, Any] | JSONResponse:
    body = await read_body(request, TrainBody)
    spec, _ = state.services.get(body.service)
    if not _is_probe_model(state, spec.model):
        raise BadRequest(
            f"service '{spec.name}' serves model '{spec.model}', which /train does not "
            "write: create a service with parameters.mllib.nclasses (PUT /services/NAME) "
            "and train that one"
        )
    options = body.parameters.input
    train_request = TrainRequest(
        name=spec.model,
        folder=_folder(state, body.data[0]),
        fit=FitOptions(
            test_split=options.test_split,
            shuffle=options.shuffle or options.test_split > 0,
            seed=None if options.seed < 0 else options.seed,
        ),
        background=options.background,
        nclasses=spec.nclasses,
        roots=tuple(state.settings.image_roots),
    )
    tagger, _ = await state.tagger_for(state.settings.model)
    progress = TrainProgress()
    measures = frozenset(body.parameters.output.measure)
    job = _jobs(state, request).start(
        spec.name,
        run_training(train_request, state.settings, state.triton, tagger.triton, progress),
        progress,
        measures,
    )
    if body.run_async:
        return {"status": {"code": 201, "msg": "Created"}, "head": _head(job, "running")}
    return await _final(state, request, job, created=True)


async def _final(
    state: ServerState, request: Request, job: TrainJob, *, created: bool = False
) -> dict[str, Any] | JSONResponse:
    """The report of a finished job, handed out once."""
    _jobs(state, request).forget(job)
    try:
        report = await job.task
    except DeeptagError as e:
        payload = error_response(e)
        payload["head"] = _head(job, "error")
        return JSONResponse(payload, status_code=e.http_status)
    except asyncio.CancelledError:
        return {"status": {"code": 200, "msg": "OK"}, "head": _head(job, "terminated")}
    status = {"code": 201, "msg": "Created"} if created else {"code": 200, "msg": "OK"}
    return {
        "status": status,
        "head": _head(job, "finished"),
        "body": _report_body(report, job.measures),
    }


_JOB_QUERY = (
    QueryParam("service", {"type": "string"}, "The service the job trains.", required=True),
    QueryParam("job", {"type": "integer", "minimum": 0}, "The job's number.", required=True),
)


def _job_query(request: Request) -> tuple[str, int]:
    service = request.query_params.get("service")
    job = request.query_params.get("job")
    if not service:
        raise BadRequest("query parameter 'service' is required (GET /train?service=NAME&job=1)")
    if job is None or not (job.isascii() and job.isdecimal()):
        shown = quote_input(job or "", 20)
        raise BadRequest(f"query parameter 'job' must be a job number, got '{shown}'")
    return service, int(job)


@router.get(
    "/train",
    response_model=None,
    **described(
        ok=TrainResponse,
        errors=(400, 403, 404, 500, 503),
        query=[
            *_JOB_QUERY,
            QueryParam(
                "timeout",
                {"type": "number", "default": 0},
                f"Seconds to wait for the job to finish (at most {MAX_WAIT_S}).",
            ),
        ],
    ),
)
async def training_status(request: Request, state: State) -> dict[str, Any] | JSONResponse:
    service, job_id = _job_query(request)
    state.services.get(service)
    job = _jobs(state, request).get(service, job_id)
    timeout = request.query_params.get("timeout", "0")
    try:
        wait_s = min(float(timeout), MAX_WAIT_S)
    except ValueError:
        shown = quote_input(timeout, 20)
        raise BadRequest(f"timeout must be a number of seconds, got '{shown}'") from None
    if wait_s > 0 and not job.task.done():
        await asyncio.wait({job.task}, timeout=wait_s)
    if job.task.done():
        return await _final(state, request, job)
    return {
        "status": {"code": 200, "msg": "OK"},
        "head": _head(job, "running"),
        "body": {"measure": {}, "progress": job.progress.as_json()},
    }


@router.delete(
    "/train",
    response_model=None,
    **described(ok=TrainResponse, errors=(400, 404), query=_JOB_QUERY),
)
async def cancel_training(request: Request, state: State) -> dict[str, Any]:
    service, job_id = _job_query(request)
    state.services.get(service)
    jobs = _jobs(state, request)
    job = jobs.get(service, job_id)
    head = _head(job, "terminated")
    await jobs.cancel(job)
    return {"status": {"code": 200, "msg": "OK"}, "head": head}
