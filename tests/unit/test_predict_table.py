"""`deeptag predict`'s table: what a person reads."""

from __future__ import annotations

from rich.console import Console

from orchestrator.cli.predict import render_table
from orchestrator.types import ImageSource, Label, Prediction, SourceKind


def test_the_table_shows_label_names_without_wordnet_ids() -> None:
    source = ImageSource("cat.jpg", SourceKind.PATH, "cat.jpg")
    labels = (Label("n02123045 tabby, tabby cat", 0.62), Label("my own label", 0.2))
    console = Console(width=120, record=True)
    console.print(render_table([Prediction(source, labels, 224, 224, sha256="0" * 64)]))
    text = console.export_text()
    assert "tabby, tabby cat" in text
    assert "n02123045" not in text
    # A label of a trained model, with no id, is shown whole.
    assert "my own label" in text
