"""`deeptag index` with and without the analyses (OCR, safety), in one run: images/s.

Makes N photos of 1-3 megapixels (bench/index_throughput.py's generator), a third of them
with a sign of rendered text (DejaVu fonts, from Debian's fonts-dejavu-core), then runs
`deeptag index` as a user would (no DEEPTAG_TRITON_URL: each command starts the local Triton
it needs, laid out for bulk work) on the embedded backend:

- classification only; each analysis alone (`--ocr` / `--safety` on the folder already
  indexed: only the analysis runs); and classification with each and both, on fresh indexes.

"Beside, not after" means the fresh `--ocr` run costs about the larger of classification and
OCR per image, not their sum, where the machine has the cores for both; on a CPU-only Triton
they share the same cores, so the sum is the bound there. The table says which.

Run: .venv/bin/python bench/analysis_throughput.py [--count 200]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_throughput import make_photos

SUMMARY = re.compile(r"(\d+) indexed, (\d+) skipped .* in ([\d.]+) s")
ANALYSED = re.compile(r"(\d+) image\(s\) indexed before given the analyses")
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
SIGNS = ("EMERGENCY EXIT", "NO PARKING", "Platform 9", "OPEN 24 HOURS", "Coffee & Tea")


def add_signs(folder: Path) -> None:
    """A sign of text on every third photo, about a tenth of its height."""
    for i, path in enumerate(sorted(folder.glob("*.jpg"))):
        if i % 3:
            continue
        image = Image.open(path).convert("RGB")
        draw = ImageDraw.Draw(image)
        font = ImageFont.truetype(FONT, max(16, image.height // 12))
        text = SIGNS[i % len(SIGNS)]
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        x, y = image.width // 10, image.height // 3
        draw.rectangle((x - 20, y - 20, x + right - left + 20, y + bottom - top + 30), fill="white")
        draw.text((x - left, y - top), text, font=font, fill=(20, 20, 20))
        image.save(path, "JPEG", quality=90)


def run(folder: Path, data_dir: Path, *flags: str) -> tuple[float, int, int]:
    """(seconds of the run as its summary says, images indexed, images only analysed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")}
    env["DEEPTAG_TRITON_LINGER"] = "false"  # each run starts and stops its own
    # Wide enough that the summary is one line.
    env.update(DEEPTAG_DATA_DIR=str(data_dir), DEEPTAG_SEARCH_BACKEND="embedded", COLUMNS="400")
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "index", *flags, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        cwd=data_dir.parent,
    )
    if done.returncode != 0:
        raise SystemExit(f"deeptag index {' '.join(flags)} failed:\n{done.stderr}")
    summary = SUMMARY.search(done.stderr)
    if summary is None:
        raise SystemExit(f"no summary in:\n{done.stderr}")
    analysed = ANALYSED.search(done.stderr)
    return float(summary.group(3)), int(summary.group(1)), int(analysed.group(1)) if analysed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="deeptag-analyses-") as tmp:
        work = Path(tmp)
        folder = work / "photos"
        mean_mb = make_photos(folder, args.count)
        add_signs(folder)
        rows: list[tuple[str, float, int]] = []

        def record(name: str, data: str, *flags: str) -> float:
            seconds, indexed, analysed = run(folder, work / data, *flags)
            rows.append((name, seconds, indexed or analysed))
            return seconds

        record("classification only", "plain")
        record("OCR only (--ocr on the indexed folder)", "plain", "--ocr")
        record("safety only (--safety on the indexed folder)", "plain", "--safety")
        record("classification + safety (--safety)", "safety", "--safety")
        record("classification + OCR (--ocr)", "ocr", "--ocr")
        record("classification + both", "both", "--ocr", "--safety")
    per_image = {name: seconds / max(1, n) for name, seconds, n in rows}
    table = Table(
        title=f"deeptag index, {args.count} photos of ~{mean_mb:.1f} MB (a third with text), "
        f"embedded backend, {os.cpu_count()} cores"
    )
    for column in ("run", "images", "seconds", "images/s", "ms/image"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name, seconds, n in rows:
        table.add_row(
            name, str(n), f"{seconds:.1f}", f"{n / seconds:.1f}", f"{1000 * seconds / n:.0f}"
        )
    console.print(table)
    plain = per_image["classification only"]
    ocr = per_image["OCR only (--ocr on the indexed folder)"]
    both = per_image["classification + OCR (--ocr)"]
    console.print(
        f"classification + OCR: {1000 * both:.0f} ms/image; the sum of each alone "
        f"{1000 * (plain + ocr):.0f}, the larger {1000 * max(plain, ocr):.0f}"
    )


if __name__ == "__main__":
    main()
