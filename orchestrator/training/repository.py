"""Trained probes in the model repository: versions, labels, Triton configs, training reports.

A probe ``astro`` is two Triton models:

- ``astro_head``: the ONNX head (``embedding`` → ``probs``), one numbered directory per
  training run with its ``model.onnx`` and ``training.json`` (classes, measures, when);
  Triton serves the latest, earlier ones stay on disk until deleted;
- ``astro``: an ensemble ``image → <backbone> → astro_head`` with ``labels.txt``, so clients
  call one model that takes the same UINT8 image as the backbone and answers ``probs``
  (classification labels included) and the backbone's ``embedding``.

The backbone runs once per image whichever services ask, and its dynamic batcher gathers the
requests of all of them.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import BadRequest, ModelNotFound, quote_input
from orchestrator.files import write_atomically
from orchestrator.triton.runtime_repository import read_config

HEAD_SUFFIX = "_head"
REPORT_FILE = "training.json"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,58}$")
EMBEDDING_DIMS = 1280
MAX_BATCH_SIZE = 64


def head_name(name: str) -> str:
    return f"{name}{HEAD_SUFFIX}"


def check_name(name: str) -> str:
    """The Triton model name for a probe called ``name`` (lower case, like services).

    Raises:
        BadRequest: the name cannot be a Triton model directory.
    """
    lowered = name.lower()
    if not NAME_PATTERN.match(lowered) or lowered.endswith(HEAD_SUFFIX):
        raise BadRequest(
            f"model name '{quote_input(name)}': use 1 to 59 letters, digits, '_' or '-', "
            f"starting with a letter and not ending in '{HEAD_SUFFIX}'"
        )
    return lowered


@dataclass(frozen=True)
class ProbeInfo:
    name: str
    version: int
    versions: tuple[int, ...]
    labels: tuple[str, ...]
    report: dict[str, Any]

    @property
    def accuracy(self) -> float | None:
        value = self.report.get("measures", {}).get("acc")
        return float(value) if isinstance(value, int | float) else None


def head_config(name: str, classes: int) -> str:
    return f"""# Linear probe head trained by `deeptag train` (one version per training run).
# Production: Triton's ONNX Runtime backend; a {EMBEDDING_DIMS}x{classes} matrix product is
# cheaper on a CPU instance than a copy to a GPU, so the head stays on CPU.
name: "{head_name(name)}"
backend: "onnxruntime"
max_batch_size: {MAX_BATCH_SIZE}
input [
  {{
    name: "embedding"
    data_type: TYPE_FP32
    dims: [ {EMBEDDING_DIMS} ]
  }}
]
output [
  {{
    name: "probs"
    data_type: TYPE_FP32
    dims: [ {classes} ]
  }},
  {{
    name: "embedding_out"
    data_type: TYPE_FP32
    dims: [ {EMBEDDING_DIMS} ]
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: 2000
}}
instance_group [
  {{
    kind: KIND_CPU
    count: 1
  }}
]
version_policy: {{ latest: {{ num_versions: 1 }} }}
"""


def ensemble_config(name: str, backbone: str, classes: int) -> str:
    return f"""# Categories trained by `deeptag train`: image -> {backbone} -> {head_name(name)}.
name: "{name}"
platform: "ensemble"
max_batch_size: {MAX_BATCH_SIZE}
input [
  {{
    name: "image"
    data_type: TYPE_UINT8
    dims: [ 224, 224, 3 ]
  }}
]
output [
  {{
    name: "probs"
    data_type: TYPE_FP32
    dims: [ {classes} ]
    label_filename: "labels.txt"
  }},
  {{
    name: "embedding"
    data_type: TYPE_FP32
    dims: [ {EMBEDDING_DIMS} ]
  }}
]
ensemble_scheduling {{
  step [
    {{
      model_name: "{backbone}"
      model_version: -1
      input_map {{ key: "image" value: "image" }}
      output_map {{ key: "embedding" value: "features" }}
    }},
    {{
      model_name: "{head_name(name)}"
      model_version: -1
      input_map {{ key: "embedding" value: "features" }}
      output_map {{ key: "probs" value: "probs" }}
      output_map {{ key: "embedding_out" value: "embedding" }}
    }}
  ]
}}
"""


class ProbeRepository:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _versions(self, name: str) -> list[int]:
        head_dir = self.root / head_name(name)
        if not head_dir.is_dir():
            return []
        return sorted(
            int(p.name)
            for p in head_dir.iterdir()
            if p.is_dir() and p.name.isdecimal() and (p / REPORT_FILE).is_file()
        )

    def check_free(self, name: str) -> None:
        """Refuse a name taken by a model that is not a probe (the backbone, a text model).

        Raises:
            BadRequest: the name belongs to another kind of model.
        """
        for taken in (name, head_name(name)):
            config = self.root / taken / "config.pbtxt"
            if config.is_file() and not self._versions(name):
                raise BadRequest(
                    f"model name '{name}': {self.root / taken} is another model; "
                    "choose another name"
                )

    def write_version(
        self, name: str, backbone: str, onnx: bytes, labels: tuple[str, ...], report: dict[str, Any]
    ) -> int:
        """Add the next version of ``name`` and point its configs and labels at it."""
        self.check_free(name)
        head_dir = self.root / head_name(name)
        head_dir.mkdir(parents=True, exist_ok=True)
        version = max([0, *self._versions(name), *_numbered(head_dir)]) + 1
        staging = Path(tempfile.mkdtemp(dir=head_dir, prefix=".staging-"))
        try:
            (staging / "model.onnx").write_bytes(onnx)
            full = {**report, "name": name, "version": version, "labels": list(labels)}
            (staging / REPORT_FILE).write_text(json.dumps(full, indent=2) + "\n")
            # A version directory appears whole or not at all.
            staging.rename(head_dir / str(version))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._point_at(name, backbone, labels)
        return version

    def _point_at(self, name: str, backbone: str, labels: tuple[str, ...]) -> None:
        head_dir = self.root / head_name(name)
        write_atomically(head_dir / "config.pbtxt", head_config(name, len(labels)).encode())
        model_dir = self.root / name
        (model_dir / "1").mkdir(parents=True, exist_ok=True)
        labels_text = "".join(f"{label}\n" for label in labels)
        write_atomically(model_dir / "labels.txt", labels_text.encode())
        ensemble = ensemble_config(name, backbone, len(labels))
        write_atomically(model_dir / "config.pbtxt", ensemble.encode())

    def get(self, name: str) -> ProbeInfo:
        """The probe's latest version and its training report.

        Raises:
            ModelNotFound: no trained probe has that name.
        """
        versions = self._versions(name)
        if not versions:
            raise ModelNotFound(f"no trained model '{quote_input(name)}' in {self.root}")
        report_path = self.root / head_name(name) / str(versions[-1]) / REPORT_FILE
        report = json.loads(report_path.read_text())
        return ProbeInfo(
            name, versions[-1], tuple(versions), tuple(report.get("labels", ())), report
        )

    def probes(self) -> list[ProbeInfo]:
        if not self.root.is_dir():
            return []
        found = []
        for model_dir in sorted(self.root.iterdir()):
            config = model_dir / "config.pbtxt"
            if not config.is_file() or read_config(config).platform != "ensemble":
                continue
            if self._versions(model_dir.name):
                found.append(self.get(model_dir.name))
        return found

    def delete_version(self, name: str, version: int, backbone: str) -> ProbeInfo | None:
        """Remove one version; the configs follow the latest remaining one.

        Returns the probe as it is now, or ``None`` when that was its last version (then both
        its models are removed).

        Raises:
            ModelNotFound: the probe or the version does not exist.
        """
        info = self.get(name)
        if version not in info.versions:
            raise ModelNotFound(
                f"model '{name}' has no version {version} (versions: "
                f"{', '.join(map(str, info.versions))})"
            )
        shutil.rmtree(self.root / head_name(name) / str(version))
        if len(info.versions) == 1:
            shutil.rmtree(self.root / head_name(name))
            shutil.rmtree(self.root / name)
            return None
        now = self.get(name)
        self._point_at(name, backbone, now.labels)
        return now


def _numbered(folder: Path) -> list[int]:
    return [int(p.name) for p in folder.iterdir() if p.name.isdecimal()]
