"""The embedded index's folder: its tantivy schema, documents in and out, opening and upgrading.

Field names are Elasticsearch's dotted paths (``categories.category``, ``concepts.concept``), so
the same ``q=`` strings work on both backends. Each document also keeps its whole JSON (as
:func:`document_to_source` writes it, minus the vectors) and its float32 vectors as stored
bytes. A folder written before concepts, semantic vectors, trained models' categories or
photo metadata existed is opened with the fields it has (searching it by words works) and
upgraded in place when a writer opens it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tantivy

from orchestrator.errors import DeeptagError, IndexLocked, SearchBackendError
from orchestrator.search.base import EMBEDDING_DIMS, SEMANTIC_DIMS, ImageDocument
from orchestrator.search.documents import document_from_source, document_to_source
from orchestrator.search.embedded_analysis import (
    ANALYSIS_SCHEMA_FIELDS,
    add_analyses,
    add_analysis_fields,
)
from orchestrator.search.embedded_photo import PHOTO_SCHEMA_FIELDS, add_photo, add_photo_fields
from orchestrator.search.vectors import Vectors, embedding_bytes

#: The writer's indexing memory: small enough for a laptop, large enough that a batch of a few
#: hundred documents never spills into extra segments. tantivy needs >= 15 MB per thread.
WRITER_HEAP_BYTES = 64_000_000
#: One indexing thread: the model, not tantivy, is the bottleneck of ``deeptag index``.
WRITER_THREADS = 1

#: Stored-only fields: the document's JSON and its vectors (little-endian float32).
SOURCE_FIELD = "_source"
EMBEDDING_FIELD = "embedding"
SEMANTIC_FIELD = "semantic"
#: Every location's uri, whole ("raw"), so a folder's prefix is found in the term dictionary;
#: not stored: the document's JSON holds them, with their sizes and mtimes.
LOCATIONS_FIELD = "locations.uri"
#: User metadata, indexed (and fast, for ranges) under its own keys: ``album``, ``camera.make``.
METADATA_FIELD = "_metadata"
#: The row of each of a document's vectors in the folder's row files (vector_rows.py); the
#: stored ``embedding`` and ``semantic`` bytes are only read from folders written before.
ROW_FIELDS = {EMBEDDING_FIELD: "_row.embedding", SEMANTIC_FIELD: "_row.semantic"}
#: The fields added since the first version; a folder lacking some of them is a legacy one.
NEW_FIELDS = frozenset(
    {
        "concepts.concept",
        "concepts.score",
        SEMANTIC_FIELD,
        "custom.model",
        "custom.category",
        "custom.score",
        *PHOTO_SCHEMA_FIELDS,
        LOCATIONS_FIELD,
        *ROW_FIELDS.values(),
        *ANALYSIS_SCHEMA_FIELDS,
    }
)
REINDEX_ADVICE = "run `deeptag index --reindex FOLDER...` on the images to add them"


def build_schema() -> tantivy.Schema:
    """The fields of the index; changing them makes existing index folders unreadable."""
    builder = tantivy.SchemaBuilder()
    # "raw" keeps ids and keywords whole, so a term query (and delete-by-term) matches exactly.
    builder.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("uri", stored=True)
    builder.add_text_field("categories.category")
    # Multi-valued: a range matches when any of a document's scores does, as on ES arrays.
    builder.add_float_field("categories.score", indexed=True, fast=True)
    builder.add_text_field("tags")
    builder.add_text_field("concepts.concept")
    builder.add_float_field("concepts.score", indexed=True, fast=True)
    # One structure for every trained model, as the schema is fixed when a folder is made.
    builder.add_text_field("custom.model", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("custom.category")
    builder.add_float_field("custom.score", indexed=True, fast=True)
    builder.add_integer_field("width", indexed=True, fast=True)
    builder.add_integer_field("height", indexed=True, fast=True)
    builder.add_text_field("model", tokenizer_name="raw", index_option="basic")
    # A raw ISO-8601 string rather than a date field: tantivy's date syntax needs a full
    # RFC 3339 timestamp, while string ranges also accept ES-style `indexed_at:>2024-05-01`.
    builder.add_text_field("indexed_at", tokenizer_name="raw", index_option="basic")
    builder.add_json_field(METADATA_FIELD, fast=True)
    builder.add_bytes_field(SOURCE_FIELD, stored=True)
    builder.add_bytes_field(EMBEDDING_FIELD, stored=True)
    builder.add_bytes_field(SEMANTIC_FIELD, stored=True)
    add_photo_fields(builder)
    builder.add_text_field(LOCATIONS_FIELD, tokenizer_name="raw", index_option="basic")
    for row_field in ROW_FIELDS.values():
        builder.add_integer_field(row_field, stored=True, indexed=True, fast=True)
    add_analysis_fields(builder)
    return builder.build()


#: Every field name of :func:`build_schema` (tantivy's Python schema cannot list them).
CURRENT_FIELDS = frozenset(
    {
        "id",
        "uri",
        "categories.category",
        "categories.score",
        "tags",
        "width",
        "height",
        "model",
        "indexed_at",
        METADATA_FIELD,
        SOURCE_FIELD,
        EMBEDDING_FIELD,
        *NEW_FIELDS,
    }
)


@dataclass(frozen=True, eq=False)
class OpenedIndex:
    index: tantivy.Index
    #: Written before some of today's fields: searchable by words, not writable.
    legacy: bool
    #: The fields the folder has (all of today's unless it is a legacy one).
    fields: frozenset[str] = CURRENT_FIELDS

    @property
    def rows(self) -> bool:
        """Whether its vectors are rows beside it (vector_rows.py), as today, rather than
        stored in its documents: a folder legacy only for lacking later fields."""
        return set(ROW_FIELDS.values()) <= self.fields


def open_tantivy(directory: Path) -> OpenedIndex:
    """Open (or create) the index in ``directory`` (a legacy one as it is: see
    :mod:`orchestrator.search.embedded_upgrade`)."""
    where = f"embedded index {directory}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SearchBackendError(f"{where}: cannot create the folder: {e}") from e
    path = str(directory)
    with tantivy_errors(where):
        if tantivy.Index.exists(path) and not tantivy.Index.is_compatible(path):
            raise SearchBackendError(
                f"{where} was written by an incompatible tantivy version; "
                "delete the folder and index the images again"
            )
        fields = _stored_fields(directory)
        legacy = (
            fields is not None
            and fields != CURRENT_FIELDS
            and CURRENT_FIELDS - NEW_FIELDS <= fields <= CURRENT_FIELDS
        )
        if legacy:
            index = tantivy.Index.open(path)
        else:
            try:
                index = tantivy.Index(build_schema(), path=path, reuse=True)
            except ValueError as e:
                if "schema does not match" not in str(e):
                    raise
                raise SearchBackendError(
                    f"{where} was created with different fields by another deeptag version; "
                    "delete the folder (or choose another one) and index the images again"
                ) from e
        # Searches reload explicitly, so no background thread needs to watch for commits.
        index.config_reader(reload_policy="Manual")
        return OpenedIndex(index, legacy, fields if legacy and fields else CURRENT_FIELDS)


def _stored_fields(directory: Path) -> frozenset[str] | None:
    """The field names an existing index was created with (from its meta.json), or None."""
    meta = directory / "meta.json"
    if not meta.is_file():
        return None
    entries = json.loads(meta.read_bytes()).get("schema") or []
    return frozenset(str(entry.get("name")) for entry in entries if isinstance(entry, dict))


def take_writer(index: tantivy.Index, directory: Path) -> tantivy.IndexWriter:
    try:
        return index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=WRITER_THREADS)
    except ValueError as e:
        if "LockBusy" not in str(e):
            raise SearchBackendError(f"embedded index {directory}: {e}") from e
        raise IndexLocked(
            f"the embedded index at {directory} is locked: another `deeptag index`, `sync`, "
            "`watch` or server is writing to it. Wait for it to finish (or stop it) and try "
            "again; a running server takes files through `POST /index`."
        ) from e


def write_and_commit(
    writer: tantivy.IndexWriter, prepared: list[tuple[ImageDocument, tantivy.Document]]
) -> str | None:
    """Replace the documents in one commit; the reason it failed, or ``None``.

    The batch is all or nothing: a failed delete or add must not commit the deletion of a
    document whose replacement never made it in.
    """
    try:
        for document, doc in prepared:
            # Delete first: re-indexing an id (even twice in one batch) keeps one copy.
            writer.delete_documents_by_term("id", document.id)
            writer.add_document(doc)
        writer.commit()
    except Exception as e:
        writer.rollback()
        return f"not committed to the embedded index: {e}"
    return None


def to_tantivy(document: ImageDocument) -> tantivy.Document:
    """The indexed and stored fields of one document.

    The vectors are not in it: the caller stores them as rows (:func:`unit_vectors`) and
    adds the :data:`ROW_FIELDS` that name them.

    Raises:
        ValueError: the document cannot be stored as it is (no id).
        TypeError: its metadata is not JSON-serialisable.
    """
    if not document.id:
        raise ValueError("document has no id")
    source = document_to_source(document)
    source.pop(EMBEDDING_FIELD, None)
    source.pop(SEMANTIC_FIELD, None)
    doc = tantivy.Document()
    doc.add_text("id", document.id)
    doc.add_text("uri", document.uri)
    for location in document.places:
        doc.add_text(LOCATIONS_FIELD, location.uri)
    for category in document.categories:
        doc.add_text("categories.category", category.category)
        doc.add_float("categories.score", float(category.score))
    for tag in document.tags:
        doc.add_text("tags", tag)
    for concept in document.concepts:
        doc.add_text("concepts.concept", concept.concept)
        doc.add_float("concepts.score", float(concept.score))
    for custom in document.custom:
        doc.add_text("custom.model", custom.model)
        doc.add_text("custom.category", custom.category)
        doc.add_float("custom.score", float(custom.score))
    doc.add_integer("width", int(document.width))
    doc.add_integer("height", int(document.height))
    doc.add_text("model", document.model)
    doc.add_text("indexed_at", document.indexed_at)
    # Serialising the source first refuses metadata JSON cannot hold (NaN, objects).
    doc.add_bytes(SOURCE_FIELD, json.dumps(source, allow_nan=False).encode())
    if document.metadata:
        doc.add_json(METADATA_FIELD, dict(document.metadata))
    add_photo(doc, document.id, source)
    add_analyses(doc, source)
    return doc


def unit_vectors(document: ImageDocument, dims: int = EMBEDDING_DIMS) -> dict[str, Vectors]:
    """The document's vectors by field, checked and L2-normalised, as rows are stored.

    Raises:
        ValueError: a vector of the wrong length, with NaN or infinite values, or all zeros.
    """
    found: dict[str, Vectors] = {}
    for field, vector, size in (
        (EMBEDDING_FIELD, document.embedding, dims),
        (SEMANTIC_FIELD, document.semantic, SEMANTIC_DIMS),
    ):
        if vector is None:
            continue
        values = np.frombuffer(embedding_bytes(vector, size), dtype="<f4")
        norm = float(np.linalg.norm(values))
        if norm == 0.0:
            raise ValueError(f"{field} vector is all zeros")
        found[field] = (values / norm).astype(np.float32)
    return found


def from_stored(stored: tantivy.Document, with_vectors: bool = False) -> ImageDocument:
    source = json.loads(bytes(stored.get_first(SOURCE_FIELD) or b"{}"))
    if with_vectors:
        for name in (EMBEDDING_FIELD, SEMANTIC_FIELD):
            vector = stored.get_first(name)
            if vector is not None:
                source[name] = np.frombuffer(bytes(vector), dtype="<f4").tolist()
    return document_from_source(str(stored.get_first("id")), source)


@contextmanager
def tantivy_errors(where: str) -> Iterator[None]:
    """Turn tantivy's (and the filesystem's) exceptions into :class:`SearchBackendError`."""
    try:
        yield
    except DeeptagError:
        raise
    except Exception as e:
        raise SearchBackendError(f"{where}: {e}") from e
    except BaseException as e:
        if not is_panic(e):
            raise
        raise SearchBackendError(f"{where}: tantivy failed: {e}") from e


def is_panic(error: BaseException) -> bool:
    # A Rust panic reaches Python as pyo3's PanicException, a BaseException that would
    # otherwise slip past every `except Exception` up to the event loop.
    return type(error).__name__ == "PanicException"


def generation(directory: Path) -> str:
    """What identifies the committed state: tantivy rewrites meta.json atomically per commit."""
    meta = json.loads((directory / "meta.json").read_bytes())
    return json.dumps([meta.get("opstamp"), meta.get("segments")], sort_keys=True)


def hit_count(result: tantivy.SearchResult) -> int:
    # `count` exists at runtime (we always ask for it) but is missing from tantivy's stubs.
    return int(getattr(result, "count", 0) or 0)


def opstamp(directory: Path) -> int:
    """The number of tantivy's last commit in ``directory`` (0 before the first)."""
    try:
        return int(json.loads((directory / "meta.json").read_bytes()).get("opstamp") or 0)
    except (OSError, ValueError):
        return 0


def rows_of(stored: tantivy.Document) -> dict[str, int]:
    """The rows a stored document names, by vector field."""
    found = {}
    for field, row_field in ROW_FIELDS.items():
        value = stored.get_first(row_field)
        if value is not None:
            found[field] = int(value)
    return found
