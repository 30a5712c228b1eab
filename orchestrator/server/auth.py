"""Optional API key: when DEEPTAG_API_KEY is set, routes need ``Authorization: Bearer <key>``."""

from __future__ import annotations

import secrets

from fastapi import Request

from orchestrator.errors import Unauthorized
from orchestrator.server.state import server_state


def key_matches(expected: str, presented: str | None) -> bool:
    return presented is not None and secrets.compare_digest(expected.encode(), presented.encode())


async def require_api_key(request: Request) -> None:
    api_key = server_state(request).settings.api_key
    if api_key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key_matches(api_key.get_secret_value(), token.strip()):
        raise Unauthorized(
            "this server requires 'Authorization: Bearer <API key>' (DEEPTAG_API_KEY)"
        )
