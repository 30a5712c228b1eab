"""``/docs``: Swagger UI served from the installed package, so it works offline.

FastAPI's default page loads Swagger UI from a CDN and shows a blank page without one. The
``fastapi-offline`` wheel ships Swagger UI 5 (which reads FastAPI's OpenAPI 3.1 schema; the
4.x bundles of other packages cannot), and its files are served here under ``/docs/assets``.
Like the OpenAPI schema it reads, the page is public.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.server.openapi import TEXT, described, described_files

DOCS_PATH = "/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"

#: The only files served, with their types; everything else under /docs/assets is a 404.
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def _policy(html: str) -> str:
    """A CSP that runs only this page's own inline script and same-origin files.

    Swagger UI styles its elements inline and draws icons from ``data:`` URIs; "try it out"
    calls this server only. The inline script that starts Swagger UI is allowed by its hash.
    """
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )


def docs_router(app: FastAPI) -> APIRouter:
    """The page and its assets, for an app created with ``docs_url=None``."""
    router = APIRouter()
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        oauth2_redirect_url=None,
        # Swagger UI would otherwise send the schema to an online validator for its badge.
        swagger_ui_parameters={"validatorUrl": None},
    ).body
    html = bytes(page).decode()
    headers = {
        "Content-Security-Policy": _policy(html),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    folder = assets_dir()

    @router.get(
        DOCS_PATH,
        response_class=HTMLResponse,
        **described(ok_description="Swagger UI.", content={"text/html": TEXT}),
    )
    async def docs_page() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    @router.get(
        f"{ASSETS_PATH}/{{name}}",
        response_class=Response,
        **described_files("A file of Swagger UI.", _ASSETS.values()),
    )
    async def docs_asset(name: str) -> FileResponse:
        content_type = _ASSETS.get(name)
        if content_type is None:
            raise StarletteHTTPException(404, "Not Found")
        return FileResponse(
            folder / name,
            media_type=content_type,
            # The files change only with the installed package; revalidating is cheap.
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    return router
