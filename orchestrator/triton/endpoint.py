"""Where a Triton listens and how to speak to it: the value every Triton module shares.

It has a module of its own, below the calls, the client and shared memory, so that those
stand in a line instead of importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

TritonProtocol = Literal["http", "grpc"]


@dataclass(frozen=True)
class Endpoint:
    protocol: TritonProtocol
    address: str  # host:port, no scheme
    ssl: bool = False

    @classmethod
    def parse(cls, url: str, default_protocol: TritonProtocol = "http") -> Endpoint:
        """``http://h:8000``, ``https://h``, ``grpc://h:8001`` or a bare ``h:8000``."""
        if "://" not in url:
            return cls(default_protocol, url)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "grpc", "grpcs") or not parts.netloc:
            raise ValueError(
                f"Triton URL '{url}' must look like http://host:8000 or grpc://host:8001"
            )
        protocol: TritonProtocol = "grpc" if scheme.startswith("grpc") else "http"
        return cls(protocol, parts.netloc, ssl=scheme in ("https", "grpcs"))

    @classmethod
    def parse_list(
        cls, urls: str, default_protocol: TritonProtocol = "http"
    ) -> tuple[Endpoint, ...]:
        """Endpoints of a comma-separated list (``DEEPTAG_TRITON_URL``), duplicates removed."""
        endpoints = [cls.parse(u.strip(), default_protocol) for u in urls.split(",") if u.strip()]
        if not endpoints:
            raise ValueError(f"Triton URL list '{urls}' names no endpoint")
        return tuple(dict.fromkeys(endpoints))

    def __str__(self) -> str:
        scheme = {"http": "http", "grpc": "grpc"}[self.protocol] + ("s" if self.ssl else "")
        return f"{scheme}://{self.address}"
