"""How errors quote user input: short, and still naming the file."""

from orchestrator.errors import INPUT_QUOTE_CHARS, quote_input


def test_short_input_is_quoted_whole() -> None:
    assert quote_input("/photos/cat.jpg") == "/photos/cat.jpg"


def test_a_long_path_keeps_its_start_and_its_file_name() -> None:
    # A deep checkout or mount point must not push the file name out of the message.
    path = "/check/work/main/.venv/lib/python3.11/site-packages/skimage/data/no-such-photo.jpg"
    quoted = quote_input(path)
    assert len(quoted) <= INPUT_QUOTE_CHARS
    assert quoted.startswith("/check/work/")
    assert quoted.endswith("/no-such-photo.jpg")
    assert "…" in quoted


def test_a_huge_input_is_cut_to_the_limit() -> None:
    quoted = quote_input("x" * 300_000, 20)
    assert len(quoted) == 20
    assert quoted.count("…") == 1
