"""``/thumbnails/{id}``, ``/`` and ``/static/...`` of a real ``deeptag serve`` (no browser).

One server for the module, with an API key, so the key checks and everything else share it.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageOps

from orchestrator.samples import sample_dir
from tests.conftest import DeeptagServer, ServerFactory, jpeg_bytes
from tests.integration.conftest import ImageServer

pytestmark = pytest.mark.integration

KEY = "thumbnail-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Thumbs:
    server: DeeptagServer
    client: httpx.Client  # sends the key
    data_dir: Path
    ids: dict[str, str]  # name -> document id
    remote_url: str


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def thumbs(
    start_deeptag: ServerFactory,
    samples: dict[str, Path],
    image_server: ImageServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Thumbs]:
    base = tmp_path_factory.mktemp("thumb-roots")
    photos = base / "photos"
    photos.mkdir()
    # Landscape pixels that EXIF says to turn a quarter: the thumbnail must be portrait.
    turned = photos / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(samples["chelsea"]).convert("RGB").resize((400, 200)).save(turned, "JPEG", exif=exif)
    # Indexed while it is a plain file under the root; then swapped for a symlink that leads
    # outside the roots, which the thumbnail route must notice.
    escape = photos / "escape.jpg"
    escape.write_bytes(jpeg_bytes(samples["rocket"], quality=80))
    outside = base / "outside.jpg"
    outside.write_bytes(jpeg_bytes(samples["astronaut"]))

    server = start_deeptag(
        {
            "DEEPTAG_IMAGE_ROOTS": f"{sample_dir()},{photos}",
            "DEEPTAG_API_KEY": KEY,
            "DEEPTAG_FETCH_ALLOW_PRIVATE": "true",
        }
    )
    upload = jpeg_bytes(samples["motorcycle"], quality=70)
    remote_url = f"{image_server.url}/rocket.jpg"
    data = [
        str(samples["coffee"]),
        str(samples["astronaut"]),
        str(turned),
        str(escape),
        "data:image/jpeg;base64," + base64.b64encode(upload).decode(),
        remote_url,
    ]
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        answer = client.post("/index", json={"data": data})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["indexed"], body["failed"]) == (len(data), []), body
        escape_id = sha256(escape.read_bytes())
        escape.unlink()
        escape.symlink_to(outside)
        ids = {
            "coffee": sha256(samples["coffee"].read_bytes()),
            "astronaut": sha256(samples["astronaut"].read_bytes()),
            "turned": sha256(turned.read_bytes()),
            "escape": escape_id,
            "upload": sha256(upload),
        }
        assert set(ids.values()) <= set(body["ids"])
        remote_ids = set(body["ids"]) - set(ids.values())
        assert len(remote_ids) == 1
        ids["remote"] = remote_ids.pop()
        yield Thumbs(server, client, server.log_path.parent, ids, remote_url)


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


def test_thumbnail_of_a_local_sample_is_a_small_cached_jpeg(thumbs: Thumbs) -> None:
    doc_id = thumbs.ids["coffee"]
    response = thumbs.client.get(f"/thumbnails/{doc_id}")
    image = open_jpeg(response)
    assert max(image.size) == 320
    # coffee.png is 600x400: the aspect ratio is kept.
    assert image.size == (320, 213)
    assert "max-age" in response.headers["cache-control"]
    assert (thumbs.data_dir / "thumbnails" / f"{doc_id}-320.jpg").is_file()
    again = thumbs.client.get(f"/thumbnails/{doc_id}")
    assert again.content == response.content


def test_thumbnails_follow_exif_orientation(thumbs: Thumbs) -> None:
    image = open_jpeg(thumbs.client.get(f"/thumbnails/{thumbs.ids['turned']}"))
    assert image.size == (160, 320)


def test_uploaded_images_have_thumbnails(thumbs: Thumbs) -> None:
    image = open_jpeg(thumbs.client.get(f"/thumbnails/{thumbs.ids['upload']}"))
    assert max(image.size) <= 320


def test_hits_point_local_images_to_thumbnails_and_remote_ones_to_their_url(
    thumbs: Thumbs,
) -> None:
    hits = thumbs.client.get("/search", params={"q": "*", "size": 50}).json()["hits"]
    by_id = {hit["id"]: hit["thumbnail"] for hit in hits}
    assert by_id[thumbs.ids["astronaut"]] == f"/thumbnails/{thumbs.ids['astronaut']}"
    assert by_id[thumbs.ids["remote"]] == thumbs.remote_url
    redirect = thumbs.client.get(f"/thumbnails/{thumbs.ids['remote']}")
    assert redirect.status_code == 307
    assert redirect.headers["location"] == thumbs.remote_url


def test_unknown_id_is_a_deepdetect_404(thumbs: Thumbs) -> None:
    assert_dd_error(thumbs.client.get(f"/thumbnails/{'0' * 64}"), 404)
    assert_dd_error(thumbs.client.get("/thumbnails/not-an-id"), 404)


def test_a_file_that_resolves_outside_the_roots_is_refused(thumbs: Thumbs) -> None:
    status = assert_dd_error(thumbs.client.get(f"/thumbnails/{thumbs.ids['escape']}"), 403)
    assert "image roots" in str(status["dd_msg"])
    assert not (thumbs.data_dir / "thumbnails" / f"{thumbs.ids['escape']}-320.jpg").exists()


def test_thumbnails_need_the_key_as_header_or_query(thumbs: Thumbs) -> None:
    path = f"/thumbnails/{thumbs.ids['astronaut']}"
    with httpx.Client(base_url=thumbs.server.url, timeout=30) as anonymous:
        assert_dd_error(anonymous.get(path), 401)
        assert_dd_error(anonymous.get(path, params={"key": "wrong"}), 401)
        assert_dd_error(anonymous.get(path, headers={"Authorization": "Bearer wrong"}), 401)
        open_jpeg(anonymous.get(path, params={"key": KEY}))
        open_jpeg(anonymous.get(path, headers=AUTH))


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
