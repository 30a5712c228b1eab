"""What a tagging model on Triton is, read from its metadata and config (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.errors import ModelNotFound

INPUT_NAME = "image"
PROBS_NAME = "probs"
EMBEDDING_NAME = "embedding"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    max_batch_size: int
    input_shape: tuple[int, ...]  # without the batch dimension
    outputs: tuple[str, ...]
    num_classes: int
    #: Batches the server(s) run at once: its model instances (of all endpoints, for a pool).
    #: A caller that keeps this many in flight leaves none idle.
    instances: int = 1


def instance_count(config: dict[str, Any]) -> int:
    """Model instances a Triton model config declares: each group's count, times its GPUs
    (Triton's autocompleted config lists them); 1 when it declares none."""
    total = 0
    for group in config.get("instance_group") or []:
        gpus = len(group.get("gpus") or []) if group.get("kind") == "KIND_GPU" else 0
        total += int(group.get("count", 1)) * max(1, gpus)
    return max(1, total)


def model_info(
    model: str, where: str, metadata: dict[str, Any], config: dict[str, Any]
) -> ModelInfo:
    """``model`` as served at ``where``; :class:`ModelNotFound` if it lacks what tagging needs."""
    inputs = {i["name"]: i for i in metadata["inputs"]}
    outputs = tuple(o["name"] for o in metadata["outputs"])
    problems = []
    if INPUT_NAME not in inputs or inputs[INPUT_NAME]["datatype"] != "UINT8":
        problems.append(f"an input '{INPUT_NAME}' of type UINT8")
    if PROBS_NAME not in outputs:
        problems.append(f"an output '{PROBS_NAME}'")
    if problems:
        raise ModelNotFound(f"model '{model}' on {where} lacks " + " and ".join(problems))
    shape = tuple(int(d) for d in inputs[INPUT_NAME]["shape"][1:])
    probs = next(o for o in metadata["outputs"] if o["name"] == PROBS_NAME)
    versions = metadata.get("versions") or ["1"]
    return ModelInfo(
        name=model,
        version=str(versions[-1]),
        max_batch_size=int(config.get("max_batch_size", 0)) or 1,
        input_shape=shape,
        outputs=outputs,
        num_classes=int(probs["shape"][-1]),
        instances=instance_count(config),
    )
