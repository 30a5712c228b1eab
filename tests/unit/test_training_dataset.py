"""The training folder layout: what trains, and the errors a user sees for what cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import TrainingDataError
from orchestrator.training.dataset import (
    BACKGROUND_LABEL,
    check_categories,
    check_counts,
    scan,
)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_one_category_per_sub_folder_hidden_files_left_out(tmp_path: Path) -> None:
    _touch(tmp_path / "diver" / "a.jpg")
    _touch(tmp_path / "diver" / "deeper" / "b.jpg")
    _touch(tmp_path / "astronaut" / "c.png")
    _touch(tmp_path / "astronaut" / ".DS_Store")
    _touch(tmp_path / ".git" / "config")
    _touch(tmp_path / "README.txt")

    layout = scan(tmp_path)

    assert layout.labels == ("astronaut", "diver")
    assert [p.name for p in layout.classes[0].files] == ["c.png"]
    assert [p.name for p in layout.classes[1].files] == ["a.jpg", "b.jpg"]
    assert layout.file_count == 3


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="nowhere' does not exist"):
        scan(tmp_path / "nowhere")


def test_a_file_is_not_a_training_folder(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="is not a folder"):
        scan(_touch(tmp_path / "photo.jpg"))


def test_folder_without_categories_explains_the_layout(tmp_path: Path) -> None:
    _touch(tmp_path / "photo.jpg")
    with pytest.raises(TrainingDataError, match="has no sub-folders"):
        scan(tmp_path)


def test_empty_category_is_named(tmp_path: Path) -> None:
    _touch(tmp_path / "diver" / "a.jpg")
    (tmp_path / "astronaut").mkdir()
    with pytest.raises(TrainingDataError, match=r"category 'astronaut'.* has no files"):
        scan(tmp_path)


def test_one_category_needs_background_images() -> None:
    with pytest.raises(TrainingDataError, match=r"one category \('diver'\).*background"):
        check_categories(("diver",), with_background=False)
    check_categories(("diver",), with_background=True)


def test_a_category_cannot_be_named_like_the_background_class() -> None:
    with pytest.raises(TrainingDataError, match=f"named '{BACKGROUND_LABEL}'"):
        check_categories(("diver", BACKGROUND_LABEL), with_background=True)


def test_small_categories_are_all_named_with_their_counts() -> None:
    with pytest.raises(TrainingDataError) as caught:
        check_counts({"astronaut": 9, "diver": 2, "cat": 0})
    assert "'diver' (2)" in str(caught.value)
    assert "'cat' (0)" in str(caught.value)
    assert "astronaut" not in str(caught.value)


def test_long_category_names_are_cut_in_errors(tmp_path: Path) -> None:
    long = "a" * 90
    _touch(tmp_path / "diver" / "a.jpg")
    (tmp_path / long).mkdir()
    with pytest.raises(TrainingDataError) as caught:
        scan(tmp_path)
    assert long not in str(caught.value)
