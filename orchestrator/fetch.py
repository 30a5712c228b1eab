"""Read the bytes of an image source: a URL (httpx, streamed, bounded), a file or base64."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from orchestrator import netguard
from orchestrator.errors import (
    FetchFailed,
    ImageTooLarge,
    ItemError,
    NotAnImage,
    SourceNotFound,
    SourceRefused,
    quote_input,
)
from orchestrator.sources import decode_base64, is_under, looks_like_image, name_of
from orchestrator.types import ImageBytes, ImageSource, SourceKind

USER_AGENT = "deeptag/0.1 (+image tagging; https://pypi.org/project/deeptag/)"


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int
    allow_private: bool = False
    #: Folders a path source must lie under; None lets any path through (the CLI's own user).
    path_roots: tuple[Path, ...] | None = None
    max_redirects: int = 5


class SourceReader:
    """Reads sources with bounded concurrency; a failure is raised as an :class:`ItemError`."""

    def __init__(self, http: httpx.AsyncClient, policy: FetchPolicy, concurrency: int = 16) -> None:
        self.http = http
        self.policy = policy
        self._slots = asyncio.Semaphore(concurrency)

    async def read(self, source: ImageSource) -> ImageBytes:
        async with self._slots:
            seen: os.stat_result | None = None
            if source.kind is SourceKind.URL:
                data = await self._read_url(source.location)
            elif source.kind is SourceKind.PATH:
                data, seen = await asyncio.to_thread(self._read_path, source.location)
            else:
                data = self._read_base64(source)
        if not data:
            raise NotAnImage(f"{name_of(source)}: empty content, not an image")
        if not looks_like_image(data):
            raise NotAnImage(
                f"{name_of(source)}: content is not an image (JPEG, PNG, GIF, BMP, TIFF, WebP, "
                "HEIC, AVIF or camera RAW); "
                f"it starts with {data[:12]!r}"
            )
        if seen is None:
            return ImageBytes(source=source, data=data)
        return ImageBytes(source, data, seen.st_size, seen.st_mtime)

    def _read_base64(self, source: ImageSource) -> bytes:
        if len(source.location) * 3 // 4 > self.policy.max_bytes:
            raise ImageTooLarge(
                f"base64 input {name_of(source)}: over the {self.policy.max_bytes} byte limit"
            )
        try:
            return decode_base64(source.location)
        except ValueError as e:
            raise NotAnImage(f"base64 input {name_of(source)}: {e}") from e

    def _read_path(self, location: str) -> tuple[bytes, os.stat_result]:
        """The file's bytes, and its status from the open file that gave them (not a second
        lookup by name, which a rename in between would make describe another file)."""
        path = Path(location).expanduser()
        # Only the name goes into errors: a path can be thousands of characters.
        name = quote_input(location)
        roots = self.policy.path_roots
        if roots is not None and not is_under(path.resolve(), roots):
            raise SourceRefused(
                f"{name}: local paths are only read under the configured image roots "
                "(DEEPTAG_IMAGE_ROOTS)"
            )
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise SourceNotFound(f"{name}: not a file")
            if size > self.policy.max_bytes:
                raise ImageTooLarge(
                    f"{name}: {size} bytes, over the {self.policy.max_bytes} byte limit"
                )
            with path.open("rb") as file:
                return file.read(), os.fstat(file.fileno())
        except FileNotFoundError as e:
            raise SourceNotFound(f"{name}: no such file") from e
        except PermissionError as e:
            raise SourceRefused(f"{name}: permission denied") from e
        except IsADirectoryError as e:
            raise SourceNotFound(f"{name}: is a directory") from e
        except OSError as e:
            raise FetchFailed(f"{name}: cannot read: {e.strerror or e}") from e

    async def _read_url(self, location: str) -> bytes:
        current = location
        url = quote_input(location)  # how errors name it
        # Redirects are followed by hand so every hop's address is checked, not just the first.
        for _ in range(self.policy.max_redirects + 1):
            await netguard.check_fetch_url(current, self.policy.allow_private)
            try:
                async with self.http.stream("GET", current) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchFailed(f"{url}: redirect without a Location header")
                        current = urljoin(current, location)
                        continue
                    if response.status_code == 404:
                        raise SourceNotFound(f"{url}: HTTP 404 Not Found")
                    if response.status_code >= 400:
                        raise FetchFailed(
                            f"{url}: HTTP {response.status_code} {response.reason_phrase}"
                        )
                    return await self._read_body(url, response)
            except ItemError:
                raise
            except httpx.TimeoutException as e:
                raise FetchFailed(f"{url}: timed out") from e
            except httpx.HTTPError as e:
                raise FetchFailed(f"{url}: {type(e).__name__}: {quote_input(str(e))}") from e
        raise FetchFailed(f"{url}: more than {self.policy.max_redirects} redirects")

    async def _read_body(self, url: str, response: httpx.Response) -> bytes:
        """Read at most the byte limit of ``response``; ``url`` names it in errors."""
        declared = response.headers.get("content-length")
        if declared and declared.isdecimal() and int(declared) > self.policy.max_bytes:
            raise ImageTooLarge(
                f"{url}: {declared} bytes declared, over the {self.policy.max_bytes} byte limit"
            )
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > self.policy.max_bytes:
                raise ImageTooLarge(f"{url}: over the {self.policy.max_bytes} byte limit")
            chunks.append(chunk)
        return b"".join(chunks)


def build_http_client(timeout_s: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        # The environment's proxies would bypass the address checks above.
        trust_env=False,
    )
