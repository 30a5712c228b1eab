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

With several instances of one thread each (one per core: the fastest layout for bulk work), a
batch that finds no other instance of its model running is run by a second session on every
core (``alone_threads``) when it is small (``alone_max_batch``): a lone call is then as fast as
on one instance with all the threads (see :class:`Busy`; the kernel drops the locks of a
crashed instance).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
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
        threads = int(params.get("intra_op_threads", "0"))
        self.session = _session(onnx_path, params, threads)
        alone = int(params.get("alone_threads", "0"))
        self.alone_batch = int(params.get("alone_max_batch", "0"))
        self.wide: Any = None
        self.busy: Busy | None = None
        if alone > max(threads, 1):
            self.wide = _session(onnx_path, params, alone)
            self.busy = Busy(os.path.join(args["model_repository"], ".busy"))
        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]

    def _run(self, batch: dict[str, Any]) -> Any:
        if self.busy is None:
            return self.session.run(self.output_names, batch)
        # A small batch is someone waiting for an answer; a large one is bulk work, where the
        # decoder beside Triton needs the other cores (tried: widening those cost 10 %).
        rows = len(next(iter(batch.values())))
        with self.busy.running(may_widen=rows <= self.alone_batch) as wide:
            session = self.wide if wide else self.session
            return session.run(self.output_names, batch)

    def finalize(self) -> None:
        if self.busy is not None:
            self.busy.close()

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
            outputs = self._run(batch)
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


def _session(onnx_path: str, params: dict[str, str], threads: int) -> Any:
    options = ort.SessionOptions()
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
    return ort.InferenceSession(onnx_path, sess_options=options, providers=["CPUExecutionProvider"])


class Busy:
    """Which instances of a model are running a batch, through ``flock`` in ``folder``: a
    file each, locked while it runs, and a shared ``lane``.

    A batch that finds no other instance running takes the lane alone and runs on every core;
    the others take it shared and run on their one core each, after a wide batch has ended. So
    a lone call gets every core, and the threads of all instances never outnumber the cores
    (tried without the lane, a wide batch beside a narrow one cost bulk indexing 10 %).
    """

    def __init__(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self.name = str(os.getpid())
        self.own = os.open(os.path.join(folder, self.name), os.O_RDWR | os.O_CREAT, 0o600)
        self.lane = os.open(os.path.join(folder, "lane"), os.O_RDWR | os.O_CREAT, 0o600)
        self.others: dict[str, int] = {}

    @contextlib.contextmanager
    def running(self, may_widen: bool) -> Iterator[bool]:
        """Marks this instance busy for the block; yields whether it runs on every core."""
        fcntl.flock(self.own, fcntl.LOCK_EX)
        wide = False
        try:
            if may_widen and not self._other_busy():
                try:
                    fcntl.flock(self.lane, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    wide = True
                except BlockingIOError:
                    pass
            if not wide:
                fcntl.flock(self.lane, fcntl.LOCK_SH)
            yield wide
        finally:
            fcntl.flock(self.lane, fcntl.LOCK_UN)
            fcntl.flock(self.own, fcntl.LOCK_UN)

    def _other_busy(self) -> bool:
        for name in os.listdir(self.folder):
            if name in (self.name, "lane"):
                continue
            fd = self.others.get(name)
            if fd is None:
                try:
                    fd = self.others[name] = os.open(os.path.join(self.folder, name), os.O_RDWR)
                except OSError:
                    continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fd, fcntl.LOCK_UN)
        return False

    def close(self) -> None:
        for fd in (self.own, self.lane, *self.others.values()):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.folder, self.name))


def _padded(arrays: list[Any]) -> list[Any]:
    """The arrays zero-padded at the end of each non-batch axis to the largest size."""
    if len({a.shape[1:] for a in arrays}) <= 1:
        return arrays
    target = np.max([a.shape[1:] for a in arrays], axis=0)
    return [
        np.pad(a, [(0, 0)] + [(0, int(t) - s) for t, s in zip(target, a.shape[1:], strict=True)])
        for a in arrays
    ]
