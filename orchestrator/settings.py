"""All of deeptag's configuration, read from ``DEEPTAG_*`` environment variables.

This is the only module that reads the environment; CLI options override the same fields.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]
PathList = Annotated[list[Path], NoDecode]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _default_model_repository() -> Path:
    here = Path("model_repository")
    checkout = Path(__file__).resolve().parent.parent / "model_repository"
    return here if here.is_dir() or not checkout.is_dir() else checkout


class Settings(BaseSettings):
    """deeptag settings; each field ``x`` is read from ``DEEPTAG_X``."""

    model_config = SettingsConfigDict(env_prefix="DEEPTAG_", extra="ignore", frozen=True)

    # Triton
    triton_url: str | None = Field(
        default=None,
        description="An existing Triton (e.g. http://gpu-box:8000 or grpc://gpu-box:8001), or "
        "several, comma-separated, serving the same model version: each batch goes to the "
        "ready one with the fewest requests in flight. Unset: commands that need Triton use "
        "the bundled one on CPU, started on first use and left running until idle "
        "(DEEPTAG_TRITON_LINGER).",
    )
    triton_protocol: Literal["http", "grpc"] = Field(
        default="http",
        description="The protocol of a Triton URL given without a scheme. The bundled local "
        "Triton is spoken to over gRPC unless this is set (measured faster than HTTP for "
        "batches of images).",
    )
    triton_http_port: int = Field(
        default=8000,
        description="HTTP port of the local Triton, the one commands look for before starting "
        "their own and the one `deeptag triton start` listens on (with --instances, the first of "
        "consecutive ports).",
    )
    triton_grpc_port: int = Field(
        default=8001,
        description="gRPC port of the local Triton.",
    )
    triton_metrics_port: int = Field(
        default=8002,
        description="Port of the local Triton's Prometheus metrics.",
    )
    triton_linger: bool = Field(
        default=True,
        description="A local Triton a command starts stays up in the background for the next "
        "command (found again through a state file in the data directory) until "
        "DEEPTAG_TRITON_IDLE_S without requests. Off: each command starts its own and stops it "
        "when it ends.",
    )
    triton_idle_s: float = Field(
        default=900.0,
        gt=0.0,
        description="Seconds without requests after which a lingering local Triton stops.",
    )
    triton_start_timeout_s: float = Field(
        default=120.0,
        description="Seconds a local Triton may take to load its models and answer ready.",
    )
    triton_cpu_memory_arena: bool = Field(
        default=True,
        description="A local Triton keeps onnxruntime's memory arena: each batch runs about "
        "1.6x faster, for about 0.9 GB held after a batch of 64 images. Off: memory falls back "
        "after each batch.",
    )
    triton_cpu_spinning: bool = Field(
        default=False,
        description="A local Triton's onnxruntime threads spin between steps instead of "
        "sleeping. Off by default: on 2 cores `deeptag index` measured 6 % faster without, "
        "since spinning takes the cores image decoding needs.",
    )
    triton_cpu_instances: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Model instances of a local Triton (batches run at once), sharing its "
        "cores' onnxruntime threads; 0: one per core (up to 4), each on one thread, for every "
        "local Triton: the layout measured best for bulk indexing, so a running `deeptag triton "
        "start` indexes as fast as the Triton `deeptag index` would start itself.",
    )
    triton_shared_memory: bool = Field(
        default=True,
        description="Hand image batches to a Triton on this machine (127.0.0.1, localhost) "
        "through system shared memory instead of the socket: about 60 core-ms less per batch "
        "of 32. A Triton that cannot map it (another container) is spoken to over the socket.",
    )
    triton_timeout_s: float = Field(
        default=60.0,
        description="Seconds one Triton call may take before it counts as failed.",
    )
    retry_window_s: float = Field(
        default=120.0,
        ge=0.0,
        description="How long `deeptag index` keeps retrying while Triton or Elasticsearch is "
        "unreachable (with backoff, nothing counted as failed) before it stops cleanly; 0 stops "
        "at the first outage. The HTTP server never waits: it answers 503 at once.",
    )
    model_repository: Path = Field(
        default_factory=lambda: _default_model_repository(),
        description="./model_repository when it exists, else the one of this checkout.",
    )
    model: str = Field(
        default="efficientnet_lite0",
        description="The image model on Triton that tags images, e.g. efficientnet_lite0_int8 "
        "or one made by `deeptag train`.",
    )
    text_model: str = Field(
        default="minilm_l6",
        description="The sentence encoder on Triton that embeds search queries.",
    )
    concept_threshold: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Least score (summed probability of the classes below) a WordNet concept "
        "needs to be kept for an image.",
    )

    # Local state: the embedded index, launcher pid files, the runtime model repository.
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("deeptag")),
        description="Where deeptag keeps its state: the embedded index, uploaded images, "
        "thumbnails, the records of Tritons it started and their model repository.",
    )

    # Elasticsearch
    es_url: str | None = Field(
        default=None,
        description="Elasticsearch (or OpenSearch), e.g. https://es:9200. Set: the default search "
        "backend.",
    )
    es_index: str = Field(
        default="images",
        description="The index documents are written to and searched in.",
    )
    es_api_key: SecretStr | None = Field(
        default=None,
        description="An Elasticsearch API key (the base64 form), sent as `ApiKey`; wins over a "
        "user name and password.",
    )
    es_username: str | None = Field(
        default=None,
        description="An Elasticsearch user for basic authentication, with es_password.",
    )
    es_password: SecretStr | None = Field(
        default=None,
        description="The password of es_username.",
    )
    es_ca_certs: Path | None = Field(
        default=None,
        description="A PEM file of the certificate authorities that sign Elasticsearch's "
        "certificate (e.g. a self-signed cluster's http_ca.crt).",
    )
    es_verify_certs: bool = Field(
        default=True,
        description="Check Elasticsearch's TLS certificate; turn off only for a throwaway cluster.",
    )
    es_bulk_chunk_size: int = Field(
        default=200,
        description="Documents per `_bulk` request.",
    )
    es_max_retries: int = Field(
        default=5,
        description="Retries of a document Elasticsearch answered 429 (too busy), with exponential "
        "backoff, before it counts as failed.",
    )

    # Photo metadata
    index_location: bool = Field(
        default=True,
        description="Store where each photo was taken: its GPS position (`location`) and the "
        "place named after it (`place`, from GeoNames data bundled offline). false: neither "
        "is read nor stored, by any command or the server.",
    )

    # Analyses beside classification (orchestrator/analysis)
    ocr: bool = Field(
        default=False,
        description="Read the text in each indexed image (PP-OCRv4 on Triton) into `text` and "
        "`text_lines`. Costs about 0.3 s per image per CPU core; needs `deeptag models export "
        "--only ocr` (and the `ocr` extra).",
    )
    ocr_min_score: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Least recognition confidence a line of text needs to be kept.",
    )
    safety: bool = Field(
        default=False,
        description="Give each indexed image an `nsfw` score (0-1, Yahoo's open_nsfw on "
        "Triton), from the crop the classifier already gets; needs `deeptag models export "
        "--only safety` (and the `safety` extra).",
    )
    nsfw_threshold: float = Field(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="The search page blurs images whose `nsfw` score is above this (a click "
        "reveals one) and its 'hide unsafe' filter leaves them out.",
    )

    # Search
    search_backend: Literal["es", "embedded"] | None = Field(
        default=None,
        description="Where documents go and searches run; unset: 'es' when es_url is set, "
        "else the embedded index under data_dir.",
    )

    semantic_min_score: float = Field(
        default=0.45,
        ge=-1.0,
        le=1.0,
        description="Least cosine between a query and an image's semantic vector for the image "
        "to count as a semantic hit; weaker ones are dropped, so a query about something "
        "absent finds little or nothing.",
    )

    # The HTTP server
    host: str = Field(
        default="127.0.0.1",
        description="The address `deeptag serve` listens on; 0.0.0.0 for every interface.",
    )
    port: int = Field(
        default=8080,
        description="The port `deeptag serve` listens on.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="When set, every route but /health needs 'Bearer <key>'."
    )
    session_ttl_s: int = Field(
        default=12 * 3600,
        ge=60,
        le=30 * 24 * 3600,
        description="Lifetime of the cookie POST /session gives the page for its images.",
    )
    sink_allow: CommaList = Field(
        default_factory=list,
        description="Hosts /predict may push output to, besides loopback and the ES host.",
    )
    image_roots: PathList = Field(
        default_factory=list, description="Folders whose files /predict may read by path."
    )
    fetch_allow_private: bool = Field(
        default=False,
        description="Let image URLs point at private, loopback and link-local addresses "
        "(checked at every redirect); off, the server cannot be used to reach the network it "
        "runs in.",
    )

    # Folder sync and watch
    sync_max_remove_fraction: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Share of a folder's indexed files one `deeptag sync` (or the watcher) may "
        "remove; a run that would remove more removes nothing and asks for --yes (a "
        "half-mounted or half-copied folder is not a deletion).",
    )
    watch: PathList = Field(
        default_factory=list,
        description="Folders `deeptag serve` keeps the index in line with (comma-separated), "
        "as `deeptag watch` does; `serve --watch` adds to them.",
    )
    watch_debounce_ms: int = Field(
        default=1600,
        ge=50,
        le=60_000,
        description="Quiet time the watcher waits for after a filesystem event before syncing; "
        "a file whose size still changes then (being copied) waits for the next round.",
    )

    # Limits
    max_image_bytes: int = Field(
        default=20 * 1024 * 1024,
        description="Most bytes one image may have, fetched, uploaded or read from a file.",
    )
    max_image_pixels: int = Field(
        default=50_000_000,
        description="Most pixels one image may decode to (refuses decompression bombs).",
    )
    fetch_timeout_s: float = Field(
        default=15.0,
        description="Seconds to fetch one image URL.",
    )
    fetch_concurrency: int = Field(
        default=16,
        description="Image URLs fetched at once.",
    )
    fetch_max_redirects: int = Field(
        default=5,
        description="Redirects followed per image URL, each hop checked again.",
    )
    sink_timeout_s: float = Field(
        default=30.0,
        description="Seconds a network sink (output.network of /predict) or an Elasticsearch "
        "request may take; a sink that does not answer in time gives a 504.",
    )
    infer_batch_size: int = Field(
        default=32,
        description="Images `deeptag index` and `deeptag train` read and classify together "
        "(`--batch-size`).",
    )
    index_in_flight: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Batches `deeptag index` has in Triton at once; 0: the model instances "
        "the Triton(s) report, at least 2 (so one batch is on the wire while another runs).",
    )
    decode_workers: int = Field(
        default=0,
        ge=0,
        le=256,
        description="Processes that decode images for `deeptag index` and the commands; 0: "
        "one thread per core in the process (faster on 2 cores, where the GIL is not what "
        "limits). A box feeding a GPU wants about one per core left over by Triton.",
    )
    # What one HTTP request may cost: a request beyond these is refused before any work.
    max_data_items: int = Field(
        default=1000,
        ge=1,
        description="Most `data` items one /predict or /index request may carry (more: 413).",
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Most bytes one request body may have, base64 images included "
        "(more: 413, refused on its Content-Length before it is read).",
    )
    predict_chunk_size: int = Field(
        default=32,
        ge=1,
        description="Images of one request fetched, decoded and classified at a time; "
        "memory grows with this, not with the request.",
    )
    predict_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a whole /predict or /index request may take (past it: 504, "
        "and its fetches and Triton calls are cancelled).",
    )

    _split = field_validator("sink_allow", "image_roots", "watch", mode="before")(_split_commas)

    @property
    def sink_allowed_hosts(self) -> frozenset[str]:
        hosts = {"localhost", "127.0.0.1", "::1"}
        hosts.update(h.lower() for h in self.sink_allow)
        if self.es_url:
            es_host = urlsplit(self.es_url).hostname
            if es_host:
                hosts.add(es_host.lower())
        return frozenset(hosts)

    @property
    def local_triton_protocol(self) -> Literal["http", "grpc"]:
        """How to speak to a local Triton: as configured, else gRPC (about 8 % more images/s
        than HTTP in `deeptag index` on 2 cores: less client-side encoding)."""
        return self.triton_protocol if "triton_protocol" in self.model_fields_set else "grpc"

    @property
    def es_authorization(self) -> str | None:
        """The Authorization header value for the configured Elasticsearch, if any."""
        if self.es_api_key is not None:
            return f"ApiKey {self.es_api_key.get_secret_value()}"
        if self.es_username is not None:
            password = self.es_password.get_secret_value() if self.es_password else ""
            token = base64.b64encode(f"{self.es_username}:{password}".encode()).decode()
            return f"Basic {token}"
        return None

    @property
    def resolved_search_backend(self) -> Literal["es", "embedded"]:
        if self.search_backend:
            return self.search_backend
        return "es" if self.es_url else "embedded"

    @property
    def embedded_index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "run"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with CLI options (those not None) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
