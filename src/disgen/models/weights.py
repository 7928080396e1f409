"""Weights from files and from torchvision's published ImageNet checkpoints.

``read_weights(path)`` reads a ``.pth``/``.pt`` (``torch.load(weights_only=True)``: no pickled
code runs) or ``.safetensors`` file; ``fetch_pretrained(arch)`` downloads torchvision's file for
``arch`` through ``torch.hub.download_url_to_file`` with torchvision's hash check (the 8 hex digits
in each published file name are the start of its SHA-256) into ``$DISGEN_HOME/weights`` (a copy
already in torch's own hub cache is used as is). ``DISGEN_WEIGHTS_URL`` replaces the base URL, e.g.
for a mirror. Offline, it fails within seconds with a message naming the file and the folder to
put it in.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import socket
import urllib.error
from pathlib import Path

import torch
from torch import nn

from disgen.data.download import TIMEOUT, _describe, cache_dir
from disgen.errors import DisgenError, brief
from disgen.files import holds_code

BASE_URL = "https://download.pytorch.org/models/"
# torchvision's IMAGENET1K_V1 weights (the ones d2l's seed 003 uses through pretrained=True).
PRETRAINED = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth",
}
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")  # torch.hub's HASH_REGEX


def weights_dir() -> Path:
    return cache_dir() / "weights"


def pretrained_url(arch: str) -> str:
    if arch not in PRETRAINED:
        raise DisgenError(f"no pretrained weights for {arch!r}: choose one of {', '.join(PRETRAINED)}")
    return os.environ.get("DISGEN_WEIGHTS_URL", BASE_URL).rstrip("/") + "/" + PRETRAINED[arch]


@contextlib.contextmanager
def socket_timeout(seconds: float):
    """torch.hub opens URLs without a timeout; the default timeout bounds connects and reads."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def download(url: str, folder: Path | None = None, progress: bool = True) -> Path:
    """``folder / name`` of ``url``: the cached copy, or downloaded with the hash check of its name."""
    name = url.rsplit("/", 1)[-1]
    folder = Path(folder) if folder is not None else weights_dir()
    hub_copy = Path(torch.hub.get_dir()) / "checkpoints" / name
    for have in (folder / name, hub_copy):
        if have.is_file():
            return have
    match = HASH_IN_NAME.search(name)
    target = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with socket_timeout(TIMEOUT):
            torch.hub.download_url_to_file(url, str(target), match.group(1) if match else None, progress)
    except (urllib.error.URLError, OSError, RuntimeError, ValueError) as err:
        why = str(err) if isinstance(err, RuntimeError) else _describe(err)
        raise DisgenError(
            f"could not download {url} ({why}). Without network, download {name} elsewhere and put "
            f"it in {folder}, or pass --weights FILE, or train from random weights with --no-pretrained"
        ) from None
    return target


def fetch_pretrained(arch: str, progress: bool = True) -> Path:
    """The path of torchvision's ImageNet weights for ``arch``, downloading them if needed."""
    return download(pretrained_url(arch), progress=progress)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a .pth/.pt/.bin or .safetensors file; {"state_dict": ...} and
    {"model": ...} wrappers and DataParallel's ``module.`` prefix are unwrapped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DisgenError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not holds_code(err):
            raise DisgenError(
                f"cannot read weights {path} (UnpicklingError: {brief(err)}); use a .pth state "
                "dict saved with torch.save or a .safetensors file"
            ) from None
        raise DisgenError(
            f"cannot read weights {path}: it is not a file of weights, it holds Python objects "
            "that would run code when unpickled; do not load it (with disgen, torch.load or "
            "otherwise) unless you trust whoever made it"
        ) from None
    except Exception as err:  # truncated file, wrong format
        raise DisgenError(
            f"cannot read weights {path} ({type(err).__name__}: "
            f"{brief(err)}); use a .pth state dict saved "
            "with torch.save or a .safetensors file"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DisgenError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def tensor_problem(name: str, t: torch.Tensor, like: torch.Tensor, exact: bool = False) -> str | None:
    """What is wrong with ``t`` as the value of a network's tensor ``like``, or None: another
    shape, integers (or complex numbers) for floats or the reverse (``exact``: another dtype at
    all), NaN or infinite values. int32 weights would load as whole numbers, and NaN weights give
    NaN for every input."""
    if tuple(t.shape) != tuple(like.shape):
        return f"{name} shape {tuple(t.shape)} != {tuple(like.shape)}"
    if t.dtype != like.dtype and (exact or t.is_floating_point() != like.is_floating_point() or t.is_complex()):
        return f"{name} dtype {t.dtype} != {like.dtype}"
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        return f"{name} holds NaN or infinite values"
    return None


def load_backbone(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, skip: tuple[str, ...] = ("classifier.",)
) -> list[str]:
    """Copy ``state`` into ``model`` except keys starting with ``skip`` (the new head), refusing
    missing keys and shape mismatches. Returns the keys of ``state`` that were left unused (e.g.
    ImageNet's ``fc`` when the model replaces it)."""
    ours = {k: v for k, v in model.state_dict().items() if not k.startswith(skip)}
    # timm's files leave out batch norm's step counters, which inference never reads.
    missing = sorted(k for k in set(ours) - set(state) if not k.endswith("num_batches_tracked"))
    wrong = [w for k, v in ours.items() if k in state and (w := tensor_problem(k, state[k], v))]
    if missing or wrong:
        shown = "; ".join([f"missing {k}" for k in missing[:5]] + wrong[:5])
        raise DisgenError(
            f"weights {source} do not fit this model ({len(missing)} missing, "
            f"{len(wrong)} of the wrong shape, type or values: {shown}); is --arch right?"
        )
    with torch.no_grad():
        for k, v in ours.items():
            if k in state:
                v.copy_(state[k])
    return sorted(set(state) - set(ours))
