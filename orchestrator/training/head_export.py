"""The fitted probe as an ONNX graph: ``embedding`` FP32 [-1, dims] → ``probs`` FP32 [-1, K].

One MatMul, one Add and a Softmax; a few kB per version (1280 x K weights), where a copy of the
backbone with the head on top would be 17 MB per version. The embedding is also passed
through (``embedding_out``): the ensemble answers it from this step, because Triton's ensemble
scheduler stalls when a request leaves out an ensemble output that another step consumes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from orchestrator.errors import ExportDependencyMissing

INPUT = "embedding"
OUTPUT = "probs"
PASSTHROUGH = "embedding_out"
OPSET = 17
#: Readable by every onnxruntime this package allows (>= 1.18).
IR_VERSION = 8


def head_model(weights: npt.NDArray[np.float32], bias: npt.NDArray[np.float32]) -> bytes:
    """The serialised ONNX model computing softmax(embedding · Wᵀ + b)."""
    try:
        from onnx import TensorProto, checker, helper, numpy_helper
    except ImportError as e:  # pragma: no cover - a core dependency
        raise ExportDependencyMissing("exporting a trained head needs the onnx package") from e
    classes, dims = weights.shape
    initialisers = [
        numpy_helper.from_array(np.ascontiguousarray(weights.T, dtype=np.float32), "W"),
        numpy_helper.from_array(np.asarray(bias, dtype=np.float32), "B"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", [INPUT, "W"], ["scores"]),
            helper.make_node("Add", ["scores", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], [OUTPUT], axis=1),
            helper.make_node("Identity", [INPUT], [PASSTHROUGH]),
        ],
        "linear_probe",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", dims])],
        [
            helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", classes]),
            helper.make_tensor_value_info(PASSTHROUGH, TensorProto.FLOAT, ["batch", dims]),
        ],
        initialisers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="deeptag"
    )
    model.ir_version = IR_VERSION
    checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data
