"""Optional API key: when DEEPTAG_API_KEY is set, routes need ``Authorization: Bearer <key>``.

The search page's ``<img>`` and ``<a>`` tags cannot send that header, and a key in their URLs
would end up in access logs, browser history and proxies. So the page sends the key once to
``POST /session`` and gets back an HttpOnly, SameSite=Strict cookie holding an expiring token
signed with HMAC-SHA256. Only ``GET /thumbnails/{id}`` and ``GET /images/{id}`` accept that
cookie: every route that changes something still needs the header, so a cookie a browser
attaches on its own can never index, delete or push anything (no CSRF surface).

The signing secret is derived from the API key rather than drawn at random per process: a
restart or a second replica behind the same key keeps accepting the page's cookie, and changing
the key revokes every cookie at once. The token is ``v1.<expiry>.<signature>``; it carries
neither the key nor anything a key can be recovered from other than by guessing it, which a
long random key (``openssl rand -hex 24``) makes hopeless.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

from fastapi import Request

from orchestrator.errors import Unauthorized
from orchestrator.server.state import server_state

_TOKEN_VERSION = "v1"
#: A cookie longer than this is not ours; it is refused before any parsing.
_MAX_TOKEN_CHARS = 128


def key_matches(expected: str, presented: str | None) -> bool:
    return presented is not None and secrets.compare_digest(expected.encode(), presented.encode())


def bearer_token(request: Request) -> str | None:
    """The credentials of an ``Authorization: Bearer ...`` header, if the request has one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SessionSigner:
    """Issues and checks the page's session tokens for one API key (pure)."""

    secret: bytes

    @classmethod
    def for_key(cls, api_key: str) -> SessionSigner:
        # A purpose-bound derivation, so the key itself never signs anything.
        derived = hmac.new(api_key.encode(), b"deeptag session cookie v1", hashlib.sha256)
        return cls(derived.digest())

    @property
    def cookie_name(self) -> str:
        """Named after the key, so two servers on one host (cookies ignore ports) with
        different keys do not overwrite each other's cookie."""
        tag = hmac.new(self.secret, b"cookie name", hashlib.sha256).hexdigest()[:8]
        return f"deeptag_session_{tag}"

    def _signature(self, expires: int) -> str:
        message = f"{_TOKEN_VERSION}.{expires}".encode()
        return _b64(hmac.new(self.secret, message, hashlib.sha256).digest())

    def issue(self, expires: int) -> str:
        """A token valid until ``expires`` (Unix seconds)."""
        return f"{_TOKEN_VERSION}.{expires}.{self._signature(expires)}"

    def valid(self, token: str, now: float) -> bool:
        if len(token) > _MAX_TOKEN_CHARS:
            return False
        version, _, rest = token.partition(".")
        expires_text, _, signature = rest.partition(".")
        if (
            version != _TOKEN_VERSION
            or not (expires_text.isascii() and expires_text.isdecimal())
            or len(expires_text) > 12
        ):
            return False
        expires = int(expires_text)
        # The signature is checked whatever the expiry, so timing says nothing about either.
        genuine = secrets.compare_digest(signature.encode(), self._signature(expires).encode())
        return genuine and now < expires


def _key_or_none(request: Request) -> str | None:
    api_key = server_state(request).settings.api_key
    return None if api_key is None else api_key.get_secret_value()


async def require_api_key(request: Request) -> None:
    api_key = _key_or_none(request)
    if api_key is None:
        return
    if not key_matches(api_key, bearer_token(request)):
        raise Unauthorized(
            "this server requires 'Authorization: Bearer <API key>' (DEEPTAG_API_KEY)"
        )


async def require_key_or_session(request: Request) -> None:
    """For the image routes the page loads through ``<img>``: the header or the cookie."""
    api_key = _key_or_none(request)
    if api_key is None or key_matches(api_key, bearer_token(request)):
        return
    signer = SessionSigner.for_key(api_key)
    cookie = request.cookies.get(signer.cookie_name)
    if cookie is not None and signer.valid(cookie, time.time()):
        return
    if cookie is not None:
        problem = "the session cookie is invalid or expired: POST /session again"
    elif "key" in request.query_params:
        # Keys in URLs land in logs and browser history; the parameter is gone for good.
        problem = "'?key=' is no longer accepted (URLs end up in logs)"
    else:
        problem = "no credentials"
    raise Unauthorized(
        f"{problem}; send 'Authorization: Bearer <API key>', or the cookie that "
        "POST /session sets (DEEPTAG_API_KEY)"
    )


_KEY_PARAMETER = re.compile(
    r"(?i)([?&;](?:key|api_key|apikey|api-key|access_token|token)=)[^&;#\s\"']*"
)
REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    """Blanks the API key, and any URL parameter that looks like one, in log records.

    Installed on uvicorn's handlers by ``deeptag serve``: the access log writes every URL with
    its query, and a client may still send an old ``?key=`` link.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        super().__init__()
        forms = {form for v in values if v for form in (v, quote(v, safe=""), quote_plus(v))}
        # Longest first, so a form that contains another is replaced whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def clean(self, text: str) -> str:
        text = _KEY_PARAMETER.sub(rf"\1{REDACTED}", text)
        for form in self._forms:
            text = text.replace(form, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.clean(record.msg)
        if isinstance(record.args, tuple):
            # uvicorn's access formatter reads its fields from args: keep them a tuple.
            record.args = tuple(self.clean(a) if isinstance(a, str) else a for a in record.args)
        return True
