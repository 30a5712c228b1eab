"""Put a freshly trained model in front of a running Triton, without restarting it.

The local launcher runs Triton with ``--model-control-mode=explicit``: the new (or newly
versioned) head and its ensemble are materialised into the runtime repository the server
reads, then loaded through Triton's repository API. A Triton elsewhere is asked to load them
from its own repository (which must hold ``model_repository/``); one that polls its
repository, or does not allow loading on request, is told what to do instead.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonclient.utils import InferenceServerException

from orchestrator.runtime import TritonHandle
from orchestrator.settings import Settings
from orchestrator.training.repository import head_name
from orchestrator.triton.runtime_repository import materialise


@dataclass(frozen=True)
class Publication:
    loaded: bool
    message: str


def local_runtime_repository(triton: TritonHandle) -> Path | None:
    """The runtime repository of the local Triton in use, if deeptag launched it."""
    if triton.runtime_repository is not None and triton.runtime_repository.is_dir():
        return triton.runtime_repository
    return None


def refresh_runtime(source: Path, runtime: Path, models: tuple[str, ...]) -> None:
    """Re-materialise ``models`` of the canonical ``source`` repository into ``runtime``."""
    with tempfile.TemporaryDirectory(dir=runtime.parent, prefix=".refresh-") as scratch:
        view = Path(scratch) / "view"
        view.mkdir()
        for name in models:
            (view / name).symlink_to((source / name).resolve(), target_is_directory=True)
        built = Path(scratch) / "built"
        materialise(view, built)
        for name in models:
            live = runtime / name
            if live.is_symlink() or live.is_file():
                live.unlink()
            elif live.exists():
                shutil.rmtree(live)
            (built / name).rename(live)


async def _load(triton: TritonHandle, models: tuple[str, ...], timeout_s: float) -> None:
    """Load ``models`` in order through one repository-API client."""
    endpoint = triton.endpoint
    module: Any = importlib.import_module(
        "tritonclient.grpc.aio" if endpoint.protocol == "grpc" else "tritonclient.http.aio"
    )
    client = module.InferenceServerClient(endpoint.address, ssl=endpoint.ssl)
    try:
        for model in models:
            await asyncio.wait_for(client.load_model(model), timeout_s)
    finally:
        await client.close()


async def publish(
    settings: Settings, triton: TritonHandle, name: str, *, timeout_s: float = 120.0
) -> Publication:
    """Make Triton serve the latest version of probe ``name`` (head first, then ensemble)."""
    models = (head_name(name), name)
    runtime = local_runtime_repository(triton)
    if runtime is not None:
        refresh_runtime(settings.model_repository, runtime, models)
    try:
        await _load(triton, models, timeout_s)
    except (InferenceServerException, OSError, TimeoutError) as e:
        text = e.message() if isinstance(e, InferenceServerException) else str(e)
        return Publication(
            False,
            f"Triton at {triton.endpoint} did not load '{name}' ({text or type(e).__name__}); "
            "it is in the model repository: a Triton that polls its repository picks it up, "
            "others serve it after a restart (`deeptag triton start` loads on request)",
        )
    return Publication(True, f"Triton at {triton.endpoint} serves '{name}'")
