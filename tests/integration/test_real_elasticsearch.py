"""What only a real Elasticsearch does (the emulator used otherwise does not): run with
DEEPTAG_ES_URL=http://localhost:9200 (for example from `docker compose up elasticsearch`)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from orchestrator.settings import Settings
from orchestrator.triton.launcher import LocalTriton
from tests.conftest import MODEL_REPOSITORY
from tests.search_support import index_paths, with_backend

pytestmark = [
    pytest.mark.integration,
    pytest.mark.real_es,
    pytest.mark.skipif(
        not os.environ.get("DEEPTAG_ES_URL"),
        reason="needs a real Elasticsearch: set DEEPTAG_ES_URL (docker compose up elasticsearch)",
    ),
]


@pytest.fixture(scope="module")
def settings(
    triton: LocalTriton, samples: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    settings = Settings(
        triton_url=triton.http_url,
        model_repository=MODEL_REPOSITORY,
        data_dir=tmp_path_factory.mktemp("real-es"),
        search_backend="es",
        es_index=f"deeptag-real-{uuid.uuid4().hex[:8]}",
    )
    stats, _ = index_paths(settings, list(samples.values()))
    assert stats.indexed == len(samples)
    return settings


def test_prefix_wildcards_work_on_a_real_cluster(
    settings: Settings, samples: dict[str, Path]
) -> None:
    page = with_backend(settings, lambda backend: backend.search("espress*"))
    assert page.hits[0].document.uri == str(samples["coffee"])


def test_the_index_has_the_documented_mapping(settings: Settings) -> None:
    async def mapping(backend):  # type: ignore[no-untyped-def]
        return await backend.client.indices.get_mapping(index=backend.index_name)

    body = with_backend(settings, mapping)
    properties = body[settings.es_index]["mappings"]["properties"]
    assert properties["embedding"]["type"] == "dense_vector"
    assert properties["embedding"]["similarity"] == "cosine"
    assert properties["embedding"]["dims"] == 1280
    assert properties["categories"]["properties"]["score"]["type"] == "float"
