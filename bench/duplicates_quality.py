"""How well `deeptag duplicates` groups near duplicates: precision and recall around the defaults.

An evaluation set made from the photos packages here ship (scikit-image's samples):
- for each colour photo, variants that ARE the same picture: 50 % resize, JPEG quality 40,
  90 % centre crop, +15 % brightness, PNG → JPEG;
- a horizontal flip of each, reported apart (a mirrored copy is an edit that changes the
  picture: it should not be grouped);
- pairs that are similar but NOT the same picture: the two views of the stereo motorcycle
  (two shots of one subject from places a few cm apart), and two overlapping framings of each
  photo (its left and right 65 %: one scene shot from two places);
- unrelated photos (the grey-level samples, textures, the telescope and microscope images).

Everything is indexed by `deeptag index` with a local CPU Triton into an embedded index, as a
user would; then every pair the index's kNN finds above a low cosine is kept with its cosine and
Hamming distance, and the groups `deeptag duplicates` would make are computed for a grid of
thresholds. A predicted pair is two files in one group; precision and recall are over pairs.

Run: .venv/bin/python bench/duplicates_quality.py
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps
from rich.console import Console
from rich.table import Table

from orchestrator.dedupe import DEFAULT_THRESHOLD, MAX_HASH_BITS
from orchestrator.duplicates import (
    SAME_PIXELS_BITS,
    SAME_PIXELS_SLACK,
    build_groups,
    is_near,
)
from orchestrator.phash import hamming
from orchestrator.runtime import shim_options
from orchestrator.samples import sample_dir
from orchestrator.search.base import ImageDocument
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings, load_settings
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port

REPO = Path(__file__).resolve().parents[1]
COLOUR = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "retina.jpg", "ihc.png", "hubble_deep_field.jpg", "color.png")  # fmt: skip
UNRELATED = ("camera.png", "coins.png", "moon.png", "page.png", "brick.png", "grass.png",
             "gravel.png", "horse.png", "text.png", "cell.png", "clock_motion.png")  # fmt: skip
SAME = ("resize50", "jpeg40", "crop90", "bright15", "png2jpeg")
THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.95)
HASH_BITS = (6, 8, 10, 12, 16, 20, 64)


def variants(name: str, image: Image.Image) -> dict[str, tuple[Image.Image, str]]:
    w, h = image.size
    crop = image.crop((w // 20, h // 20, w - w // 20, h - h // 20))
    return {
        "original": (image, "png"),
        "resize50": (image.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "jpg90"),
        "jpeg40": (image, "jpg40"),
        "crop90": (crop, "jpg90"),
        "bright15": (ImageEnhance.Brightness(image).enhance(1.15), "jpg90"),
        "png2jpeg": (image, "jpg95"),
        "flip": (ImageOps.mirror(image), "jpg90"),
        "left65": (image.crop((0, 0, int(w * 0.65), h)), "jpg90"),
        "right65": (image.crop((w - int(w * 0.65), 0, w, h)), "jpg90"),
    }


def save(image: Image.Image, path: Path, how: str) -> None:
    if how == "png":
        image.save(path.with_suffix(".png"))
    else:
        image.save(path.with_suffix(".jpg"), "JPEG", quality=int(how[3:]))


def make_set(folder: Path) -> None:
    samples = sample_dir()
    for name in COLOUR:
        image = Image.open(samples / name).convert("RGB")
        for kind, (variant, how) in variants(name, image).items():
            save(variant, folder / f"{Path(name).stem}__{kind}", how)
    right = Image.open(samples / "motorcycle_right.png").convert("RGB")
    save(right, folder / "motorcycle_left__otherview", "png")
    for name in UNRELATED:
        image = Image.open(samples / name).convert("RGB")
        save(image, folder / f"{Path(name).stem}__original", "png")


@dataclass(frozen=True)
class Pair:
    a: str  # file stems: SOURCE__KIND
    b: str
    cosine: float
    bits: int

    @property
    def same_source(self) -> bool:
        return self.a.split("__")[0] == self.b.split("__")[0]

    def kinds(self) -> set[str]:
        return {self.a.split("__")[1], self.b.split("__")[1]}

    @property
    def truth(self) -> bool:
        """The same picture: a source and its variants (flips, other views and framings are
        not; two variants of one source are)."""
        return self.same_source and self.kinds() <= {"original", *SAME}


async def pairs(settings: Settings) -> tuple[list[Pair], dict[str, ImageDocument]]:
    backend = await open_backend(settings)
    try:
        found = await backend.similar_pairs(0.3, 30)
        documents = {}
        for a, b, _ in found:
            for doc_id in (a, b):
                if doc_id not in documents:
                    document = await backend.get(doc_id)
                    assert document is not None
                    documents[doc_id] = document
    finally:
        await backend.close()
    stem = {d.id: Path(d.uri).stem for d in documents.values()}
    out = []
    for a, b, cosine in found:
        ha, hb = documents[a].phash, documents[b].phash
        bits = hamming(ha, hb) if ha and hb else 64
        out.append(Pair(stem[a], stem[b], cosine, bits))
    return out, documents


def score(
    found: list[Pair], documents: dict[str, ImageDocument], t: float, bits: int
) -> tuple[float, float]:
    by_stem = {Path(d.uri).stem: d.id for d in documents.values()}
    kept = [(by_stem[p.a], by_stem[p.b]) for p in found if is_near(p.cosine, p.bits, t, bits)]
    groups = build_groups(documents, kept)
    predicted = {
        frozenset(pair)
        for g in groups
        for pair in itertools.combinations({Path(m.location).stem for m in g.members}, 2)
    }
    stems = sorted(by_stem)
    truth = {
        frozenset((x, y)) for x, y in itertools.combinations(stems, 2) if Pair(x, y, 1, 0).truth
    }
    hit = len(predicted & truth)
    precision = hit / len(predicted) if predicted else 1.0
    return precision, hit / len(truth) if truth else 1.0


def main() -> None:
    console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="deeptag-dupq-") as tmp:
        work = Path(tmp)
        folder = work / "set"
        folder.mkdir()
        make_set(folder)
        shim = shim_options(load_settings())
        ports = TritonPorts(free_port(), free_port(), free_port())
        with LocalTriton(REPO / "model_repository", work / "triton", ports, shim=shim) as triton:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")},
                "DEEPTAG_TRITON_URL": triton.http_url,
                "DEEPTAG_DATA_DIR": str(work / "data"),
                "DEEPTAG_SEARCH_BACKEND": "embedded",
            }
            subprocess.run(
                [sys.executable, "-m", "orchestrator", "index", str(folder)],
                env=env, check=True, cwd=work, capture_output=True,
            )  # fmt: skip
        settings = Settings(data_dir=work / "data", search_backend="embedded")
        found, documents = asyncio.run(pairs(settings))
    console.print(f"{len(documents)} images in pairs; {len(found)} pairs above cosine 0.3")
    table = Table(
        title="near duplicates: precision / recall of pairs (cosine >= T, hash bits <= H)"
    )
    table.add_column("T \\ H")
    for bits in HASH_BITS:
        table.add_column(str(bits) if bits < 64 else "no hash", justify="right")
    for t in THRESHOLDS:
        cells = [
            f"{p:.2f} / {r:.2f}" for p, r in (score(found, documents, t, b) for b in HASH_BITS)
        ]
        table.add_row(f"{t:.2f}", *cells)
    console.print(table)
    detail = Table(title="every pair involving an original: cosine and hash bits, by kind")
    for column in (
        "kind",
        "pairs",
        "cosine min / median",
        "bits median / max",
        "grouped at defaults",
    ):
        detail.add_column(column, justify="right")
    for kind in (*SAME, "flip", "otherview", "left65", "right65"):
        rows = [p for p in found if p.same_source and p.kinds() == {"original", kind}]
        if not rows:
            detail.add_row(kind, "0", "—", "—", "0")
            continue
        cos = sorted(p.cosine for p in rows)
        bits = sorted(p.bits for p in rows)
        grouped = sum(is_near(p.cosine, p.bits, DEFAULT_THRESHOLD, MAX_HASH_BITS) for p in rows)
        detail.add_row(
            kind, str(len(rows)), f"{cos[0]:.3f} / {cos[len(cos) // 2]:.3f}",
            f"{bits[len(bits) // 2]} / {bits[-1]}", f"{grouped} of {len(rows)}",
        )  # fmt: skip
    console.print(detail)
    different = [p for p in found if not p.same_source]
    if different:
        top = max(different, key=lambda p: p.cosine)
        console.print(
            f"unrelated photos: highest cosine {top.cosine:.3f} ({top.a} / {top.b}, "
            f"{top.bits} bits); least bits {min(p.bits for p in different)}"
        )
    console.print(
        f"defaults: T = {DEFAULT_THRESHOLD}, H = {MAX_HASH_BITS}; hashes within "
        f"{SAME_PIXELS_BITS} bits need T - {SAME_PIXELS_SLACK}"
    )


if __name__ == "__main__":
    main()
