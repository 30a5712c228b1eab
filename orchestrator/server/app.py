"""The FastAPI application behind ``deeptag serve``."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator import __version__
from orchestrator.errors import BadRequest, DeeptagError
from orchestrator.fetch import FetchPolicy, SourceReader, build_http_client
from orchestrator.metrics import Metrics
from orchestrator.responses import error_response
from orchestrator.runtime import triton_for
from orchestrator.server import ui
from orchestrator.server.auth import require_api_key
from orchestrator.server.docs import docs_router
from orchestrator.server.openapi import install_openapi
from orchestrator.server.routes import (
    documents,
    duplicates,
    ops,
    predict,
    search,
    services,
    train,
)
from orchestrator.server.schemas import describe_errors
from orchestrator.server.services import DEFAULT_SERVICE, ServiceRegistry, ServiceSpec
from orchestrator.server.state import ServerState
from orchestrator.server.watching import start_watching
from orchestrator.settings import Settings

log = logging.getLogger("deeptag.server")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DeeptagError)
    async def deeptag_error(_request: Request, error: DeeptagError) -> JSONResponse:
        # RFC 9110: a 401 names the scheme that would be accepted.
        headers = (
            {"WWW-Authenticate": 'Bearer realm="deeptag"'} if error.http_status == 401 else None
        )
        return JSONResponse(error_response(error), status_code=error.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problem = BadRequest(describe_errors(error.errors()))
        return JSONResponse(error_response(problem), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # Unknown routes, wrong methods: the client's mistake, said in its own words.
        client_side = error.status_code < 500
        body = {
            "status": {
                "code": error.status_code,
                "msg": str(error.detail),
                "dd_code": BadRequest.dd_code if client_side else DeeptagError.dd_code,
                "dd_msg": f"{error.detail}: {request.method} {request.url.path}",
            }
        }
        return JSONResponse(body, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # Whatever slipped through is logged with its traceback, and the client gets a
        # DeepDetect-shaped answer rather than a bare 500 page.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        problem = DeeptagError(f"{type(error).__name__}: {error}")
        return JSONResponse(error_response(problem), status_code=500)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            triton = stack.enter_context(triton_for(settings, every_model=True))
            fetch_http = await stack.enter_async_context(
                build_http_client(settings.fetch_timeout_s)
            )
            sink_http = await stack.enter_async_context(
                httpx.AsyncClient(timeout=settings.sink_timeout_s, trust_env=False)
            )
            reader = SourceReader(
                fetch_http,
                FetchPolicy(
                    max_bytes=settings.max_image_bytes,
                    allow_private=settings.fetch_allow_private,
                    path_roots=tuple(settings.image_roots),
                    max_redirects=settings.fetch_max_redirects,
                ),
                concurrency=settings.fetch_concurrency,
            )
            registry = ServiceRegistry()
            registry.add(ServiceSpec(name=DEFAULT_SERVICE, model=settings.model))
            state = ServerState(
                settings=settings,
                triton=triton,
                reader=reader,
                metrics=Metrics(),
                services=registry,
                sink_http=sink_http,
                exit_stack=stack,
            )
            app.state.deeptag = state
            # Connect now so a missing model is reported at start-up, not on the first call.
            await state.tagger_for(settings.model)
            await state.connect_text_encoder()
            if settings.watch:
                await start_watching(state)
            yield

    app = FastAPI(
        title="deeptag",
        version=__version__,
        lifespan=lifespan,
        # /docs comes from orchestrator.server.docs, with Swagger UI served locally.
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        state: ServerState | None = getattr(request.app.state, "deeptag", None)
        if state is not None:
            state.metrics.requests.labels(route=path, status=str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response

    protected = [Depends(require_api_key)]
    app.include_router(ops.health_router)
    app.include_router(ops.router, dependencies=protected)
    app.include_router(predict.router, dependencies=protected)
    app.include_router(services.router, dependencies=protected)
    app.include_router(search.router, dependencies=protected)
    app.include_router(documents.router, dependencies=protected)
    app.include_router(duplicates.router, dependencies=protected)
    app.include_router(train.router, dependencies=protected)
    # The page and its assets are public; the page asks for the key and sends it itself.
    app.include_router(ui.router)
    app.include_router(docs_router(app))
    install_openapi(app, key_required=settings.api_key is not None)
    return app
