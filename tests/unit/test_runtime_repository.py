from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from orchestrator.errors import ModelNotFound
from orchestrator.runtime import shim_options
from orchestrator.settings import Settings
from orchestrator.triton.runtime_repository import (
    ShimOptions,
    cpu_layout,
    materialise,
    read_config,
)

REPO = Path(__file__).resolve().parents[2] / "model_repository"


def test_canonical_config_is_for_gpu_onnxruntime_with_dynamic_batching() -> None:
    config = read_config(REPO / "efficientnet_lite0" / "config.pbtxt")
    assert config.backend == "onnxruntime"
    assert config.max_batch_size == 64
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    assert list(config.dynamic_batching.preferred_batch_size)
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert config.output[0].label_filename == "labels.txt"
    image = config.input[0]
    assert (image.name, image.data_type, list(image.dims)) == (
        "image",
        model_config_pb2.TYPE_UINT8,
        [224, 224, 3],
    )


def test_runtime_repository_keeps_io_and_batching_but_runs_the_shim(
    exported_model: Path, tmp_path: Path
) -> None:
    only = frozenset({"efficientnet_lite0", "minilm_l6"})
    models = materialise(exported_model, tmp_path / "runtime", only=only)
    # Only the models asked for: a command's Triton loads none of the analyses left off.
    assert [(m.name, m.via_shim) for m in models] == [
        ("efficientnet_lite0", True),
        ("minilm_l6", True),
    ]
    assert sorted(p.name for p in (tmp_path / "runtime").iterdir()) == sorted(only)
    model_dir = tmp_path / "runtime" / "efficientnet_lite0"
    shimmed = text_format.Parse(
        (model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    original = read_config(exported_model / "efficientnet_lite0" / "config.pbtxt")
    assert shimmed.backend == "python"
    assert shimmed.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert shimmed.input == original.input
    assert shimmed.output == original.output
    assert shimmed.dynamic_batching == original.dynamic_batching
    assert (model_dir / "1" / "model.py").is_file()
    assert (model_dir / "1" / "model.onnx").resolve() == (
        exported_model / "efficientnet_lite0" / "1" / "model.onnx"
    ).resolve()
    assert (model_dir / "labels.txt").read_text().startswith("n01440764 tench")


def test_missing_onnx_says_to_export(repository_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="deeptag models export"):
        materialise(repository_copy, tmp_path / "runtime")


def test_the_onnxruntime_settings_reach_the_shim(exported_model: Path, tmp_path: Path) -> None:
    def parameter(options: ShimOptions, name: str, model: str = "efficientnet_lite0") -> str:
        target = tmp_path / f"runtime-{options.memory_arena}-{options.spinning}"
        materialise(exported_model, target, options)
        config = (target / model / "config.pbtxt").read_text()
        shimmed = text_format.Parse(config, model_config_pb2.ModelConfig())
        return str(shimmed.parameters[name].string_value)

    # Arena on by default: batches run about 1.6x faster with it (bench/ceiling.py).
    assert parameter(ShimOptions(), "cpu_memory_arena") == "1"
    assert parameter(ShimOptions(memory_arena=False), "cpu_memory_arena") == "0"
    # Spinning off by default: it takes the cores decoding needs.
    assert parameter(ShimOptions(), "intra_op_spinning") == "0"
    assert parameter(ShimOptions(spinning=True), "intra_op_spinning") == "1"
    # A lone batch of pixels runs on every core; a text query's few tokens are not worth
    # the text model's weights held twice.
    assert parameter(ShimOptions(alone_threads=4), "alone_threads") == "4"
    assert parameter(ShimOptions(alone_threads=4), "alone_threads", "minilm_l6") == "0"
    assert parameter(ShimOptions(), "alone_max_batch") == "16"


def test_a_model_instance_per_core_each_on_its_own_threads(
    exported_model: Path, tmp_path: Path
) -> None:
    options = ShimOptions(instances=2, intra_op_threads=1, alone_threads=2)
    materialise(exported_model, tmp_path / "runtime", options)

    def layout(model: str) -> tuple[list[int], str]:
        config = (tmp_path / "runtime" / model / "config.pbtxt").read_text()
        shimmed = text_format.Parse(config, model_config_pb2.ModelConfig())
        counts = [group.count for group in shimmed.instance_group]
        return counts, shimmed.parameters["intra_op_threads"].string_value

    assert layout("efficientnet_lite0") == ([2], "1")
    # A text model's queries are a few tokens: one instance on both cores, half the memory.
    assert layout("minilm_l6") == ([1], "2")


@pytest.mark.parametrize(
    ("cores", "wanted", "layout"),
    [
        (1, 0, (1, 1)),
        (2, 0, (2, 1)),  # two single-threaded instances: faster beside the decoder
        (3, 0, (3, 1)),
        (16, 0, (4, 4)),  # one per core only up to 4: a lone image still gets several cores
        (8, 1, (1, 8)),  # asked for one: it gets every core
        (2, 4, (4, 1)),  # more instances than cores: at least one thread each
    ],
)
def test_the_cores_are_shared_among_the_instances(
    cores: int, wanted: int, layout: tuple[int, int]
) -> None:
    assert cpu_layout(cores, wanted) == layout


def test_every_local_triton_gets_one_model_instance_per_core_by_default() -> None:
    def layout(settings: Settings) -> tuple[int, int]:
        options = shim_options(settings, cores=2)
        return options.instances, options.intra_op_threads

    # One layout for `deeptag index`, a server and `deeptag triton start` alike, so a
    # running Triton indexes as fast as one started for the job.
    assert layout(Settings()) == (2, 1)
    assert layout(Settings(triton_cpu_instances=1)) == (1, 2)
    assert layout(Settings(triton_cpu_instances=2)) == (2, 1)
    # A small batch alone on the server gets both cores; one instance has them anyway.
    assert shim_options(Settings(), cores=2).alone_threads == 2
    assert shim_options(Settings(triton_cpu_instances=1), cores=2).alone_threads == 0
