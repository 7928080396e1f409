"""The export formats and the names of the files each writes (imports nothing, so the command
line can check ``--format`` before it loads torch).

    onnx          NETWORK.onnx per network          run in onnxruntime
    torchscript   NETWORK.pt per network            torch.jit.load
    safetensors   model.safetensors, all networks   disgen.export.weights.load_networks
"""

from __future__ import annotations

FORMATS = ("onnx", "torchscript", "safetensors")
CARD = "README.md"
WEIGHTS_FILE = "model.safetensors"
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
FORMAT_NAMES = {"onnx": "ONNX", "torchscript": "TorchScript", "safetensors": "safetensors"}


def file_names(fmt: str, networks: list[str]) -> dict[str, str]:
    """Network name -> the file it is written to (safetensors: one file for them all)."""
    if fmt == "safetensors":
        return {name: WEIGHTS_FILE for name in networks}
    return {name: name + SUFFIXES[fmt] for name in networks}
