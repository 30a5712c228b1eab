"""The search page: ``/``, its static files, and the thumbnails and originals of indexed images.

These routes are public (the page asks for the API key and sends it itself), except
``/thumbnails/{id}`` and ``/images/{id}``: ``<img>`` and ``<a>`` cannot send headers, so besides
``Authorization: Bearer`` they accept the signed cookie ``POST /session`` sets, and the key
never goes in a URL (see :mod:`orchestrator.server.auth`).
Which files those two may read is decided by the index, not by ``DEEPTAG_IMAGE_ROOTS``: see
:mod:`orchestrator.server.thumbnails`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import DocumentNotFound
from orchestrator.search.base import ImageDocument, is_document_id
from orchestrator.server.auth import SessionSigner, require_api_key, require_key_or_session
from orchestrator.server.openapi import TEXT, described, described_files
from orchestrator.server.response_models import SessionResponse
from orchestrator.server.state import ServerState, State
from orchestrator.server.thumbnails import (
    MEDIA_TYPES,
    THUMBNAIL_SIZE,
    IndexedImages,
    display_name,
    viewable,
)

router = APIRouter()

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: Only these files are served from the static folder, with these types.
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_STATIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# The page talks to this server only; an example image searched by URL is previewed from
# wherever it lives.
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob: http: https:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}
# An image's bytes never change under its id, but whether it may still be shown does (the
# document or its file may be gone): browsers keep it and ask again each time, and a 304
# answers when nothing changed. "private": only the user it was shown to may keep it.
_IMAGE_HEADERS = {
    "Cache-Control": "private, no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Opened in a tab of its own, an image must not run anything.
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
    "sandbox",
}


def _static(name: str) -> FileResponse:
    content_type = _CONTENT_TYPES.get(Path(name).suffix.lower())
    if not _STATIC_NAME.match(name) or content_type is None:
        raise StarletteHTTPException(404, "Not Found")
    path = (STATIC_DIR / name).resolve()
    if path.parent != STATIC_DIR or not path.is_file():
        raise StarletteHTTPException(404, "Not Found")
    headers = _PAGE_HEADERS if name == "index.html" else {"Cache-Control": "no-cache"}
    return FileResponse(path, media_type=content_type, headers=headers)


@router.get(
    "/",
    response_class=HTMLResponse,
    **described(ok_description="The search page.", content={"text/html": TEXT}),
)
async def page() -> FileResponse:
    return _static("index.html")


@router.get(
    "/static/{name}",
    response_class=Response,
    **described_files("A file of the search page.", _CONTENT_TYPES.values()),
)
async def static_file(name: str) -> FileResponse:
    # ``{name}`` never matches a "/", and _static only serves plain files of the folder.
    return _static(name)


def _session_answer(session: bool, expires_in_s: int | None) -> dict[str, Any]:
    return {
        "status": {"code": 200, "msg": "OK"},
        "head": {"method": "/session"},
        "body": {"session": session, "expires_in_s": expires_in_s},
    }


@router.post("/session", dependencies=[Depends(require_api_key)], **described(ok=SessionResponse))
async def open_session(request: Request, state: State) -> JSONResponse:
    """Trade ``Authorization: Bearer <API key>`` for a cookie the page's images are sent with.

    The cookie is HttpOnly (page scripts cannot read it), SameSite=Strict (other sites cannot
    make the browser send it) and only opens ``GET /thumbnails/{id}`` and ``GET /images/{id}``.
    Without DEEPTAG_API_KEY no cookie is needed and none is set.
    """
    api_key = state.settings.api_key
    if api_key is None:
        return JSONResponse(_session_answer(False, None))
    ttl = state.settings.session_ttl_s
    signer = SessionSigner.for_key(api_key.get_secret_value())
    response = JSONResponse(_session_answer(True, ttl), headers={"Cache-Control": "no-store"})
    response.set_cookie(
        signer.cookie_name,
        signer.issue(int(time.time()) + ttl),
        max_age=ttl,
        path="/",
        # Plain-http servers (a laptop, a LAN box) would never get a Secure cookie back.
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.delete("/session", **described(ok=SessionResponse))
async def close_session(state: State) -> JSONResponse:
    """Forget the page's cookie (the page's "Forget API key"); needs no key to log out."""
    response = JSONResponse(_session_answer(False, None), headers={"Cache-Control": "no-store"})
    api_key = state.settings.api_key
    if api_key is not None:
        name = SessionSigner.for_key(api_key.get_secret_value()).cookie_name
        response.delete_cookie(name, path="/", httponly=True, samesite="strict")
    return response


def _images(state: ServerState) -> IndexedImages:
    settings = state.settings
    return IndexedImages(
        reader=state.reader,
        cache_dir=settings.data_dir / "thumbnails",
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
    )


async def _indexed(state: ServerState, doc_id: str) -> ImageDocument:
    if not is_document_id(doc_id):
        raise DocumentNotFound(f"no indexed image has id {doc_id[:80]!r}")
    backend = await state.get_backend()
    document = await backend.get(doc_id)
    if document is None:
        raise DocumentNotFound(f"no indexed image has id {doc_id}")
    return document


def _image_response(request: Request, body: bytes, media: str, etag: str, **extra: str) -> Response:
    headers = {**_IMAGE_HEADERS, "ETag": etag, **extra}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media, headers=headers)


_IMAGE_AUTH = [Depends(require_key_or_session)]


def _image_docs(description: str, kinds: Iterable[str], errors: Iterable[int]) -> dict[str, Any]:
    etag = {"required": True, "description": "Send it back as If-None-Match.", "schema": TEXT}
    return described(
        ok_description=description,
        content={kind: {"schema": {"type": "string", "format": "binary"}} for kind in kinds},
        headers={"ETag": etag},
        more={304: {"description": "Not modified (If-None-Match).", "headers": {"ETag": etag}}},
        errors=errors,
    ) | {"response_class": Response}


@router.get(
    "/thumbnails/{doc_id}",
    response_model=None,
    dependencies=_IMAGE_AUTH,
    **_image_docs("A JPEG thumbnail.", ["image/jpeg"], (403, 404, 413, 415, 422, 502)),
)
async def thumbnail(doc_id: str, request: Request, state: State) -> Response:
    """A JPEG of at most 320 px of indexed image ``doc_id``: its file or URL, still unchanged."""
    document = await _indexed(state, doc_id)
    jpeg = await _images(state).thumbnail(document)
    return _image_response(request, jpeg, "image/jpeg", f'"{doc_id}-{THUMBNAIL_SIZE}"')


@router.get(
    "/images/{doc_id}",
    response_model=None,
    dependencies=_IMAGE_AUTH,
    **_image_docs("The original image.", MEDIA_TYPES.values(), (403, 404, 413, 415, 502)),
)
async def image(doc_id: str, request: Request, state: State) -> Response:
    """Indexed image ``doc_id`` itself, read from its file or URL and checked against its id."""
    document = await _indexed(state, doc_id)
    data = await _images(state).original(document)
    shown, media = await asyncio.to_thread(
        viewable, document, data, state.settings.max_image_pixels
    )
    # RFC 5987 form, so any file name survives the header; "inline" so it opens in the tab.
    disposition = f"inline; filename*=UTF-8''{quote(display_name(document.uri), safe='')}"
    return _image_response(
        request,
        shown,
        media,
        f'"{doc_id}"',
        **{"Content-Disposition": disposition},
    )
