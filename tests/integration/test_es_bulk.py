"""Bulk indexing against an Elasticsearch that pushes back: 429s and rejected documents.

noida-db never answers 429, so a small real HTTP server plays an overloaded cluster here.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.search.base import Category, ImageDocument, IndexResult
from orchestrator.search.elasticsearch import ElasticsearchBackend

pytestmark = pytest.mark.integration


class Cluster:
    def __init__(self) -> None:
        self.bulk_calls: list[list[str]] = []  # the ids each _bulk call carried
        self.throttled: set[str] = set()
        self.authorizations: list[str | None] = []


@pytest.fixture
def overloaded_es() -> Iterator[tuple[str, Cluster]]:
    """Answers each document's first bulk attempt with 429, and rejects ids starting 'bad'."""
    cluster = Cluster()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: object | None = None) -> None:
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_HEAD(self) -> None:
            cluster.authorizations.append(self.headers.get("Authorization"))
            self._answer(200)

        def do_GET(self) -> None:
            # The index "exists" (HEAD answers 200): its mapping already has every field.
            if self.path.split("?")[0].endswith("/_mapping"):
                properties = {"custom": {"type": "object"}}
                self._answer(200, {"images": {"mappings": {"properties": properties}}})
            else:
                self._answer(404, {"error": {"type": "not_found"}, "status": 404})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not self.path.startswith("/_bulk"):
                self._answer(200, {"_shards": {"total": 1, "successful": 1, "failed": 0}})
                return
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            ids = [line["index"]["_id"] for line in lines[::2]]
            cluster.bulk_calls.append(ids)
            items = []
            for doc_id in ids:
                if doc_id not in cluster.throttled:
                    cluster.throttled.add(doc_id)
                    status, error = 429, {"type": "es_rejected_execution_exception"}
                elif doc_id.startswith("bad"):
                    status, error = (
                        400,
                        {
                            "type": "mapper_parsing_exception",
                            "reason": "failed to parse field [width]",
                        },
                    )
                else:
                    status, error = 201, None
                item = {"_index": "images", "_id": doc_id, "status": status}
                if error:
                    item["error"] = error
                items.append({"index": item})
            self._answer(200, {"took": 1, "errors": True, "items": items})

        do_PUT = do_POST

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", cluster
    finally:
        server.shutdown()
        server.server_close()


def document(doc_id: str) -> ImageDocument:
    return ImageDocument(
        id=doc_id,
        uri=f"/photos/{doc_id}.jpg",
        categories=(Category("n07920052 espresso", 0.9),),
        tags=("espresso",),
        embedding=None,
        width=10,
        height=10,
        model="efficientnet_lite0/1",
        indexed_at="2026-11-25T00:00:00Z",
    )


def bulk(url: str, ids: list[str], max_retries: int) -> list[IndexResult]:
    from elasticsearch import AsyncElasticsearch

    async def main() -> list[IndexResult]:
        backend = ElasticsearchBackend(
            AsyncElasticsearch(url),
            "images",
            url=url,
            chunk_size=3,
            max_retries=max_retries,
            initial_backoff_s=0.01,
        )
        try:
            return [result async for result in backend.index([document(i) for i in ids])]
        finally:
            await backend.close()

    return asyncio.run(main())


def test_429s_are_retried_and_every_rejected_document_is_reported(
    overloaded_es: tuple[str, Cluster],
) -> None:
    url, cluster = overloaded_es
    ids = ["good1", "bad1", "good2", "bad2", "good3"]

    results = bulk(url, ids, max_retries=3)

    by_id = {r.id: r for r in results}
    assert sorted(by_id) == sorted(ids)  # one result per document, none lost
    assert [i for i in ids if by_id[i].ok] == ["good1", "good2", "good3"]
    for bad in ("bad1", "bad2"):
        assert (
            by_id[bad].error == "HTTP 400 mapper_parsing_exception: failed to parse field [width]"
        )
        assert by_id[bad].uri == f"/photos/{bad}.jpg"
    # Each chunk went out once, then its throttled documents were sent again.
    assert len(cluster.bulk_calls) == 4


def test_without_retries_429s_are_failures_not_successes(
    overloaded_es: tuple[str, Cluster],
) -> None:
    url, _ = overloaded_es
    results = bulk(url, ["good1", "good2"], max_retries=0)
    assert [r.ok for r in results] == [False, False]
    assert all("429" in (r.error or "") for r in results)


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ({"es_api_key": "a2V5OnNlY3JldA=="}, "ApiKey a2V5OnNlY3JldA=="),
        ({"es_username": "elastic", "es_password": "changeme"}, "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="),
        ({}, None),
    ],
)
def test_credentials_from_settings_reach_elasticsearch(
    overloaded_es: tuple[str, Cluster], credentials: dict[str, str], expected: str | None
) -> None:
    from orchestrator.settings import Settings

    url, cluster = overloaded_es

    async def main() -> None:
        backend = ElasticsearchBackend.from_settings(Settings(es_url=url, **credentials))
        try:
            await backend.ensure_index()
        finally:
            await backend.close()

    asyncio.run(main())
    assert cluster.authorizations == [expected]
