"""DeepDetect's image training layout: one sub-folder per category (pure file-system reads).

``train/astronaut/*.jpg``, ``train/diver/*.jpg``... Every file under a category's folder is a
candidate; the ones that cannot be read as images are skipped and reported by the embedding
stage, like ``deeptag index`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import TrainingDataError, quote_input

#: Usable images a category needs: fewer cannot both train and be held out for measuring.
MIN_IMAGES_PER_CLASS = 5
#: The label of the optional "none of these" class.
BACKGROUND_LABEL = "none"
MAX_LABEL_CHARS = 100


@dataclass(frozen=True)
class ClassFolder:
    name: str
    files: tuple[Path, ...]


@dataclass(frozen=True)
class DatasetLayout:
    root: Path
    classes: tuple[ClassFolder, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def file_count(self) -> int:
        return sum(len(c.files) for c in self.classes)


def _files_under(folder: Path) -> tuple[Path, ...]:
    """Every file below ``folder``, hidden files and folders (``.DS_Store``, ``.git``) aside."""
    return tuple(
        sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )
    )


def scan(folder: Path) -> DatasetLayout:
    """The categories of ``folder`` and their files, refusing layouts that cannot train.

    Raises:
        TrainingDataError: the folder is missing, has no category sub-folders, or a category
            has no files at all.
    """
    shown = quote_input(str(folder))
    if not folder.exists():
        raise TrainingDataError(f"training folder '{shown}' does not exist")
    if not folder.is_dir():
        raise TrainingDataError(
            f"training data '{shown}' is not a folder: expected one sub-folder per category "
            "(train/astronaut/*.jpg, train/diver/*.jpg, ...)"
        )
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subfolders:
        raise TrainingDataError(
            f"training folder '{shown}' has no sub-folders: put each category's images in "
            "a sub-folder named after it (train/astronaut/*.jpg, train/diver/*.jpg, ...)"
        )
    classes = []
    for sub in subfolders:
        name = sub.name.strip()
        if not name or len(name) > MAX_LABEL_CHARS or "\n" in name:
            raise TrainingDataError(
                f"category folder '{quote_input(sub.name)}': a category name must be 1 to "
                f"{MAX_LABEL_CHARS} characters on one line"
            )
        files = _files_under(sub)
        if not files:
            raise TrainingDataError(
                f"category '{quote_input(name)}' ({quote_input(str(sub))}) has no files: "
                f"give it at least {MIN_IMAGES_PER_CLASS} images or remove the folder"
            )
        classes.append(ClassFolder(name, files))
    return DatasetLayout(folder, tuple(classes))


def check_categories(labels: Sequence[str], with_background: bool) -> None:
    """A classifier needs two outcomes: two categories, or one and the background class.

    Raises:
        TrainingDataError: too few categories, or one named like the background class.
    """
    if with_background and BACKGROUND_LABEL in labels:
        raise TrainingDataError(
            f"a category is named '{BACKGROUND_LABEL}', which is the background class's "
            "label: rename the folder or train without background images"
        )
    outcomes = len(labels) + (1 if with_background else 0)
    if outcomes < 2:
        only = f"'{quote_input(labels[0])}'" if labels else "none"
        raise TrainingDataError(
            f"the training data has one category ({only}): a classifier needs at least two "
            "sub-folders, or background images (--background N / input.background) to tell "
            "the category from everything else"
        )


def check_counts(counts: dict[str, int], minimum: int = MIN_IMAGES_PER_CLASS) -> None:
    """Refuse categories with fewer than ``minimum`` usable images, naming every one of them.

    Raises:
        TrainingDataError: some categories are too small.
    """
    small = [f"'{quote_input(label)}' ({n})" for label, n in counts.items() if n < minimum]
    if small:
        raise TrainingDataError(
            f"categories with fewer than {minimum} usable images: {', '.join(small)}; "
            "add images to them or remove their folders"
        )
