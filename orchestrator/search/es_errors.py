"""What an Elasticsearch error means: an outage to wait out, or a refusal, in one line a user
can act on (pure; elasticsearch-py and elastic-transport errors, and bulk items)."""

from __future__ import annotations

from typing import Any

#: Statuses of an overloaded or restarting cluster, not of a bad request or document.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


def is_transient_error(error: Exception) -> bool:
    """A connection failure or timeout, or a status an outage answers with."""
    from elasticsearch import ApiError, ConnectionError, ConnectionTimeout

    if isinstance(error, ConnectionError | ConnectionTimeout):
        return True
    return isinstance(error, ApiError) and error.meta.status in TRANSIENT_STATUSES


def item_is_transient(result: dict[str, Any]) -> bool:
    """One bulk item that failed because the cluster could not take it, not because of it."""
    exception = result.get("exception")
    if isinstance(exception, Exception):
        return is_transient_error(exception)
    return result.get("status") in TRANSIENT_STATUSES


def error_type(error: Any) -> str:
    info = getattr(error, "info", None) or getattr(error, "body", None)
    if isinstance(info, dict):
        inner = info.get("error")
        if isinstance(inner, dict):
            return str(inner.get("type", ""))
    return ""


def describe(error: Exception) -> str:
    """One line a user can act on, from an elasticsearch-py or elastic-transport error."""
    body = getattr(error, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        inner = body["error"]
        causes = inner.get("root_cause") or []
        reason = (causes[0].get("reason") if causes else None) or inner.get("reason")
        return f"{inner.get('type', 'error')}: {reason}"
    message = getattr(error, "message", None) or str(error)
    return f"{type(error).__name__}: {message}"


def describe_item_error(result: dict[str, Any]) -> str:
    error = result.get("error")
    status = result.get("status")
    exception = result.get("exception")
    if isinstance(exception, Exception):
        # The whole bulk call failed (the helper was told not to raise): say why, briefly.
        return f"HTTP {status}: {describe(exception)}"[:500]
    if isinstance(error, dict):
        return f"HTTP {status} {error.get('type', 'error')}: {error.get('reason', '')}"
    return f"HTTP {status}: {error or 'not indexed'}"
