"""Typed values passed between pipeline stages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator.concepts import Concept
from orchestrator.errors import ItemError
from orchestrator.photo import PhotoMetadata


class SourceKind(StrEnum):
    URL = "url"
    PATH = "path"
    BASE64 = "base64"


@dataclass(frozen=True)
class ImageSource:
    """One item of a request's ``data``: where the image comes from and how it is named."""

    uri: str
    kind: SourceKind
    #: The URL, the path, or the base64 text (without any data-URI header).
    location: str


@dataclass(frozen=True)
class ImageBytes:
    source: ImageSource
    data: bytes
    #: For a local file, its size and st_mtime as seen by the read itself (fstat of the open
    #: file), so the index records the state of the very bytes it tagged; None otherwise.
    size: int | None = None
    mtime: float | None = None


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """A decoded image, resized and cropped to the model's input."""

    source: ImageSource
    pixels: npt.NDArray[np.uint8]  # [224, 224, 3] RGB
    width: int
    height: int
    sha256: str
    #: What the photo says about itself (EXIF, XMP, IPTC), read from the same parse.
    photo: PhotoMetadata | None = None
    #: The file's size and mtime when it was read (see :class:`ImageBytes`).
    size: int | None = None
    mtime: float | None = None
    #: The 64-bit perceptual hash of the upright image, 16 hex digits (``orchestrator.phash``).
    phash: str | None = None
    #: The whole upright image, its longest side at most the size an analysis asked for (OCR
    #: reads text from it); None when no analysis needs more than the crop.
    view: npt.NDArray[np.uint8] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Label:
    category: str  # "n07920052 espresso"
    score: float

    @property
    def words(self) -> str:
        """The label without its WordNet id: "espresso"."""
        wnid, _, words = self.category.partition(" ")
        return words if wnid[:1] == "n" and wnid[1:].isdigit() else self.category


@dataclass(frozen=True, eq=False)
class Prediction:
    source: ImageSource
    labels: tuple[Label, ...]
    width: int
    height: int
    sha256: str
    embedding: npt.NDArray[np.float32] | None = field(default=None, repr=False)
    #: WordNet concepts above the labels; set only when the whole probability vector was asked for.
    concepts: tuple[Concept, ...] | None = None
    #: The image's point in the text encoder's space (unit length), for semantic search.
    semantic: npt.NDArray[np.float32] | None = field(default=None, repr=False)
    #: When, where and with what the photo was taken, and the user's own words about it.
    photo: PhotoMetadata | None = None
    #: The file's size and mtime when it was read (see :class:`ImageBytes`).
    size: int | None = None
    mtime: float | None = None
    #: The image's perceptual hash (see :class:`PreparedImage`).
    phash: str | None = None
    #: What each analysis that ran found, by its name (``orchestrator.analysis``): the JSON
    #: fields it adds (``{"ocr": {"text": ..., "text_lines": [...]}, "safety": {"nsfw": 0.01}}``).
    analyses: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemFailure:
    """A source that could not be tagged; the rest of its batch goes on without it."""

    source: ImageSource
    error: ItemError

    @property
    def reason(self) -> str:
        return self.error.reason


Outcome = Prediction | ItemFailure
