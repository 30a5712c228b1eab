"""Send a rendered output to an HTTP sink (DeepDetect's ``output.network``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from orchestrator.errors import (
    SinkError,
    SinkTimeout,
    SinkUnavailable,
    TemplateError,
    quote_input,
)

BODY_QUOTE_CHARS = 300
# A template written for DeepDetect's bulk example may leave a stray closing brace after the
# last document line; Elasticsearch 8 rejects it, so it is dropped (nothing else is).
_STRAY_CLOSERS = re.compile(r"^[\s}\]]+$")


@dataclass(frozen=True)
class NetworkTarget:
    url: str
    method: Literal["POST", "PUT"]
    content_type: str
    #: Sent only to the configured Elasticsearch: its credentials, never in the URL.
    authorization: str | None = field(default=None, repr=False)

    @property
    def is_bulk(self) -> bool:
        return urlsplit(self.url).path.rstrip("/").endswith("/_bulk")


@dataclass(frozen=True)
class SinkAnswer:
    status: int
    body: Any  # parsed JSON, or the text when it is not JSON
    is_json: bool


def media_type(content_type: str | None, url: str) -> str:
    """``"Content-Type: application/json"`` (DeepDetect's form) or a bare media type (pure)."""
    if content_type:
        value = content_type.split(":", 1)[1] if ":" in content_type else content_type
        if value.strip():
            return value.strip()
    path = urlsplit(url).path.rstrip("/")
    return "application/x-ndjson" if path.endswith("/_bulk") else "application/json"


def normalise_ndjson(text: str) -> str:
    """One JSON document per line, ending with a newline; a bad line is a TemplateError."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and _STRAY_CLOSERS.match(lines[-1]):
        lines.pop()
    for number, line in enumerate(lines, start=1):
        try:
            json.loads(line)
        except json.JSONDecodeError as e:
            raise TemplateError(
                f"the rendered bulk body is not NDJSON: line {number} ({line[:80]!r}) is not "
                f"JSON: {e.msg} at column {e.colno}"
            ) from e
    return "\n".join(lines) + "\n"


def same_origin(url: str, other: str) -> bool:
    """Same scheme, host and port (default ports filled in) (pure)."""

    def origin(value: str) -> tuple[str, str, int | None]:
        parts = urlsplit(value)
        default = {"http": 80, "https": 443}.get(parts.scheme.lower())
        return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default

    return origin(url) == origin(other)


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= BODY_QUOTE_CHARS else text[:BODY_QUOTE_CHARS] + "…"


async def send(http: httpx.AsyncClient, target: NetworkTarget, body: str) -> SinkAnswer:
    """Deliver ``body``; any failure or non-2xx answer is a SinkError quoting the sink.

    No answer in time is a :class:`SinkTimeout` (504): the sink may still be working on it,
    unlike a refused connection or a bad answer (502).
    """
    name = quote_input(target.url)
    try:
        response = await http.request(
            target.method,
            target.url,
            content=body.encode(),
            headers={
                "Content-Type": target.content_type,
                **({"Authorization": target.authorization} if target.authorization else {}),
            },
        )
    except httpx.TimeoutException as e:
        timeout = http.timeout.read
        within = f" within {timeout:g}s (DEEPTAG_SINK_TIMEOUT_S)" if timeout else ""
        raise SinkTimeout(f"sink {name} did not answer{within}") from e
    except httpx.HTTPError as e:
        raise SinkUnavailable(
            f"sink {name} is unreachable: {type(e).__name__}: {quote_input(str(e))}"
        ) from e
    if response.status_code >= 400:
        # A 503 is an outage of the sink, anything else a refusal of this output.
        kind = SinkUnavailable if response.status_code == 503 else SinkError
        raise kind(
            f"sink {name} answered {response.status_code} {response.reason_phrase}: "
            f"{_quote(response.text)}"
        )
    try:
        return SinkAnswer(response.status_code, response.json(), is_json=True)
    except ValueError:
        return SinkAnswer(response.status_code, response.text, is_json=False)
