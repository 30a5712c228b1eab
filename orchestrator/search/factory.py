"""Open the search backend the settings (or a ``--sink`` option) ask for."""

from __future__ import annotations

from orchestrator.errors import ConfigError
from orchestrator.retry import NO_RETRY, RetryPolicy, Waiting, not_waiting
from orchestrator.search.base import BackendKind, SearchBackend
from orchestrator.search.outages import OutageTolerantBackend
from orchestrator.settings import Settings


async def open_backend(
    settings: Settings,
    kind: BackendKind | None = None,
    *,
    writer: bool = False,
    retry: RetryPolicy = NO_RETRY,
    on_wait: Waiting = not_waiting,
) -> SearchBackend:
    """The backend, with its index created when missing.

    ``writer`` matters for the embedded index only: the caller holds its single-writer lock
    until ``close()`` (``deeptag index``); otherwise each ``index()`` call takes it briefly.
    With a ``retry`` window, calls that meet an outage of Elasticsearch wait and retry
    (the embedded index is a local file: nothing to wait for).
    """
    chosen = kind or settings.resolved_search_backend
    if chosen == "es":
        if not settings.es_url:
            raise ConfigError(
                "the Elasticsearch sink needs a URL: set DEEPTAG_ES_URL (e.g. http://localhost:9200)"
            )
        from orchestrator.search.elasticsearch import ElasticsearchBackend

        backend: SearchBackend = ElasticsearchBackend.from_settings(settings)
        if retry.window_s > 0:
            backend = OutageTolerantBackend(backend, retry, on_wait)
    else:
        from orchestrator.search.embedded import EmbeddedIndex

        backend = await EmbeddedIndex.open(settings.embedded_index_dir, writer=writer)
    try:
        await backend.ensure_index()
    except BaseException:
        await backend.close()
        raise
    return backend
