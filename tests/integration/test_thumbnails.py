"""``/thumbnails/{id}``, ``/images/{id}``, ``/`` and ``/static/...`` of a real ``deeptag serve``
(no browser).

One server for the module, with an API key and no DEEPTAG_IMAGE_ROOTS, over photos indexed
with ``deeptag index``: the index alone decides which images may be shown.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageOps

from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings
from orchestrator.triton.launcher import LocalTriton
from tests.conftest import REPO_ROOT, DeeptagServer, ServerFactory, jpeg_bytes
from tests.environment import clean_environment
from tests.integration.conftest import ImageServer

pytestmark = pytest.mark.integration

KEY = "thumbnail-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# A cloud metadata address: the fetch policy refuses it whatever the settings say.
REFUSED_URL = "http://169.254.169.254/latest/meta-data/cat.jpg"


@dataclass
class Thumbs:
    server: DeeptagServer
    client: httpx.Client  # sends the key
    data_dir: Path
    ids: dict[str, str]  # name -> document id
    photos: dict[str, Path]
    remote_url: str


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def index_with_cli(sources: list[str], data_dir: Path, triton: LocalTriton) -> None:
    """``deeptag index`` into the embedded index under ``data_dir``, as a user runs it."""
    environment = {
        **clean_environment(),
        "DEEPTAG_TRITON_URL": triton.http_url,
        "DEEPTAG_DATA_DIR": str(data_dir),
        "DEEPTAG_SEARCH_BACKEND": "embedded",
        "DEEPTAG_FETCH_ALLOW_PRIVATE": "true",
    }
    failures = data_dir / "failures.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "index", *sources, "--failures", str(failures)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert " 0 failed" in result.stderr, result.stderr


async def add_document_from_elsewhere(data_dir: Path, like: str, doc_id: str, uri: str) -> None:
    """A document another writer stored: a copy of ``like`` under another id and URI."""
    settings = Settings(data_dir=data_dir, search_backend="embedded")
    backend = await open_backend(settings)
    try:
        original = await backend.get(like)
        assert original is not None
        results = [r async for r in backend.index([replace(original, id=doc_id, uri=uri)])]
        assert all(r.ok for r in results), results
    finally:
        await backend.close()


@pytest.fixture(scope="module")
def thumbs(
    start_deeptag: ServerFactory,
    triton: LocalTriton,
    samples: dict[str, Path],
    image_server: ImageServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Thumbs]:
    base = tmp_path_factory.mktemp("thumb-home")
    folder = base / "photos"
    folder.mkdir()
    photos = {name: folder / samples[name].name for name in ("coffee", "astronaut")}
    for name, path in photos.items():
        shutil.copyfile(samples[name], path)
    # Landscape pixels that EXIF says to turn a quarter: the thumbnail must be portrait.
    photos["turned"] = folder / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    chelsea = Image.open(samples["chelsea"]).convert("RGB")
    chelsea.resize((400, 200)).save(photos["turned"], "JPEG", exif=exif)
    # Changed, deleted or swapped for a link to another file by the tests, after indexing.
    for name, sample in (("escape", "rocket"), ("gone", "motorcycle"), ("changed", "chelsea")):
        photos[name] = folder / f"{name}.jpg"
        photos[name].write_bytes(jpeg_bytes(samples[sample], quality=80))
    photos["outside"] = base / "outside.jpg"
    photos["outside"].write_bytes(jpeg_bytes(samples["astronaut"]))

    data_dir = base / "data"
    remote_url = f"{image_server.url}/rocket.jpg"
    index_with_cli([str(folder), remote_url], data_dir, triton)
    ids = {name: sha256(path.read_bytes()) for name, path in photos.items() if name != "outside"}
    with httpx.Client(timeout=30) as plain:
        ids["remote"] = sha256(plain.get(remote_url).content)
    ids["refused"] = sha256(b"an image that lives behind a refused address")
    asyncio.run(add_document_from_elsewhere(data_dir, ids["remote"], ids["refused"], REFUSED_URL))

    server = start_deeptag(
        {
            "DEEPTAG_DATA_DIR": str(data_dir),
            "DEEPTAG_API_KEY": KEY,
            "DEEPTAG_FETCH_ALLOW_PRIVATE": "true",
        }
    )
    upload = jpeg_bytes(samples["motorcycle"], quality=70)
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        data = ["data:image/jpeg;base64," + base64.b64encode(upload).decode()]
        answer = client.post("/index", json={"data": data})
        assert answer.status_code == 200, answer.text
        assert answer.json()["indexed"] == 1, answer.text
        ids["upload"] = sha256(upload)
        yield Thumbs(server, client, data_dir, ids, photos, remote_url)


def assert_dd_error(response: httpx.Response, code: int) -> dict[str, object]:
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    status: dict[str, object] = response.json()["status"]
    assert status["code"] == code
    assert isinstance(status["dd_code"], int)
    assert isinstance(status["dd_msg"], str)
    assert status["dd_msg"]
    return status


def open_jpeg(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "JPEG"
    assert image.mode == "RGB"
    return image


def thumbnail(thumbs: Thumbs, name: str, **headers: str) -> httpx.Response:
    return thumbs.client.get(f"/thumbnails/{thumbs.ids[name]}", headers=headers)


def full_image(thumbs: Thumbs, name: str) -> httpx.Response:
    return thumbs.client.get(f"/images/{thumbs.ids[name]}")


def test_thumbnail_of_a_photo_outside_any_image_root_is_a_small_cached_jpeg(
    thumbs: Thumbs,
) -> None:
    doc_id = thumbs.ids["coffee"]
    response = thumbnail(thumbs, "coffee")
    image = open_jpeg(response)
    # coffee.png is 600x400: the aspect ratio is kept.
    assert image.size == (320, 213)
    assert (thumbs.data_dir / "thumbnails" / f"{doc_id}-320.jpg").is_file()
    again = thumbnail(thumbs, "coffee")
    assert again.content == response.content
    # The browser keeps it and asks again each time; unchanged, the answer is a 304.
    assert "no-cache" in response.headers["cache-control"]
    revalidated = thumbnail(thumbs, "coffee", **{"If-None-Match": response.headers["etag"]})
    assert revalidated.status_code == 304


def test_thumbnails_follow_exif_orientation(thumbs: Thumbs) -> None:
    image = open_jpeg(thumbnail(thumbs, "turned"))
    assert image.size == (160, 320)


def test_uploaded_images_have_thumbnails(thumbs: Thumbs) -> None:
    image = open_jpeg(thumbnail(thumbs, "upload"))
    assert max(image.size) <= 320


def test_image_roots_still_govern_what_index_reads_by_path(thumbs: Thumbs) -> None:
    answer = thumbs.client.post("/index", json={"data": [str(thumbs.photos["outside"])]})
    assert answer.status_code == 200, answer.text
    (failure,) = answer.json()["failed"]
    assert "DEEPTAG_IMAGE_ROOTS" in failure["error"]


def test_every_hit_points_to_its_thumbnail_on_this_server(thumbs: Thumbs) -> None:
    hits = thumbs.client.get("/search", params={"q": "*", "size": 50}).json()["hits"]
    by_id = {hit["id"]: hit["thumbnail"] for hit in hits}
    for name in ("astronaut", "remote", "upload"):
        assert by_id[thumbs.ids[name]] == f"/thumbnails/{thumbs.ids[name]}", name


def test_a_url_document_has_a_thumbnail_fetched_and_cached_by_the_server(
    thumbs: Thumbs,
) -> None:
    image = open_jpeg(thumbnail(thumbs, "remote"))
    assert max(image.size) == 320
    assert (thumbs.data_dir / "thumbnails" / f"{thumbs.ids['remote']}-320.jpg").is_file()
    original = full_image(thumbs, "remote")
    assert original.status_code == 200, original.text
    assert original.headers["content-type"] == "image/jpeg"
    assert sha256(original.content) == thumbs.ids["remote"]


def test_a_url_document_from_a_refused_host_is_a_403(thumbs: Thumbs) -> None:
    for response in (thumbnail(thumbs, "refused"), full_image(thumbs, "refused")):
        status = assert_dd_error(response, 403)
        assert "169.254.169.254" in str(status["dd_msg"])
        assert "refused" in str(status["dd_msg"])


def test_the_full_image_is_the_indexed_file_itself_named_as_it_was(thumbs: Thumbs) -> None:
    response = full_image(thumbs, "coffee")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content == thumbs.photos["coffee"].read_bytes()
    assert response.headers["content-disposition"] == "inline; filename*=UTF-8''coffee.png"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_unknown_id_is_a_deepdetect_404(thumbs: Thumbs) -> None:
    for route in ("thumbnails", "images"):
        assert_dd_error(thumbs.client.get(f"/{route}/{'0' * 64}"), 404)
        assert_dd_error(thumbs.client.get(f"/{route}/not-an-id"), 404)


def test_a_deleted_file_is_a_404_that_says_so_even_once_cached(thumbs: Thumbs) -> None:
    cached = thumbnail(thumbs, "gone")
    open_jpeg(cached)
    thumbs.photos["gone"].unlink()
    for response in (
        thumbnail(thumbs, "gone", **{"If-None-Match": cached.headers["etag"]}),
        full_image(thumbs, "gone"),
    ):
        status = assert_dd_error(response, 404)
        assert "gone.jpg: the indexed file is gone" in str(status["dd_msg"])


def test_a_file_changed_since_indexing_is_a_404_naming_the_sha256(
    thumbs: Thumbs, samples: dict[str, Path]
) -> None:
    open_jpeg(thumbnail(thumbs, "changed"))
    thumbs.photos["changed"].write_bytes(jpeg_bytes(samples["coffee"], quality=60))
    for response in (thumbnail(thumbs, "changed"), full_image(thumbs, "changed")):
        status = assert_dd_error(response, 404)
        assert "SHA-256 no longer matches" in str(status["dd_msg"])


def test_a_file_swapped_for_a_link_to_another_file_is_not_shown(thumbs: Thumbs) -> None:
    escape = thumbs.photos["escape"]
    escape.unlink()
    escape.symlink_to(thumbs.photos["outside"])
    for response in (thumbnail(thumbs, "escape"), full_image(thumbs, "escape")):
        status = assert_dd_error(response, 404)
        assert "SHA-256 no longer matches" in str(status["dd_msg"])
    assert not (thumbs.data_dir / "thumbnails" / f"{thumbs.ids['escape']}-320.jpg").exists()


@pytest.mark.parametrize("route", ["thumbnails", "images"])
def test_thumbnails_and_images_need_the_key_header_or_the_session_cookie(
    thumbs: Thumbs, route: str
) -> None:
    path = f"/{route}/{thumbs.ids['astronaut']}"
    with httpx.Client(base_url=thumbs.server.url, timeout=30) as anonymous:
        assert_dd_error(anonymous.get(path), 401)
        assert_dd_error(anonymous.get(path, headers={"Authorization": "Bearer wrong"}), 401)
        # A key in the URL would be written to access logs: it opens nothing.
        assert_dd_error(anonymous.get(path, params={"key": KEY}), 401)
        response = anonymous.get(path, headers=AUTH)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("image/")
    with httpx.Client(base_url=thumbs.server.url, timeout=30) as page:
        assert page.post("/session", headers=AUTH).status_code == 200
        response = page.get(path)  # the cookie only, as <img> sends it
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("image/")


def test_page_and_static_files_are_public_with_their_types(thumbs: Thumbs) -> None:
    with httpx.Client(base_url=thumbs.server.url, timeout=30) as anonymous:
        page = anonymous.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "content-security-policy" in page.headers
        assert 'src="static/app.js"' in page.text
        expected = {
            "app.js": "text/javascript; charset=utf-8",
            "style.css": "text/css; charset=utf-8",
            "icon.svg": "image/svg+xml",
        }
        for name, content_type in expected.items():
            response = anonymous.get(f"/static/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == content_type
        # The API itself still needs the key.
        assert_dd_error(anonymous.get("/search", params={"q": "*"}), 401)


@pytest.mark.parametrize(
    "path",
    [
        "/static/missing.js",
        "/static/..%2F..%2Fpyproject.toml",
        "/static/%2e%2e%2fserver%2fui.py",
        "/static/.hidden.js",
        "/static/index.html.bak",
    ],
)
def test_only_files_of_the_static_folder_are_served(thumbs: Thumbs, path: str) -> None:
    with httpx.Client(base_url=thumbs.server.url, timeout=30) as anonymous:
        assert_dd_error(anonymous.get(path), 404)


def test_mirrored_copy_is_not_indexed_by_searching_with_it(
    thumbs: Thumbs, samples: dict[str, Path]
) -> None:
    before = thumbs.client.get("/search", params={"q": "*"}).json()["total"]
    mirrored = io.BytesIO()
    ImageOps.mirror(Image.open(samples["coffee"]).convert("RGB")).save(mirrored, "JPEG")
    like = "data:image/jpeg;base64," + base64.b64encode(mirrored.getvalue()).decode()
    answer = thumbs.client.post("/search", json={"like": like, "k": 3})
    assert answer.status_code == 200, answer.text
    hits = answer.json()["hits"]
    assert hits[0]["id"] == thumbs.ids["coffee"]
    assert thumbs.client.get("/search", params={"q": "*"}).json()["total"] == before
