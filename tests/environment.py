"""The environment of a ``deeptag`` subprocess started by a test."""

from __future__ import annotations

import os

#: A test's commands stop the local Triton they start: none lingers after the suite.
NO_LINGERING = {"DEEPTAG_TRITON_LINGER": "false"}


def clean_environment() -> dict[str, str]:
    """This process' environment without its deeptag settings, lingering still off."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")},
        **NO_LINGERING,
    }
