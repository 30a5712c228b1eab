"""The image an indexed document names, read only while it is still the image that was indexed.

The index is the allow-list: ``/thumbnails/{id}`` and ``/images/{id}`` read the local file or
fetch the URL that document ``id`` stores, and nothing else. The id is the SHA-256 of the bytes
that were indexed and every read is checked against it, so a document cannot serve a file whose
content its writer did not already know, and a file replaced since indexing is reported instead
of shown under the old labels. URLs are fetched by the server's reader, under its fetch policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import stat
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from PIL import Image

from orchestrator.errors import (
    CorruptImage,
    DocumentNotFound,
    FetchFailed,
    Forbidden,
    ImageTooLarge,
    NotAnImage,
    quote_input,
)
from orchestrator.fetch import SourceReader
from orchestrator.files import write_atomically
from orchestrator.formats import BROWSER_MEDIA_TYPES, browser_image, open_image, upright_rgb
from orchestrator.netguard import check_fetch_url
from orchestrator.search.base import ImageDocument
from orchestrator.types import ImageSource, SourceKind

#: Longest side of a thumbnail, in pixels.
THUMBNAIL_SIZE = 320
THUMBNAIL_QUALITY = 82

#: What ``/images/{id}`` may answer: formats browsers show as they are, and JPEG for the rest.
MEDIA_TYPES = dict(BROWSER_MEDIA_TYPES)


def is_remote(uri: str) -> bool:
    return uri[:8].lower().startswith(("http://", "https://"))


def display_name(uri: str) -> str:
    """The file name of a path, or the last segment of a URL (its host when it has none)."""
    if is_remote(uri):
        parts = urlsplit(uri)
        tail = unquote(PurePosixPath(parts.path).name)
        return tail or parts.hostname or uri
    return Path(uri).name or uri


@dataclass(frozen=True)
class FileStamp:
    """What ``stat`` said about a file when its bytes were hashed and matched the document.

    While the stamp is unchanged the file is taken to be unchanged, so a cached thumbnail is
    served without hashing the original again; a rewrite that keeps size, mtime and inode alike
    (a deliberate ``touch -d``) is the one change this misses until the cache is cleared.
    """

    uri: str
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, uri: str, info: os.stat_result) -> FileStamp:
        return cls(uri, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _changed(document: ImageDocument, where: str) -> DocumentNotFound:
    return DocumentNotFound(
        f"{quote_input(document.uri)}: the {where} changed since it was indexed "
        "(its SHA-256 no longer matches)"
    )


def check_digest(document: ImageDocument, data: bytes, where: str) -> None:
    if hashlib.sha256(data).hexdigest() != document.id:
        raise _changed(document, where)


def _local_path(document: ImageDocument) -> Path:
    return Path(document.uri).expanduser()


def stat_local(document: ImageDocument) -> os.stat_result:
    """The status of a local document's file (blocking); a clear 404 when it is gone."""
    name = quote_input(document.uri)
    try:
        info = _local_path(document).stat()
    except RuntimeError as e:  # "~someone" whose home is unknown
        raise DocumentNotFound(f"{name}: the indexed file cannot be found ({e})") from e
    except FileNotFoundError as e:
        raise DocumentNotFound(f"{name}: the indexed file is gone") from e
    except PermissionError as e:
        raise Forbidden(f"{name}: the indexed file cannot be read (permission denied)") from e
    except (OSError, ValueError) as e:
        raise DocumentNotFound(f"{name}: the indexed file cannot be read ({e})") from e
    if not stat.S_ISREG(info.st_mode):
        raise DocumentNotFound(f"{name}: the indexed file is no longer a plain file")
    return info


def read_local(document: ImageDocument, max_bytes: int) -> tuple[bytes, FileStamp]:
    """The bytes of a local document's file, checked against its id (blocking)."""
    name = quote_input(document.uri)
    info = stat_local(document)
    if info.st_size > max_bytes:
        raise ImageTooLarge(f"{name}: {info.st_size} bytes, over the {max_bytes} byte limit")
    try:
        with _local_path(document).open("rb") as file:
            # The stamp describes the file that was read, even if the path moves meanwhile.
            opened = os.fstat(file.fileno())
            data = file.read(max_bytes + 1)
    except FileNotFoundError as e:
        raise DocumentNotFound(f"{name}: the indexed file is gone") from e
    except PermissionError as e:
        raise Forbidden(f"{name}: the indexed file cannot be read (permission denied)") from e
    except OSError as e:
        raise DocumentNotFound(f"{name}: the indexed file cannot be read ({e.strerror})") from e
    if len(data) > max_bytes:
        raise ImageTooLarge(f"{name}: over the {max_bytes} byte limit")
    check_digest(document, data, "file")
    return data, FileStamp.of(document.uri, opened)


def render_thumbnail(data: bytes, name: str, max_pixels: int) -> bytes:
    """An upright RGB JPEG whose longest side is at most THUMBNAIL_SIZE (CPU-bound).

    Any format deeptag indexes (HEIC and RAW previews included) becomes a JPEG a browser shows.
    """
    shown = quote_input(name)
    opened = open_image(data, name, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with opened.image as image:
                # JPEGs decode at a fraction of their size when that is all we need.
                if image.format == "JPEG":
                    image.draft("RGB", (THUMBNAIL_SIZE * 2, THUMBNAIL_SIZE * 2))
                image.load()
                rgb = upright_rgb(image)
                rgb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
                out = io.BytesIO()
                rgb.save(out, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
                return out.getvalue()
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"{shown}: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptImage(f"{shown}: corrupt or truncated image: {e}") from e


def viewable(document: ImageDocument, data: bytes, max_pixels: int) -> tuple[bytes, str]:
    """The original as a browser can show it, and its Content-Type (CPU-bound): the bytes as
    they are for JPEG, PNG, GIF, WebP, BMP and AVIF, an upright JPEG for HEIC, RAW and TIFF."""
    try:
        return browser_image(data, document.uri, max_pixels)
    except NotAnImage as e:
        raise NotAnImage(f"{quote_input(document.uri)}: not an image a browser can show") from e


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


@dataclass(frozen=True)
class IndexedImages:
    """Reads the images documents name and keeps their thumbnails under ``cache_dir``.

    Thumbnails are named by document id, which is the SHA-256 of the image, so a cached one
    is right for every file that still matches the document.
    """

    reader: SourceReader
    cache_dir: Path
    max_bytes: int
    max_pixels: int

    def thumbnail_path(self, doc_id: str) -> Path:
        return self.cache_dir / f"{doc_id}-{THUMBNAIL_SIZE}.jpg"

    def _stamp_path(self, doc_id: str) -> Path:
        return self.cache_dir / f"{doc_id}.stamp.json"

    async def original(self, document: ImageDocument) -> bytes:
        """The image's own bytes, as they were indexed."""
        if is_remote(document.uri):
            return await self._fetch(document)
        data, _ = await asyncio.to_thread(read_local, document, self.max_bytes)
        return data

    async def thumbnail(self, document: ImageDocument) -> bytes:
        """A JPEG thumbnail, from the cache when the original is known to be unchanged."""
        if not is_remote(document.uri):
            return await asyncio.to_thread(self._local_thumbnail, document)
        cached = await asyncio.to_thread(_read_or_none, self.thumbnail_path(document.id))
        if cached is not None:
            # The policy may have changed since the thumbnail was made: ask it again. A host
            # that does not resolve now (offline) is not a refusal.
            with contextlib.suppress(FetchFailed):
                await check_fetch_url(document.uri, self.reader.policy.allow_private)
            return cached
        data = await self._fetch(document)
        return await asyncio.to_thread(self._render_and_store, document, data)

    async def _fetch(self, document: ImageDocument) -> bytes:
        source = ImageSource(uri=document.uri, kind=SourceKind.URL, location=document.uri)
        data = (await self.reader.read(source)).data
        check_digest(document, data, "image at this URL")
        return data

    def _local_thumbnail(self, document: ImageDocument) -> bytes:
        info = stat_local(document)
        stamp_path = self._stamp_path(document.id)
        cached = _read_or_none(self.thumbnail_path(document.id))
        if cached is not None and self._stamp(stamp_path) == FileStamp.of(document.uri, info):
            return cached
        data, stamp = read_local(document, self.max_bytes)
        write_atomically(stamp_path, json.dumps(asdict(stamp)).encode())
        if cached is not None:
            return cached
        return self._render_and_store(document, data)

    def _render_and_store(self, document: ImageDocument, data: bytes) -> bytes:
        jpeg = render_thumbnail(data, document.uri, self.max_pixels)
        write_atomically(self.thumbnail_path(document.id), jpeg)
        return jpeg

    @staticmethod
    def _stamp(path: Path) -> FileStamp | None:
        raw = _read_or_none(path)
        if raw is None:
            return None
        try:
            return FileStamp(**json.loads(raw))
        except (ValueError, TypeError):
            return None  # unreadable: hash the file again
