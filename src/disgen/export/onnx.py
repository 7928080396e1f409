"""ONNX files through torch's public exporter, ``torch.onnx.export(..., dynamo=True)`` (the
torch.export-based one; the TorchScript-based exporter is deprecated), with the batch axis left
free (``dynamic_shapes``), run back in onnxruntime for the check.

The exporter needs ``onnx`` and ``onnxscript``, the check ``onnxruntime``: the optional extra
``pip install disgen[export]``.

May import: api and every layer below it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import warnings
from pathlib import Path
from typing import Iterator

import torch

from disgen.errors import DisgenError
from disgen.export.check import Runner
from disgen.export.networks import Network
from disgen.files import atomic_write

REQUIRED = ("onnx", "onnxruntime", "onnxscript")
MAX_BYTES = 2**31 - 1  # one protobuf message; larger models would need ONNX's external data files


def versions() -> dict[str, str]:
    """The versions of the packages an ONNX export needs, or an error saying how to install them."""
    found, missing = {}, []
    for name in REQUIRED:
        try:
            found[name] = importlib.import_module(name).__version__
        except ImportError:
            missing.append(name)
    if missing:
        raise DisgenError(
            f"--format onnx needs {', '.join(REQUIRED)} (missing: {', '.join(missing)}): pip install 'disgen[export]'"
        )
    return found


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exporter's warnings about things an export does not use (torchvision's operators, a
    deprecated pytree check inside torch) kept off the user's terminal, and off stdout what
    onnxscript prints there (0.6: "Applied N of general pattern rewrite rules"), where the
    command's JSON goes."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def to_bytes(net: Network) -> bytes:
    """``net`` as an ONNX model: inputs and outputs named as its ports, the batch axis dynamic."""
    batch = torch.export.Dim("batch")
    with quiet():
        program = torch.onnx.export(
            net.module,
            net.example(),
            dynamo=True,
            input_names=[p.name for p in net.inputs],
            output_names=[p.name for p in net.outputs],
            dynamic_shapes=tuple({0: batch} for _ in net.inputs),
            verbose=False,
        )
    proto = program.model_proto
    if proto.ByteSize() > MAX_BYTES:
        raise DisgenError(
            f"{net.name} is {proto.ByteSize() / 2**30:.1f} GiB, over ONNX's 2 GiB for one file; "
            "export it with --format safetensors or torchscript"
        )
    return proto.SerializeToString()


def write(net: Network, path: Path) -> None:
    data = to_bytes(net)
    atomic_write(path, lambda f: f.write(data))


def runner(paths: dict[str, Path]) -> Runner:
    """Runs the written files in onnxruntime (CPU), one session each."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    sessions = {
        name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for name, path in paths.items()
    }

    def run(name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        session = sessions[name]
        outs = session.run(None, {k: v.detach().cpu().float().numpy() for k, v in inputs.items()})
        return {o.name: torch.from_numpy(a) for o, a in zip(session.get_outputs(), outs)}

    return run
