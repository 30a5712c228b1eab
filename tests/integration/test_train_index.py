"""`deeptag index --model NAME`: a trained model's categories, stored and searched on both
backends."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from orchestrator.search.base import Category, CustomCategory, ImageDocument
from orchestrator.search.elasticsearch import ElasticsearchBackend, index_mapping
from tests.integration.test_train import (  # noqa: F401
    Server,
    TrainWorld,
    server,
    train_folder,
    world,
)

pytestmark = pytest.mark.integration

SUMMARY = re.compile(r"(\d+) indexed, (\d+) skipped \(already indexed\), (\d+) failed")


@pytest.fixture(scope="module")
def space(world: TrainWorld, train_folder: Path) -> str:  # noqa: F811
    """A model trained on astronaut, cat and coffee crops, served as 'space'."""
    trained = world.deeptag("train", "space", str(train_folder))
    assert trained.returncode == 0, trained.stderr + trained.stdout
    return "space"


def run(trained: TrainWorld, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=trained.root,
        env={**trained.env, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )


def indexed(result: subprocess.CompletedProcess[str]) -> tuple[int, int, int]:
    assert result.returncode == 0, result.stderr + result.stdout
    match = SUMMARY.search(result.stderr)
    assert match, result.stderr
    return int(match[1]), int(match[2]), int(match[3])


def hits(trained: TrainWorld, env: dict[str, str], query: str) -> list[dict[str, Any]]:
    result = run(trained, env, "search", query, "--mode", "words", "--json")
    assert result.returncode == 0, result.stderr + result.stdout
    found: list[dict[str, Any]] = json.loads(result.stdout)["hits"]
    return found


@pytest.mark.parametrize("kind", ["embedded", "es"])
def test_index_with_a_trained_model_stores_its_categories_beside_imagenet(
    kind: str,
    world: TrainWorld,  # noqa: F811
    space: str,
    samples: dict[str, Path],
    elasticsearch_url: str,
) -> None:
    env = {
        "DEEPTAG_SEARCH_BACKEND": kind,
        "DEEPTAG_DATA_DIR": str(world.root / f"data-{kind}"),
        "DEEPTAG_ES_URL": elasticsearch_url if kind == "es" else "",
        "DEEPTAG_ES_INDEX": f"deeptag-custom-{uuid.uuid4().hex[:8]}",
    }
    if kind == "embedded":
        del env["DEEPTAG_ES_URL"]
    folder = world.root / "images" / f"collection-{kind}"
    folder.mkdir(parents=True)
    for name in ("astronaut", "chelsea", "coffee"):
        shutil.copy(samples[name], folder / samples[name].name)

    # Indexed first without the model: ImageNet only, as before.
    assert indexed(run(world, env, "index", str(folder))) == (3, 0, 0)
    assert hits(world, env, f"custom.model:{space}") == []

    # Adding the model tags the images again, without --reindex; a rerun then skips them.
    assert indexed(run(world, env, "index", "--model", space, str(folder))) == (3, 0, 0)
    assert indexed(run(world, env, "index", "--model", space, str(folder))) == (0, 3, 0)

    astronauts = hits(world, env, "astronaut")
    assert astronauts, "the trained category is searchable as a bare word"
    top = astronauts[0]
    assert Path(top["uri"]).name == "astronaut.png"
    assert top["custom"][0]["model"] == space
    assert top["custom"][0]["category"] == "astronaut"
    # The ImageNet labels stay, in their own field.
    assert top["categories"]
    assert all(c["category"][:1] == "n" for c in top["categories"])

    coffee = hits(world, env, "custom.category:coffee")
    assert Path(coffee[0]["uri"]).name == "coffee.png"
    assert len(hits(world, env, f"custom.model:{space}")) == 3
    assert hits(world, env, "custom.model:other") == []
    # A filter by model combines with words, as the page's model selector does.
    both = hits(world, env, f"custom.model:{space} AND cat")
    assert [Path(h["uri"]).name for h in both][:1] == ["chelsea.png"]

    if kind == "embedded":
        # A second model adds its categories; the first model's stay.
        trained = world.deeptag("train", "again", str(world.root / "images" / "train"))
        assert trained.returncode == 0, trained.stderr + trained.stdout
        assert indexed(run(world, env, "index", "--model", "again", str(folder))) == (3, 0, 0)
        models = {c["model"] for c in hits(world, env, "custom.model:again")[0]["custom"]}
        assert models == {space, "again"}
        assert len(hits(world, env, f"custom.model:{space}")) == 3

    missing = run(world, env, "index", "--model", "nosuch", str(folder))
    assert missing.returncode != 0
    assert "--model nosuch" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_an_elasticsearch_index_from_before_trained_models_gains_the_custom_fields(
    elasticsearch_url: str,
) -> None:
    from elasticsearch import Elasticsearch

    name = f"deeptag-precustom-{uuid.uuid4().hex[:8]}"
    mapping = index_mapping()
    del mapping["properties"]["custom"]
    client = Elasticsearch(elasticsearch_url)
    try:
        client.indices.create(index=name, mappings=mapping)
    finally:
        client.close()
    document = ImageDocument(
        id="a" * 64,
        uri="/photos/astronaut.png",
        categories=(Category("n03376595 folding chair", 0.4),),
        tags=("folding chair",),
        embedding=None,
        width=10,
        height=10,
        model="efficientnet_lite0/1",
        indexed_at="2025-01-01T00:00:00Z",
        custom=(CustomCategory("space", "astronaut", 0.97),),
    )

    async def main() -> tuple[list[str], list[str], dict[str, Any]]:
        from elasticsearch import AsyncElasticsearch

        backend = ElasticsearchBackend(
            AsyncElasticsearch(elasticsearch_url), name, url=elasticsearch_url
        )
        try:
            await backend.ensure_index()
            assert all([r.ok async for r in backend.index([document])])
            await backend.client.indices.refresh(index=name)
            words = await backend.search("astronaut")
            model = await backend.search("custom.model:space")
            properties = (await backend.client.indices.get_mapping(index=name))[name]
            return (
                [h.document.id for h in words.hits],
                [h.document.id for h in model.hits],
                dict(properties["mappings"]["properties"]["custom"]),
            )
        finally:
            await backend.close()

    words, model, custom = asyncio.run(main())
    assert words == [document.id]
    assert model == [document.id]
    assert custom["properties"]["model"]["type"] == "keyword"


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def page_collection(world: TrainWorld, space: str, samples: dict[str, Path]) -> Path:  # noqa: F811
    """Photos indexed with the trained model into the index the server of `world` reads."""
    folder = world.root / "images" / "page"
    folder.mkdir(parents=True)
    for name in ("astronaut", "chelsea", "coffee"):
        shutil.copy(samples[name], folder / samples[name].name)
    assert indexed(run(world, {}, "index", "--model", space, str(folder))) == (3, 0, 0)
    return folder


def test_the_page_filters_by_trained_model_and_shows_its_categories(
    page_collection: Path,
    server: Server,  # noqa: F811
    space: str,
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed: no browser to drive")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url)
            selector = page.locator("#model-filter")
            expect(selector).to_be_visible()
            selector.select_option(space)
            page.fill("#q", "astronaut")
            page.press("#q", "Enter")
            first = page.locator("#results > li.card").first
            expect(first.locator(".custom").first).to_have_text("astronaut")
            expect(page.locator("#results > li.card")).not_to_have_count(0)
            # Words no trained category or label of these photos has: nothing matches.
            page.fill("#q", "zeppelin")
            page.press("#q", "Enter")
            expect(page.locator("#results > li.card")).to_have_count(0)
        finally:
            browser.close()
