"""Triton python-backend model that runs an ONNX file with onnxruntime.

The tritonserver bundled with ``nvidia-pytriton`` has only the python backend, so the local
launcher serves every ONNX model through this file. It is copied into the runtime model
repository as ``<model>/<version>/model.py`` and runs inside Triton's python stub, not in the
orchestrator process; it imports nothing from deeptag.

Triton hands ``execute`` every request its dynamic batcher gathered; they are stacked into one
batch so onnxruntime runs once per gathering, then the outputs are split back per request.
Requests whose variable-length inputs differ in length (a text model's ``input_ids`` and
``attention_mask``, batched together because the launcher allows ragged batches) are padded
with zeros to the longest: token id 0 is the padding token and mask 0 hides it, so a text's
embedding does not depend on what it was batched with.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        onnx_path = params["onnx_path"]
        if not os.path.isabs(onnx_path):
            onnx_path = os.path.join(args["model_repository"], args["model_version"], onnx_path)
        options = ort.SessionOptions()
        threads = int(params.get("intra_op_threads", "0"))
        if threads > 0:
            options.intra_op_num_threads = threads
        # The arena keeps the largest batch's activations for the life of the process (about
        # 0.9 GB after a batch of 64 images) and makes each batch about 1.6x faster: without it
        # every run maps and faults in its buffers afresh. Off trades that speed for memory.
        options.enable_cpu_mem_arena = params.get("cpu_memory_arena", "1") == "1"
        # A thread that spins waiting for the next step holds a core that image decoding,
        # running beside Triton on the same machine, would use (off: ~6 % more images/s).
        spinning = params.get("intra_op_spinning", "0")
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        self.session = ort.InferenceSession(
            onnx_path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]

    def execute(self, requests: list[Any]) -> list[Any]:
        feeds: dict[str, list[Any]] = {name: [] for name in self.input_names}
        sizes: list[int] = []
        for request in requests:
            for name in self.input_names:
                feeds[name].append(pb_utils.get_input_tensor_by_name(request, name).as_numpy())
            sizes.append(feeds[self.input_names[0]][-1].shape[0])
        # One request (the usual case for an image batch) needs no copy into a new batch.
        batch = {
            name: arrays[0] if len(arrays) == 1 else np.concatenate(_padded(arrays), axis=0)
            for name, arrays in feeds.items()
        }
        try:
            outputs = self.session.run(self.output_names, batch)
        except Exception as e:  # onnxruntime raises its own untyped errors
            error = pb_utils.TritonError(f"onnxruntime failed: {e}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses = []
        start = 0
        for size in sizes:
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(out[start : start + size]))
                for name, out in zip(self.output_names, outputs, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses


def _padded(arrays: list[Any]) -> list[Any]:
    """The arrays zero-padded at the end of each non-batch axis to the largest size."""
    if len({a.shape[1:] for a in arrays}) <= 1:
        return arrays
    target = np.max([a.shape[1:] for a in arrays], axis=0)
    return [
        np.pad(a, [(0, 0)] + [(0, int(t) - s) for t, s in zip(target, a.shape[1:], strict=True)])
        for a in arrays
    ]
