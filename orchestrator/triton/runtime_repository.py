"""Turn the canonical (GPU, onnxruntime-backend) model repository into one the bundled CPU
tritonserver can load.

The bundled server only has the python backend. Every ONNX model keeps its name, inputs,
outputs, labels and dynamic batching, and gains a python-backend shim that runs its ONNX file
with onnxruntime. Python-backend models and ensembles (core Triton) are linked through unchanged.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from orchestrator.errors import ConfigError, ModelNotFound

SHIM_SOURCE = Path(__file__).with_name("onnx_shim_model.py")
ONNX_BACKENDS = {"onnxruntime"}
ONNX_PLATFORMS = {"onnxruntime_onnx"}


@dataclass(frozen=True)
class RuntimeModel:
    name: str
    versions: tuple[int, ...]
    via_shim: bool


def read_config(config_path: Path) -> model_config_pb2.ModelConfig:
    try:
        return text_format.Parse(config_path.read_text(), model_config_pb2.ModelConfig())
    except text_format.ParseError as e:
        raise ConfigError(f"{config_path}: not a valid Triton model config: {e}") from e


def _onnx_versions(model_dir: Path, default_filename: str) -> dict[int, Path]:
    versions: dict[int, Path] = {}
    for child in model_dir.iterdir():
        if child.is_dir() and child.name.isdecimal():
            onnx = child / default_filename
            if onnx.is_file():
                versions[int(child.name)] = onnx
    return versions


@dataclass(frozen=True)
class ShimOptions:
    """How the shim runs onnxruntime (see onnx_shim_model.py)."""

    #: onnxruntime threads of each instance; 0: one per core.
    intra_op_threads: int = 0
    #: Model instances: batches the server runs at once, each on its own threads.
    instances: int = 1
    memory_arena: bool = True
    #: Whether onnxruntime's threads spin after each step waiting for the next. Off: measured
    #: here, `deeptag index` gained 6 % on 2 cores, where a spinning thread takes the core the
    #: decoder needs. A box whose Triton has cores to itself may turn it on.
    spinning: bool = False
    #: onnxruntime threads of a batch that finds no other instance of its model running (a
    #: lone call); 0: ``intra_op_threads`` always. With an instance per core, a lone call
    #: would otherwise run on one core while the others idle.
    alone_threads: int = 0
    #: The largest batch that may run on ``alone_threads``: larger ones are bulk work, whose
    #: neighbours (the image decoder) need the other cores.
    alone_max_batch: int = 16


DEFAULT_SHIM = ShimOptions()

#: Model instances a local Triton gets by default: one per core, up to this many.
MAX_AUTO_INSTANCES = 4


def cpu_layout(cores: int, instances: int = 0) -> tuple[int, int]:
    """(model instances, onnxruntime threads each) for a server given ``cores`` (pure).

    ``instances`` 0 picks one per core, up to :data:`MAX_AUTO_INSTANCES`: measured on 2 cores
    beside the decoder (docs/explanation/performance.md), two single-threaded instances, each
    given a batch, tag 5-10 % more images per second than one instance on two threads, whose
    every operator waits at a barrier for the thread the decoder took the core from. The threads
    of all instances add up to about one per core, so they do not preempt each other.
    """
    count = instances or max(1, min(cores, MAX_AUTO_INSTANCES))
    return count, max(1, cores // count)


def shim_config(
    config: model_config_pb2.ModelConfig, options: ShimOptions = DEFAULT_SHIM
) -> model_config_pb2.ModelConfig:
    """The canonical config re-targeted to the python backend on CPU (pure)."""
    shimmed = model_config_pb2.ModelConfig()
    shimmed.CopyFrom(config)
    shimmed.backend = "python"
    shimmed.platform = ""
    shimmed.default_model_filename = ""
    pixels = _takes_pixels(config)
    # An instance per core pays where batches of images queue up (bulk indexing); a text
    # model's calls are a query's few tokens: one instance on every core, half the memory.
    instances = options.instances if pixels else 1
    threads = (
        options.intra_op_threads if pixels else (options.alone_threads or options.intra_op_threads)
    )
    del shimmed.instance_group[:]
    shimmed.instance_group.add(kind=model_config_pb2.ModelInstanceGroup.KIND_CPU, count=instances)
    for tensor in shimmed.input:
        # The shim pads variable-length inputs itself, so requests of different lengths may
        # share an execution; the production ONNX Runtime backend batches equal shapes only.
        if any(d == -1 for d in tensor.dims):
            tensor.allow_ragged_batch = True
    shimmed.parameters["onnx_path"].string_value = "model.onnx"
    shimmed.parameters["intra_op_threads"].string_value = str(threads)
    shimmed.parameters["cpu_memory_arena"].string_value = "1" if options.memory_arena else "0"
    shimmed.parameters["intra_op_spinning"].string_value = "1" if options.spinning else "0"
    # Only a model of pixels gets the second session (see onnx_shim_model.py).
    alone = options.alone_threads if pixels else 0
    shimmed.parameters["alone_threads"].string_value = str(alone)
    shimmed.parameters["alone_max_batch"].string_value = str(options.alone_max_batch)
    return shimmed


def _takes_pixels(config: model_config_pb2.ModelConfig) -> bool:
    """Whether the model's first input is an image (height, width and channels)."""
    return bool(config.input) and len(config.input[0].dims) >= 3


def materialise(
    source: Path,
    target: Path,
    options: ShimOptions = DEFAULT_SHIM,
    only: frozenset[str] | None = None,
) -> list[RuntimeModel]:
    """Write a runtime repository for ``source`` into ``target`` (replacing what is there);
    with ``only``, just the models of those folder names (a command's own server loads what
    it uses: each model is a process and seconds of start-up)."""
    if not source.is_dir():
        raise ModelNotFound(
            f"model repository {source} does not exist: run `deeptag models export`"
        )
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    models: list[RuntimeModel] = []
    for model_dir in sorted(p for p in source.iterdir() if (p / "config.pbtxt").is_file()):
        if only is not None and model_dir.name not in only:
            continue
        config = read_config(model_dir / "config.pbtxt")
        name = config.name or model_dir.name
        if config.backend in ONNX_BACKENDS or config.platform in ONNX_PLATFORMS:
            versions = _onnx_versions(model_dir, config.default_model_filename or "model.onnx")
            if not versions:
                raise ModelNotFound(
                    f"model '{name}' has no exported ONNX file under {model_dir}/<version>/: "
                    "run `deeptag models export`"
                )
            out_dir = target / model_dir.name
            out_dir.mkdir()
            for version, onnx in versions.items():
                version_dir = out_dir / str(version)
                version_dir.mkdir()
                (version_dir / "model.onnx").symlink_to(onnx.resolve())
                shutil.copyfile(SHIM_SOURCE, version_dir / "model.py")
            for label_output in config.output:
                if label_output.label_filename:
                    label_file = model_dir / label_output.label_filename
                    if label_file.is_file():
                        (out_dir / label_output.label_filename).symlink_to(label_file.resolve())
            shimmed = shim_config(config, options)
            (out_dir / "config.pbtxt").write_text(text_format.MessageToString(shimmed))
            models.append(RuntimeModel(name, tuple(sorted(versions)), via_shim=True))
        elif config.backend == "python" or config.platform == "ensemble":
            (target / model_dir.name).symlink_to(model_dir.resolve(), target_is_directory=True)
            versions_found = tuple(
                sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdecimal())
            )
            models.append(RuntimeModel(name, versions_found, via_shim=False))
        # Other backends (TensorRT, PyTorch...) need a full Triton; the local one skips them.
    if not models:
        raise ModelNotFound(f"no servable model in {source}: run `deeptag models export`")
    return models
