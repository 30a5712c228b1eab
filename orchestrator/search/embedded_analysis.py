"""The analyses' fields in the embedded index (orchestrator.analysis.registry), named and
typed as on Elasticsearch so the same queries work: ``text`` as words (bare words search it),
``nsfw`` as a fast float (``nsfw:<0.2``), ``analyses`` as whole names. ``text_lines`` stays in
the stored source only: it is shown, never searched."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import tantivy

TEXT, NSFW, ANALYSES = "text", "nsfw", "analyses"
#: Every field this module adds to the schema.
ANALYSIS_SCHEMA_FIELDS = frozenset({TEXT, NSFW, ANALYSES})


def add_analysis_fields(builder: tantivy.SchemaBuilder) -> None:
    builder.add_text_field(TEXT)
    builder.add_float_field(NSFW, indexed=True, fast=True)
    builder.add_text_field(ANALYSES, tokenizer_name="raw", index_option="basic")


def add_analyses(doc: tantivy.Document, source: Mapping[str, Any]) -> None:
    """Index the analysis fields of a document's stored JSON ``source`` (read back from the
    source, as the photo fields are, so what is indexed is what is stored)."""
    text = source.get(TEXT)
    if isinstance(text, str) and text:
        doc.add_text(TEXT, text)
    nsfw = source.get(NSFW)
    if isinstance(nsfw, int | float) and not isinstance(nsfw, bool) and math.isfinite(nsfw):
        doc.add_float(NSFW, float(nsfw))
    ran = source.get(ANALYSES) or ()
    for name in [ran] if isinstance(ran, str) else ran:
        if isinstance(name, str):
            doc.add_text(ANALYSES, name)
