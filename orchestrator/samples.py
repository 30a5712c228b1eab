"""Sample photos that ship inside the scikit-image wheel (no download needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from orchestrator.errors import ConfigError

SAMPLE_FILES = (
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "astronaut.png",
    "motorcycle_left.png",
)


def sample_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the sample photos come with scikit-image: run `pip install -e '.[samples]'` "
            "(or `make setup`)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def sample_photos() -> list[Path]:
    """The demo photos, in a fixed order."""
    folder = sample_dir()
    return [folder / name for name in SAMPLE_FILES]
