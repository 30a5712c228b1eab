"""A small training folder made from the sample photos: random crops, flips and colour shifts.

Each category is one photo, so its images are variations of a single scene: enough to exercise
training end to end, far easier than real categories (a held-out accuracy near 1.0 here says
the mechanism works, not that a real model would be that good).
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

from orchestrator.samples import sample_dir

#: Category name → sample photo of the scikit-image wheel.
CATEGORIES = {
    "astronaut": "astronaut.png",
    "cat": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "motorcycle": "motorcycle_left.png",
}


def augmented(photo: Image.Image, rng: random.Random) -> Image.Image:
    """One random variation: a crop of 45-90% of each side, maybe mirrored, recoloured."""
    width, height = photo.size
    scale = rng.uniform(0.45, 0.9)
    w, h = int(width * scale), int(height * scale)
    left, top = rng.randint(0, width - w), rng.randint(0, height - h)
    image = photo.crop((left, top, left + w, top + h))
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.3))
    return ImageEnhance.Color(image).enhance(rng.uniform(0.6, 1.4))


def make_dataset(
    target: Path, categories: tuple[str, ...], per_class: int, seed: int = 0
) -> dict[str, list[Path]]:
    """Write ``target/<category>/<n>.jpg``; returns the files of each category."""
    rng = random.Random(seed)
    folder = sample_dir()
    written: dict[str, list[Path]] = {}
    for category in categories:
        photo = Image.open(folder / CATEGORIES[category]).convert("RGB")
        out = target / category
        out.mkdir(parents=True, exist_ok=True)
        written[category] = []
        for i in range(per_class):
            path = out / f"{category}-{i:03d}.jpg"
            augmented(photo, rng).save(path, "JPEG", quality=88)
            written[category].append(path)
    return written
