"""The device and speed settings of a training run: ``--device``, ``--deterministic``, number
format (``--precision``), memory layout (``--channels-last``) and ``--compile``, and what ``auto``
picks on this machine.

``auto`` follows step timings on a CPU with native bfloat16 (AVX512-BF16) in fp32, bfloat16
autocast and bfloat16 with channels-last (benchmarks/bench_speed.py; docs/speed.md): bfloat16 made
the convolutional nets' and the AAE's steps markedly faster, while a small MLP's step got slower
(its casts cost more than they save), and ``docs/mnist.md`` shows what it costs in accuracy.

So on a CPU ``auto`` is bfloat16 where the networks have a convolution or over a million
weights, and float32 for small MLPs (and on CPUs without native bfloat16, where it is emulated).
On CUDA it is bfloat16 where the GPU supports it (Ampere and later), else float16 with a gradient
scaler. Weights, optimizer state and checkpoints stay float32 in every case (autocast); metrics
are computed in float32 so runs in different precisions compare directly.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from disgen.errors import DisgenError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
BIG_MODEL = 1_000_000  # weights above which bf16 pays off even without convolutions (aae: 2.9M)


@dataclass(frozen=True)
class Speed:
    """What the run uses: ``precision`` (fp32 | bf16 | fp16), ``channels_last``, ``compile``."""

    precision: str
    channels_last: bool
    compile: bool
    device_type: str

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=DTYPES[self.precision])

    def scaler(self) -> torch.amp.GradScaler | None:
        """fp16's gradient scaler (bfloat16 has float32's range and needs none)."""
        return torch.amp.GradScaler(self.device_type) if self.precision == "fp16" else None

    def as_dict(self) -> dict:
        return {"precision": self.precision, "channels_last": self.channels_last, "compile": self.compile}


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matrix products run natively (not emulated) on ``device``."""
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.5 has no including_emulation (and counts no emulation)
            return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_bf16()
    return False


def cpu_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has bfloat16 instructions (oneDNN's condition for native bfloat16 kernels):
    AVX512-BF16 or AMX-BF16 on x86, the BF16 extension on Arm, read from ``/proc/cpuinfo``'s flags
    (``cpuinfo``: its text). False where there is no such file (macOS, Windows): emulated
    bfloat16 is slower than float32, so not knowing means float32."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags = set(value.split())
            return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    return False


CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def has_conv(nets: dict[str, nn.Module]) -> bool:
    return any(isinstance(m, CONVS) for net in nets.values() for m in net.modules())


def weight_count(nets: dict[str, nn.Module]) -> int:
    return sum(p.numel() for net in nets.values() for p in net.parameters())


def resolve_precision(
    requested: str, device: torch.device, nets: dict[str, nn.Module], native: bool | None = None
) -> str:
    """``requested`` as one of fp32 | bf16 | fp16 for these networks on ``device``; ``native``:
    whether bfloat16 is native there (None: :func:`native_bf16` asks the hardware)."""
    if requested not in PRECISIONS:
        raise DisgenError(f"--precision {requested!r}: choose one of {', '.join(PRECISIONS)}")
    if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DisgenError("--precision bf16: this GPU has no bfloat16 support; use --precision fp16 or auto")
    if requested == "fp16" and device.type not in ("cuda", "cpu"):
        raise DisgenError(f"--precision fp16 runs on CUDA (and slowly on the CPU), not on {device.type}")
    if requested != "auto":
        return requested
    native = native_bf16(device) if native is None else native
    if device.type == "cuda":
        return "bf16" if native else "fp16"
    if device.type == "cpu" and native and (has_conv(nets) or weight_count(nets) > BIG_MODEL):
        return "bf16"
    return "fp32"


def resolve(
    precision: str, channels_last: str, compile: bool, device: torch.device, nets: dict[str, nn.Module]
) -> Speed:
    """The run's :class:`Speed`. ``channels_last`` is auto | on | off; auto is on for networks
    with convolutions (1.0-1.3x faster on CPU, see above; NHWC is also what GPU tensor cores use)."""
    if channels_last not in ("auto", "on", "off"):
        raise DisgenError(f"--channels-last {channels_last!r}: choose one of auto, on, off")
    layout = channels_last == "on" or (channels_last == "auto" and has_conv(nets))
    return Speed(resolve_precision(precision, device, nets), layout, compile, device.type)


def prepare_nets(nets: dict[str, nn.Module], speed: Speed) -> dict[str, nn.Module]:
    """Put ``nets`` in the run's memory layout (in place) and return the modules the step
    function calls: compiled wrappers with ``--compile``, else the networks themselves.
    Checkpoints always save the plain networks, never the wrappers."""
    if speed.channels_last:
        for net in nets.values():
            net.to(memory_format=torch.channels_last)
    if not speed.compile:
        return nets
    return {k: torch.compile(net) for k, net in nets.items()}


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DisgenError(
            f"--device {name!r}: no CUDA GPU is visible to PyTorch here; use --device cpu "
            "(or install a CUDA build of torch, see README)"
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise DisgenError(f"--device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from None


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic kernels (``--deterministic``) while training; the switch is process-wide,
    so it is put back afterwards. An op without a deterministic kernel is a clear error."""
    if not enabled:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False  # benchmarking may pick another conv algorithm each run
    try:
        yield
    except RuntimeError as err:
        if "deterministic" not in str(err):
            raise
        raise DisgenError(f"--deterministic: {str(err).splitlines()[0]}; run without it") from None
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]
