"""Real servers for the HTTP tests: a local image server and `deeptag serve` subprocesses."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image


class BackloggedHTTPServer(ThreadingHTTPServer):
    # The default backlog of 5 drops concurrent fetches and makes them wait for SYN retries.
    request_queue_size = 128


@dataclass
class ImageServer:
    url: str
    received: list[tuple[str, str, bytes]]  # (method, path, body) of writes, for sink tests
    authorizations: list[str | None]  # the Authorization header of each write


def _jpeg(path: Path) -> bytes:
    out = io.BytesIO()
    Image.open(path).convert("RGB").save(out, "JPEG", quality=92)
    return out.getvalue()


@pytest.fixture(scope="session")
def image_server(samples: dict[str, Path], bad_images: dict[str, Path]) -> Iterator[ImageServer]:
    """Serves the sample photos as JPEGs, and misbehaves on purpose on some paths."""
    files: dict[str, tuple[str, bytes]] = {
        f"/{name}.jpg": ("image/jpeg", _jpeg(path)) for name, path in samples.items()
    }
    files["/truncated.jpg"] = ("image/jpeg", bad_images["truncated"].read_bytes())
    files["/notes.txt"] = ("text/plain", b"just some text, no pixels\n" * 10)
    files["/bomb.png"] = ("image/png", bad_images["bomb"].read_bytes())
    # Over the servers' 2 MB byte limit, and a real JPEG so only its size is wrong.
    files["/huge.jpg"] = ("image/jpeg", b"\xff\xd8\xff\xe0" + os.urandom(3 * 1024 * 1024))
    received: list[tuple[str, str, bytes]] = []
    authorizations: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/redirect/"):
                self.send_response(302)
                self.send_header("Location", "/" + self.path.removeprefix("/redirect/"))
                self.end_headers()
                return
            if self.path.split("?")[0] not in files:
                self.send_error(404, "Not Found")
                return
            content_type, body = files[self.path.split("?")[0]]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _write(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((self.command, self.path, body))
            authorizations.append(self.headers.get("Authorization"))
            status = 500 if self.path.startswith("/fail") else 200
            payload = b'{"error":"sink is broken today"}' if status == 500 else b'{"accepted":true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_POST = _write
        do_PUT = _write

    server = BackloggedHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ImageServer(f"http://127.0.0.1:{server.server_address[1]}", received, authorizations)
    finally:
        server.shutdown()
        server.server_close()
