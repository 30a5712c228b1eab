"""How well and how fast the OCR analysis reads text, through a local CPU Triton.

(a) A generated set: English sentences (signs, notices, labels) drawn with DejaVu and
    Liberation fonts on the sample photos (scikit-image's), lightened with dark text or darkened
    with light text, rotated -5..5 degrees, 16-80 px high in images of 640 to 4000 px; word
    accuracy (share of drawn words found among the words read, case-sensitive) and exact-line
    rate, by image size x text height and by rotation. Images larger than 960 px are read from
    their 960 px view, as the indexer does, so the text is smaller there than drawn.
(b) Real pictures with text that installed packages ship, with hand-made transcriptions.
(c) Throughput: images per second, CPU seconds per image (client and Triton) and time in the
    detection and recognition calls, with the shim laid out 1 instance x 1 thread and
    2 instances x 1 thread.

Run: .venv/bin/python bench/ocr_quality.py [--count 60] [--out bench/out/ocr]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table

from orchestrator.analysis.ocr import CALLS_IN_FLIGHT, OcrAnalysis, RapidOps, read_characters
from orchestrator.preprocess import prepare
from orchestrator.samples import sample_dir
from orchestrator.sources import classify
from orchestrator.triton.client import TritonClient, open_client
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port
from orchestrator.triton.runtime_repository import ShimOptions
from orchestrator.types import ImageBytes, PreparedImage

REPO = Path(__file__).resolve().parents[1] / "model_repository"
FONTS = Path("/usr/share/fonts/truetype")
FONT_FILES = ("dejavu/DejaVuSans.ttf", "dejavu/DejaVuSerif.ttf", "dejavu/DejaVuSans-Bold.ttf",
              "dejavu/DejaVuSansCondensed.ttf", "liberation/LiberationSans-Regular.ttf",
              "liberation/LiberationSerif-Regular.ttf", "liberation/LiberationMono-Regular.ttf",
              "liberation/LiberationSans-Bold.ttf")  # fmt: skip
PHOTOS = ("coffee.png", "chelsea.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png",
          "retina.jpg", "hubble_deep_field.jpg", "brick.png", "grass.png")  # fmt: skip
SENTENCES = ("EMERGENCY EXIT", "No parking at any time", "Open daily 9am to 5pm",
             "PLATFORM 4", "Please keep this door closed", "Fresh bread and coffee",
             "Welcome to Springfield", "Speed limit 30", "Wet paint do not touch",
             "Room 214 Meeting", "Happy Birthday Anna", "Sale 50% off everything",
             "Museum of Modern Art", "Keep calm and carry on", "Departures Gate B12",
             "Best before 12/2025", "Authorised personnel only", "Bus stop", "Tickets here",
             "Made in Portugal", "Garden centre closed on Sundays", "Hotel Bellevue",
             "Fire assembly point", "Mind the gap", "Station Road", "Live music tonight",
             "Free WiFi", "Ring bell for service", "Toilets", "Library quiet please")  # fmt: skip
SIZES = ((640, 480), (1280, 960), (2400, 1600), (4000, 3000))
HEIGHTS = (16, 24, 40, 80)
VIEW_SIDE = 960
CHUNK = 8  # images per analysis call, as a pipeline batch


@dataclass(frozen=True)
class Case:
    name: str
    image: PreparedImage
    lines: tuple[str, ...]
    size: tuple[int, int]
    height: int
    angle: float
    encoded: bytes


def fitting(words: list[str], font: ImageFont.FreeTypeFont, width: int) -> str:
    """The longest head of ``words`` that fits in ``width`` pixels."""
    while len(words) > 1 and font.getlength(" ".join(words)) > width:
        words = words[:-1]
    return " ".join(words)


def render(index: int, rng: random.Random) -> Case:
    size = SIZES[index % len(SIZES)]
    height = HEIGHTS[(index // len(SIZES)) % len(HEIGHTS)]
    angle = rng.uniform(-5, 5)
    photo = Image.open(sample_dir() / rng.choice(PHOTOS)).convert("RGB")
    canvas = photo.resize(size, Image.Resampling.BICUBIC)
    # The photo squeezed into a light range under dark text, or a dark one under light text
    # (a poster, a lit sign): legible, whatever the photo's own brightness.
    light_text = rng.random() < 1 / 3
    low, high = (0, 110) if light_text else (140, 255)
    canvas = canvas.point(lambda v: low + v * (high - low) // 255)
    ink = (245, 245, 235, 255) if light_text else (rng.randint(0, 60), 20, 30, 255)
    font = ImageFont.truetype(str(FONTS / rng.choice(FONT_FILES)), height)
    count = min(rng.randint(1, 3), int((size[1] - height) / (2.2 * height)))
    lines = []
    top = rng.randint(height, max(height, size[1] - int(count * 2.2 * height) - height))
    for n in range(count):
        text = fitting(rng.choice(SENTENCES).split(), font, int(size[0] * 0.85))
        left = rng.randint(size[0] // 20, max(size[0] // 20, size[0] - int(font.getlength(text))))
        left = min(left, size[0] - int(font.getlength(text)) - 2)
        layer = Image.new("RGBA", size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        y = top + int(n * 2.2 * height)
        draw.text((max(0, left), y), text, font=font, fill=ink)
        centre = (left + font.getlength(text) / 2, y + height / 2)
        layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, center=centre)
        canvas.paste(layer, (0, 0), layer)
        lines.append(text)
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=88)
    name = f"gen{index:03d}-{size[0]}x{size[1]}-h{height}.jpg"
    image = prepare(ImageBytes(classify(name, 0), out.getvalue()), 10**9, view_side=VIEW_SIDE)
    return Case(name, image, tuple(lines), size, height, angle, out.getvalue())


def words(text: str) -> list[str]:
    return text.split()


def loose(text: str) -> list[str]:
    """Words without case or punctuation."""
    return [w for w in re.sub(r"[^\w%/ ]", " ", text.lower()).split() if w]


def score(truth: Sequence[str], found: str) -> tuple[int, ...]:
    """(words found exactly, words, found ignoring case/punctuation, such words, exact lines,
    lines read right but for spaces, lines)."""
    read = Counter(words(found))
    read_loose = Counter(loose(found))
    truth_words = Counter(w for line in truth for w in words(line))
    truth_loose = Counter(w for line in truth for w in loose(line))
    exact = sum(min(n, read[w]) for w, n in truth_words.items())
    relaxed = sum(min(n, read_loose[w]) for w, n in truth_loose.items())
    found_lines = found.split("\n")
    lines = sum(1 for line in truth if line in found_lines)
    squeezed = {line.replace(" ", "") for line in found_lines}
    spaceless = sum(1 for line in truth if line.replace(" ", "") in squeezed)
    return (
        exact,
        sum(truth_words.values()),
        relaxed,
        sum(truth_loose.values()),
        lines,
        spaceless,
        len(truth),
    )


class Timed:
    """A ModelCaller that adds up the time spent in each model's calls."""

    def __init__(self, inner: TritonClient) -> None:
        self.inner = inner
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    async def infer(
        self, model: str, inputs: Mapping[str, Any], outputs: Sequence[str]
    ) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return await self.inner.infer(model, inputs, outputs)
        finally:
            self.seconds[model] += time.perf_counter() - started
            self.calls[model] += 1

    async def check_models(self, models: Sequence[str], advice: str) -> None:
        return None


def analyse(
    url: str, images: Sequence[PreparedImage], analysis: OcrAnalysis
) -> tuple[list[dict[str, Any]], Timed]:
    async def go() -> tuple[list[dict[str, Any]], Timed]:
        endpoint = Endpoint.parse(url)
        client = TritonClient(endpoint, "ocr_det")
        client._client = open_client(endpoint, 120)
        timed = Timed(client)
        fields: list[dict[str, Any]] = []
        try:
            for start in range(0, len(images), CHUNK):
                results = await analysis.run(images[start : start + CHUNK], timed)
                fields.extend(r.to_fields() for r in results)
        finally:
            await client.close()
        return fields, timed

    return asyncio.run(go())


@contextmanager
def local_triton(work: Path, shim: ShimOptions) -> Iterator[LocalTriton]:
    ports = TritonPorts(free_port(), free_port(), free_port())
    only = frozenset({"ocr_det", "ocr_rec"})
    with LocalTriton(REPO, work / f"triton-{ports.http}", ports, shim=shim, only=only) as t:
        yield t


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the processes in a group (tritonserver and its stubs)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def percent(n: int, d: int) -> str:
    return f"{100 * n / d:.0f} %" if d else "-"


def tally(
    cases: Sequence[Case], fields: Sequence[dict[str, Any]], key: Any
) -> dict[Any, list[int]]:
    """The scores of ``cases`` added up by ``key(case)``."""
    sums: dict[Any, list[int]] = defaultdict(lambda: [0] * 7)
    for case, found in zip(cases, fields, strict=True):
        for i, v in enumerate(score(case.lines, found.get("text", ""))):
            sums[key(case)][i] += v
    return sums


def view_px(case: Case) -> float:
    """The text's height in the view OCR reads."""
    return case.height * min(1.0, VIEW_SIDE / max(case.size))


def band(case: Case) -> str:
    angle = abs(case.angle)
    return "0-1°" if angle < 1 else "1-3°" if angle < 3 else "3-5°"


def quality(
    console: Console, url: str, cases: list[Case], variants: Mapping[str, OcrAnalysis]
) -> list[Any]:
    """Tables (a); the first variant is the default, the others are compared overall."""
    images = [c.image for c in cases]
    read = {label: analyse(url, images, analysis)[0] for label, analysis in variants.items()}
    default = next(iter(read.values()))
    by_cell = tally(cases, default, lambda c: (c.size[0], c.height))
    grid = Table(title=f"(a) words found, by image size x text height drawn ({len(cases)} images)")
    grid.add_column("text px")
    for width, height in SIZES:
        grid.add_column(f"{width}x{height}", justify="right")
    for h in HEIGHTS:
        cells = []
        for w, w_h in SIZES:
            hits, n, *_ = by_cell[(w, h)]
            view_h = h * min(1.0, VIEW_SIDE / max(w, w_h))
            cells.append(f"{percent(hits, n)} of {n} ({view_h:.0f} px in view)" if n else "-")
        grid.add_row(str(h), *cells)
    console.print(grid)
    table = Table(title="(a) by rotation (text >= 10 px in the view), and overall")
    for column in ("rotation / variant", "words", "words (any case)", "exact lines",
                   "lines but for spaces", "lines"):  # fmt: skip
        table.add_column(column, justify="right")

    def row(label: str, sums: list[int]) -> None:
        e, n, r, nr, el, sl, nl = sums
        table.add_row(
            label, percent(e, n), percent(r, nr), percent(el, nl), percent(sl, nl), str(nl)
        )

    legible = [(c, f) for c, f in zip(cases, default, strict=True) if view_px(c) >= 10]
    by_band = tally([c for c, _ in legible], [f for _, f in legible], band)
    for name, sums in sorted(by_band.items()):
        row(name, sums)
    for label, fields in read.items():
        row(f"all, {label}", tally(cases, fields, lambda c: "all")["all"])
    console.print(table)
    return [
        {"name": c.name, "truth": c.lines, "read": f.get("text", "")}
        for c, f in zip(cases, default, strict=True)
    ]


def no_text(console: Console, url: str, analysis: OcrAnalysis) -> None:
    """What is read in scikit-image's photos without text (false readings)."""
    folder = sample_dir()
    names = [*PHOTOS, "camera.png", "coins.png", "horse.png", "moon.png"]
    images = [
        prepare(ImageBytes(classify(n, 0), (folder / n).read_bytes()), 10**9, view_side=VIEW_SIDE)
        for n in names
    ]
    fields, _ = analyse(url, images, analysis)
    read = [f"{n}: {f['text']!r}" for n, f in zip(names, fields, strict=True) if f]
    console.print(
        f"(a) photos without text: {len(read)} of {len(names)} read something: "
        + ("; ".join(read) or "none")
    )


def real_images() -> list[tuple[str, Path, tuple[str, ...]]]:
    """(what, file, transcription) of pictures with text that installed packages ship."""
    data = sample_dir()
    found = [
        (
            "scikit-image page.png: a photographed book page (384x191)",
            data / "page.png",
            ("Region-based segmentation", "Let us first determine markers of the coins and the",
             "background. These markers are pixels that we can label",
             "unambiguously as either object or background. Here,",
             "the markers are found at the two extreme parts of the",
             "histogram of grey values:", ">>> markers = np.zeros_like(coins)"),
        ),
        (
            "scikit-image text.png: handwritten formulas on paper, photographed (448x172)",
            data / "text.png",
            (),
        ),
    ]  # fmt: skip
    rust = Path.home() / ".rustup/toolchains"
    for screenshot in sorted(rust.glob("*/share/doc/rust/html/cargo/images/build-info.png"))[:1]:
        found.append(
            (
                "rust-docs (rustup) cargo build-info.png: a screenshot of a table (563x398)",
                screenshot,
                ("Targets:", 'cargo 0.70.0 (lib, bin "cargo")', "Profile:", "dev",
                 "Fresh units:", "0", "Dirty units:", "302", "Total units:", "302",
                 "Max concurrency:", "6 (jobs=4 ncpu=4)", "Build start:", "2023-03-03T10:48:37Z",
                 "Total time:", "132.5s (2m 12.5s)", "rustc:",
                 "rustc 1.69.0-nightly (ef982929c 2023-01-27)", "Host: x86_64-unknown-linux-gnu",
                 "Target: x86_64-unknown-linux-gnu"),
            )
        )  # fmt: skip
    return found


def real(console: Console, url: str, analysis: OcrAnalysis) -> None:
    pictures = real_images()
    images = [
        prepare(ImageBytes(classify(str(p), 0), p.read_bytes()), 10**9, view_side=VIEW_SIDE)
        for _, p, _ in pictures
    ]
    fields, _ = analyse(url, images, analysis)
    table = Table(title="(b) real pictures with text")
    for column in ("picture", "words", "any case", "exact lines", "read"):
        table.add_column(column, overflow="fold")
    for (what, _, truth), found in zip(pictures, fields, strict=True):
        text = found.get("text", "")
        e, n, r, nr, el, _sl, nl = score(truth, text)
        table.add_row(
            what,
            f"{percent(e, n)} of {n}" if n else "no truth",
            percent(r, nr),
            f"{el}/{nl}",
            text.replace("\n", " | "),
        )
    console.print(table)


def throughput(console: Console, work: Path, cases: list[Case], characters: list[str]) -> None:
    images = [c.image for c in cases]
    table = Table(title=f"(c) throughput, {len(images)} images (mixed sizes), calls of {CHUNK}")
    columns = ("Triton instances", "calls in flight", "images/s", "CPU s/image",
               "images/s/core", "det call s/image", "rec call s/image", "rec calls")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    layouts = ((1, 1), (1, CALLS_IN_FLIGHT), (2, CALLS_IN_FLIGHT), (2, 4))
    for instances, in_flight in layouts:
        shim = ShimOptions(intra_op_threads=1, instances=instances)
        with local_triton(work, shim) as triton:
            analysis = OcrAnalysis(RapidOps(characters), 0.5, calls_in_flight=in_flight)
            analyse(triton.http_url, images[:CHUNK], analysis)  # warm the arenas
            assert triton.pid is not None
            cpu_server = group_cpu_seconds(triton.pid)
            cpu_client = time.process_time()
            started = time.perf_counter()
            _, timed = analyse(triton.http_url, images, analysis)
            wall = time.perf_counter() - started
            cpu = (time.process_time() - cpu_client) + group_cpu_seconds(triton.pid) - cpu_server
        n = len(images)
        table.add_row(
            f"{instances} x 1 thread",
            str(in_flight),
            f"{n / wall:.2f}",
            f"{cpu / n:.3f}",
            f"{n / cpu:.2f}",
            f"{timed.seconds['ocr_det'] / n:.3f}",
            f"{timed.seconds['ocr_rec'] / n:.3f}",
            str(timed.calls["ocr_rec"]),
        )
    console.print(table)
    console.print(
        "One instance x 1 thread is Triton on 1 core, two on 2 (this machine has 2; the client "
        "shares them). call s/image add up the time each call waits (calls overlap); CPU "
        "s/image counts the client process and every process of Triton's group."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60, help="Generated images for (a).")
    parser.add_argument("--out", type=Path, help="Save the images and what was read here.")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    console = Console(width=140)
    characters = read_characters(REPO / "ocr_rec" / "characters.txt")
    rng = random.Random(args.seed)
    cases = [render(i, rng) for i in range(args.count)]
    with tempfile.TemporaryDirectory(prefix="deeptag-ocr-") as tmp:
        work = Path(tmp)
        with local_triton(work, ShimOptions()) as triton:
            analysis = OcrAnalysis(RapidOps(characters), 0.5)
            variants = {
                "as shipped": analysis,
                "argmax spaces (rapidocr)": OcrAnalysis(RapidOps(characters, 1.0), 0.5),
                "rec batches of 1": OcrAnalysis(RapidOps(characters), 0.5, rec_batch=1),
            }
            rows = quality(console, triton.http_url, cases, variants)
            no_text(console, triton.http_url, analysis)
            real(console, triton.http_url, analysis)
        throughput(console, work, cases[: min(len(cases), 32)], characters)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for case in cases:
            (args.out / case.name).write_bytes(case.encoded)
        (args.out / "read.json").write_text(json.dumps(rows, indent=1))
        console.print(f"images and results in {args.out}")


if __name__ == "__main__":
    main()
