"""``python -m orchestrator.reference [--check] [--docs DIR]``: write or check the pages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestrator.reference import PAGES, render_pages, stale_pages


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the generated pages; with ``--check``, exit 1 naming the stale ones instead."""
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.reference",
        description="Generate the reference pages of the documentation: " + ", ".join(PAGES) + ".",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; fail if a page is out of date"
    )
    parser.add_argument(
        "--docs", type=Path, default=Path("docs"), help="the site's docs folder (default: docs)"
    )
    args = parser.parse_args(argv)
    pages = render_pages()
    if args.check:
        stale = stale_pages(args.docs, pages)
        for page in stale:
            print(
                f"{args.docs / page} is out of date: run `python -m orchestrator.reference`",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for page, text in pages.items():
        target = args.docs / page
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
