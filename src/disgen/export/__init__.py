"""Exporting a trained run: ONNX, TorchScript and safetensors files with a model card.

    export_run(run_dir, "onnx", out) -> the files written

Each network is the exact computation of a disgen command (:mod:`disgen.export.networks`): a
classifier gives class probabilities as ``predict``, a generator images as ``sample``, an
autoencoder's encoder and decoder together ``reconstruct``. After writing, the export runs the
files back (onnxruntime, ``torch.jit.load``, or the networks rebuilt from the safetensors file)
against those commands on real inputs (:mod:`disgen.export.check`), and writes the model card
(:mod:`disgen.export.card`) with the differences it measured. The folder it writes is marked by
a manifest (:mod:`disgen.export.folder`); a folder of the user's is never overwritten.

One module per concern: formats (names, torch-free), networks, check, onnx, torchscript,
weights (safetensors), card, folder.

May import: api and every layer below it. Never cli, serve or report.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Callable

from disgen.errors import DisgenError
from disgen.export.formats import CARD, FORMATS, WEIGHTS_FILE, file_names

__all__ = ["FORMATS", "export_run"]
CHECKPOINTS = ("auto", "best", "last")


def check_format(fmt: str) -> str:
    """``fmt`` if it is a format, else one error listing them (torch-free: the CLI calls it first)."""
    if fmt not in FORMATS:
        import difflib

        close = difflib.get_close_matches(str(fmt), FORMATS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise DisgenError(f"--format {fmt!r} is not an export format: {hint}choose one of {', '.join(FORMATS)}")
    return fmt


def export_run(
    run_dir: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    checkpoint: str = "auto",
    log: Callable[[str], None] | None = None,
    force: bool = False,
) -> list[Path]:
    """Export the run in ``run_dir`` (its ``checkpoint``: best, last, or auto) as ``fmt`` into the
    folder ``out`` (default RUN_DIR/exports/FORMAT), check the files, write the model card, and
    return the paths written. ``log`` gets a line per file and per check. ``force``: replace an
    export of another run in ``out``. A failed export removes what it wrote (and the folder, where
    it made it)."""
    from disgen.api import load
    from disgen.export import folder
    from disgen.export.networks import networks

    check_format(fmt)
    if checkpoint not in CHECKPOINTS:
        raise DisgenError(f"--checkpoint {checkpoint!r}: choose one of {', '.join(CHECKPOINTS)}")
    log = log or (lambda line: None)
    versions = format_versions(fmt)  # before any work: onnx and onnxruntime may be missing
    run = load(run_dir, checkpoint)
    out = Path(out) if out is not None else Path(run_dir) / "exports" / fmt
    nets = networks(run)
    files = file_names(fmt, [net.name for net in nets])
    names = sorted(set(files.values()))
    stale, made = folder.claim(out, names + [CARD], run.dir, force)
    claimed = sorted(set(names + [CARD] + stale))
    folder.write_manifest(out, {"complete": False, "files": claimed, "run_dir": str(run.dir), "format": fmt})
    try:
        checks, seconds, command = write_and_check(run, fmt, nets, out, files, log, checkpoint, versions)
    except BaseException:
        folder.abandon(out, names + [CARD], made)
        raise
    folder.remove(out, stale)
    folder.write_manifest(
        out,
        {
            "complete": True,
            "format": fmt,
            "files": names + [CARD],
            "model": run.spec.name,
            "run_dir": str(run.dir),
            "checkpoint": run.checkpoint,
            "epoch": run.epoch,
            "checks": checks,
            "seconds": seconds,
            "command": command,
            "versions": versions,
        },
    )
    log(f"wrote {', '.join(names + [CARD])} to {out}/")
    return [out / n for n in names] + [out / CARD, out / folder.MANIFEST]


def write_and_check(run, fmt: str, nets: list, out: Path, files: dict[str, str], log, checkpoint: str, versions):
    """The format's files, their check against disgen's own outputs, and the model card: the
    checks, the seconds each step took and the command that repeats the export."""
    from disgen.export import card
    from disgen.export.check import cases as check_cases
    from disgen.export.check import measure, verify

    names = sorted(set(files.values()))
    seconds = write_files(run, fmt, nets, out, files, log)
    start = time.perf_counter()
    checks = measure(check_cases(run), runner(run, fmt, nets, out, files))
    seconds["check"] = round(time.perf_counter() - start, 3)
    verify(checks, ", ".join(str(out / n) for n in names))
    for c in checks:
        log(
            f"checked {c['check']}, {c['output']}: max abs difference {c['max_abs_diff']:.3g} (batch sizes "
            f"{' and '.join(map(str, c['batch_sizes']))})"
        )
    command = shlex.join(
        ["disgen", "export", str(run.dir), "--format", fmt, "--out", str(out), "--checkpoint", checkpoint]
    )
    info = {"versions": versions, "runtime": runtime(fmt, versions), "command": command}
    atomic_write_text(out / CARD, card.render(run, fmt, nets, checks, info))
    return checks, seconds, command


def format_versions(fmt: str) -> dict[str, str]:
    """The versions of the packages ``fmt`` needs beyond torch (an error if one is missing)."""
    if fmt == "onnx":
        from disgen.export import onnx

        return onnx.versions()
    if fmt == "safetensors":
        import safetensors

        return {"safetensors": safetensors.__version__}
    return {}


def runtime(fmt: str, versions: dict[str, str]) -> str:
    import torch

    if fmt == "onnx":
        return f"onnxruntime {versions['onnxruntime']} (CPUExecutionProvider)"
    if fmt == "torchscript":
        return f"torch {torch.__version__} (the files loaded back with torch.jit.load)"
    return (
        f"torch {torch.__version__} (the networks rebuilt from {WEIGHTS_FILE} by disgen.export.weights.load_networks)"
    )


def write_files(run, fmt: str, nets: list, out: Path, files: dict[str, str], log) -> dict[str, float]:
    """The format's files, atomically; returns the seconds each took."""
    from disgen.export import onnx, torchscript, weights

    seconds = {}
    if fmt == "safetensors":
        start = time.perf_counter()
        try:
            weights.write(run, out / WEIGHTS_FILE)
        except OSError as err:
            raise write_failed(out / WEIGHTS_FILE, err) from None
        seconds[WEIGHTS_FILE] = round(time.perf_counter() - start, 3)
    else:
        writer = onnx.write if fmt == "onnx" else torchscript.write
        for net in nets:
            start = time.perf_counter()
            try:
                writer(net, out / files[net.name])
            except OSError as err:
                raise write_failed(out / files[net.name], err) from None
            seconds[files[net.name]] = round(time.perf_counter() - start, 3)
    for name, s in seconds.items():
        log(f"wrote {out / name} ({(out / name).stat().st_size:,} bytes) in {s:.1f} s")
    return seconds


def runner(run, fmt: str, nets: list, out: Path, files: dict[str, str]):
    """What runs the written files for the check."""
    from disgen.export import onnx, torchscript, weights
    from disgen.export.check import module_runner
    from disgen.export.networks import networks

    paths = {net.name: out / files[net.name] for net in nets}
    if fmt == "onnx":
        return onnx.runner(paths)
    if fmt == "torchscript":
        return torchscript.runner(paths, nets)
    rebuilt = networks(run, weights.load_networks(out / WEIGHTS_FILE)[0])
    return module_runner({net.name: net.module for net in rebuilt}, rebuilt)


def atomic_write_text(path: Path, text: str) -> None:
    from disgen.files import atomic_write

    try:
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    except OSError as err:
        raise write_failed(path, err) from None


def write_failed(path: Path, err: OSError) -> DisgenError:
    return DisgenError(
        f"could not write {path}: {err.strerror or err}; the export's files were removed: free some disk "
        "space or choose another --out"
    )
