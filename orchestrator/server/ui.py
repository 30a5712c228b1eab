"""The search page: ``/``, its static files, and thumbnails of indexed local images.

These routes are public (the page asks for the API key and sends it itself), except
``/thumbnails/{id}``, which checks the key here: ``<img>`` cannot send headers, so the key is
accepted as ``?key=`` as well as ``Authorization: Bearer``.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import (
    CorruptImage,
    DocumentNotFound,
    Forbidden,
    ImageTooLarge,
    NotAnImage,
    Unauthorized,
)
from orchestrator.server.auth import key_matches
from orchestrator.server.state import ServerState, State

router = APIRouter()

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: Longest side of a thumbnail, in pixels.
THUMBNAIL_SIZE = 320
THUMBNAIL_QUALITY = 82

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
_DOC_ID = re.compile(r"^[0-9a-f]{64}$")

# The page talks to this server only; thumbnails of remote documents come from anywhere.
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob: http: https:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}
# Thumbnails are named by the SHA-256 of the image, so they never change; "private" because
# the URL may carry the API key.
_THUMBNAIL_CACHE_CONTROL = "private, max-age=604800, immutable"


def _static(name: str) -> FileResponse:
    content_type = _CONTENT_TYPES.get(Path(name).suffix.lower())
    if not _STATIC_NAME.match(name) or content_type is None:
        raise StarletteHTTPException(404, "Not Found")
    path = (STATIC_DIR / name).resolve()
    if path.parent != STATIC_DIR or not path.is_file():
        raise StarletteHTTPException(404, "Not Found")
    headers = _PAGE_HEADERS if name == "index.html" else {"Cache-Control": "no-cache"}
    return FileResponse(path, media_type=content_type, headers=headers)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return _static("index.html")


@router.get("/static/{name}", include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    # ``{name}`` never matches a "/", and _static only serves plain files of the folder.
    return _static(name)


def _check_key(request: Request, state: ServerState, key: str | None) -> None:
    api_key = state.settings.api_key
    if api_key is None:
        return
    expected = api_key.get_secret_value()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and key_matches(expected, token.strip()):
        return
    if key_matches(expected, key):
        return
    raise Unauthorized(
        "this server requires 'Authorization: Bearer <API key>' or '?key=<API key>' "
        "(DEEPTAG_API_KEY)"
    )


def allowed_roots(state: ServerState) -> list[Path]:
    """Folders whose files may be shown: the image roots and where /index keeps uploads."""
    roots = [*state.settings.image_roots, state.settings.data_dir / "uploads"]
    return [root.expanduser().resolve() for root in roots]


def local_file(uri: str, roots: list[Path]) -> Path:
    """The real path of a document's file, refused (403) unless it lies under a root."""
    resolved = Path(uri).expanduser().resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise Forbidden(
            f"{uri}: thumbnails are only served for files under the configured image roots "
            "(DEEPTAG_IMAGE_ROOTS) and uploads"
        )
    return resolved


def render_thumbnail(source: Path, max_pixels: int, max_bytes: int) -> bytes:
    """An upright RGB JPEG whose longest side is at most THUMBNAIL_SIZE (CPU-bound)."""
    try:
        size = source.stat().st_size
    except OSError as e:
        raise DocumentNotFound(f"{source}: the indexed file is gone ({e.strerror})") from e
    if not source.is_file():
        raise DocumentNotFound(f"{source}: not a file")
    if size > max_bytes:
        raise ImageTooLarge(f"{source}: {size} bytes, over the {max_bytes} byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise ImageTooLarge(
                        f"{source}: {width}x{height} is over the {max_pixels} pixel limit"
                    )
                # JPEGs decode at a fraction of their size when that is all we need.
                opened.draft("RGB", (THUMBNAIL_SIZE * 2, THUMBNAIL_SIZE * 2))
                opened.load()
                try:
                    image = ImageOps.exif_transpose(opened)
                except (OSError, SyntaxError, ValueError, KeyError, TypeError):
                    image = opened
                image = image.convert("RGB")
                image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
                out = io.BytesIO()
                image.save(out, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
                return out.getvalue()
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"{source}: {e}") from e
    except UnidentifiedImageError as e:
        raise NotAnImage(f"{source}: not a decodable image") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptImage(f"{source}: corrupt or truncated image: {e}") from e


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".jpg")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@router.get("/thumbnails/{doc_id}", response_model=None)
async def thumbnail(
    doc_id: str,
    request: Request,
    state: State,
    key: Annotated[str | None, Query(description="The API key, for <img> tags")] = None,
) -> Response:
    _check_key(request, state, key)
    if not _DOC_ID.match(doc_id):
        raise DocumentNotFound(f"no indexed image has id {doc_id!r}")
    backend = await state.get_backend()
    document = await backend.get(doc_id)
    if document is None:
        raise DocumentNotFound(f"no indexed image has id {doc_id}")
    if document.uri.startswith(("http://", "https://")):
        # Remote images are shown from where they live (the hit's "thumbnail" says so).
        return RedirectResponse(document.uri, status_code=307)
    # Checked on every call, cached or not: the roots may have changed since.
    source = local_file(document.uri, allowed_roots(state))
    cached = state.settings.data_dir / "thumbnails" / f"{doc_id}-{THUMBNAIL_SIZE}.jpg"
    if not cached.is_file():
        settings = state.settings
        data = await run_in_threadpool(
            render_thumbnail, source, settings.max_image_pixels, settings.max_image_bytes
        )
        await run_in_threadpool(_write_atomically, cached, data)
    return FileResponse(
        cached,
        media_type="image/jpeg",
        headers={"Cache-Control": _THUMBNAIL_CACHE_CONTROL, "X-Content-Type-Options": "nosniff"},
    )
