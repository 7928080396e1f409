"""Checkpoints: one dict of tensors and plain values, written atomically, checksummed, and loaded
without running pickled code.

``torch.load(..., weights_only=True)`` refuses arbitrary objects, so a checkpoint from someone else
cannot run code on load. A write goes to a temporary file in the same folder, is flushed to disk
and then renamed over the old one, so a kill mid-write leaves the previous checkpoint intact.

Each checkpoint carries a SHA-256 digest of its own contents (``sha256``: every tensor's dtype,
shape and bytes and every plain value, in key order), checked on load: a truncated file fails to
unzip, and a file damaged after it was written (a flipped bit, a bad copy) no longer matches its
digest. Either way the error names the file, and ``--resume`` falls back to the newest checkpoint
of the run that is still good (:func:`load_latest`). The writes go through
:func:`disgen.files.atomic_write`, and its fault points (``DISGEN_FAULT``) let tests kill a write
half-way through.
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
from pathlib import Path
from typing import Any, Callable

import torch

from disgen.errors import DisgenError, brief
from disgen.files import atomic_write, fault, holds_code, remove_stale_temps
from disgen.version import __version__

FORMAT = "disgen-checkpoint"
VERSION = 1  # the layout of the dict; bump it when a key changes meaning


def digest(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's contents, its own ``sha256`` entry left out."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "sha256"})
    return h.hexdigest()


def _feed(h, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f"{{{len(obj)};".encode())
        for key in sorted(obj, key=repr):  # keys may mix ints and strings (optimizer states)
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}{len(obj)};".encode())
        for item in obj:
            _feed(h, item)
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def save(path: Path, state: dict[str, Any]) -> None:
    """Save a checkpoint dict atomically, stamped with the format, this writer's versions and
    the digest of it all."""
    state = {**state, "format": FORMAT, "version": VERSION, "disgen": __version__, "torch": str(torch.__version__)}
    state["sha256"] = digest(state)

    def write(f) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getbuffer()
        f.write(data[: len(data) // 2])
        f.flush()
        fault("checkpoint-half-written")
        f.write(data[len(data) // 2 :])
        f.flush()
        fault("checkpoint-before-rename")

    try:
        atomic_write(Path(path), write)
    except OSError as err:
        raise DisgenError(
            f"could not write checkpoint {path}: {err.strerror or err}; the previous "
            "checkpoint is intact: free some disk space (or choose another --run-dir) "
            "and continue with --resume"
        ) from None
    fault("checkpoint-after-rename")


def load(path: Path, map_location: str | torch.device = "cpu", validate: bool = True) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) and check its format, version, digest and
    (``validate``) the structure of a training run's state (:func:`check_structure`)."""
    path = Path(path)
    if not path.is_file():
        raise DisgenError(f"checkpoint {path} does not exist; train first or pass the right run directory")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if not holds_code(err):
            raise DisgenError(
                f"checkpoint {path} cannot be loaded safely (UnpicklingError: {brief(err)}); it "
                "may be truncated, corrupt or not a disgen checkpoint"
            ) from None
        raise DisgenError(
            f"checkpoint {path} cannot be loaded safely: it is not a disgen checkpoint, it holds "
            "Python objects that would run code when unpickled; do not load it (with disgen, "
            "torch.load or otherwise) unless you trust whoever made it, and use another "
            "checkpoint of the run"
        ) from None
    except Exception as err:  # corrupt zip, truncated file
        raise DisgenError(
            f"checkpoint {path} cannot be loaded safely ({type(err).__name__}: "
            f"{brief(err)}); it may be truncated, corrupt or "
            "not a disgen checkpoint"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DisgenError(f"{path} is not a disgen checkpoint")
    check_version(state, path)
    stored = state.get("sha256")  # None: written before checkpoints carried digests
    if stored is not None and stored != digest(state):
        raise DisgenError(
            f"checkpoint {path} is corrupt: its contents do not match the SHA-256 digest "
            "stored in it (damaged on disk or in a copy); use another checkpoint of the run"
        )
    if validate:
        check_structure(state, path)
    return state


def check_version(state: dict[str, Any], path: Path) -> None:
    """Refuse another checkpoint format version, listing what differs from this disgen."""
    if state.get("version") == VERSION:
        return
    theirs = {
        "format version": state.get("version"),
        "disgen": state.get("disgen", "unknown"),
        "torch": state.get("torch", "unknown"),
    }
    ours = {"format version": VERSION, "disgen": __version__, "torch": str(torch.__version__)}
    diff = "; ".join(f"{k} {theirs[k]} (this one: {ours[k]})" for k in ours if theirs[k] != ours[k])
    newer = isinstance(theirs["format version"], int) and theirs["format version"] > VERSION
    advice = "upgrade disgen to read it" if newer else "load it with the disgen version that wrote it"
    raise DisgenError(
        f"checkpoint {path} has format version {theirs['format version']}, this disgen reads "
        f"version {VERSION}: {diff}; {advice}"
    )


def load_latest(
    folder: Path, map_location: str | torch.device = "cpu", log: Callable[[str], None] = print
) -> tuple[dict[str, Any], Path] | None:
    """The newest good checkpoint of a run's ``checkpoints/`` folder (``last.pt``, else ``best.pt``)
    and its path; None if the folder holds neither. A damaged one is named in a warning and skipped;
    if every one is damaged, a :class:`DisgenError` lists why each was refused."""
    folder = Path(folder)
    remove_stale_temps(folder)
    found = [folder / name for name in ("last.pt", "best.pt") if (folder / name).is_file()]
    if not found:
        return None
    good, problems = [], []
    for path in found:
        try:
            good.append((load(path, map_location), path))
        except DisgenError as err:
            problems.append(str(err))
            log(f"warning: {err}")
    if not good:
        raise DisgenError(
            f"no usable checkpoint in {folder}: " + " | ".join(problems) + "; start the run again in a new --run-dir"
        )
    state, path = max(good, key=lambda sp: sp[0].get("epoch", 0))  # max keeps last.pt on a tie
    if path.name != "last.pt" or problems:
        log(f"warning: continuing from {path} (epoch {state.get('epoch')}), the newest good checkpoint")
    return state, path


# -- the structure of a training run's checkpoint ------------------------------------------------
# The digest shows damage, not intent: anyone can write a well-formed file. Before any value is
# used (a tensor's shape decides what a fused kernel writes to), every key, type and range is
# checked; runs.check_compatible then checks the tensors against the networks and optimizers.
REQUIRED = {
    "model": str,
    "config": dict,
    "epoch": int,
    "best": (int, float, type(None)),
    "data": dict,
    "nets": dict,
    "opts": dict,
    "scheds": dict,
    "rng": dict,
}
MAX_EPOCH = 2**31
MAX_STEP = 2**53  # steps counted in float32/float64 stay exact below this
RNG_BYTES = {"torch": torch.get_rng_state().numel()}  # the CPU generator's Mersenne Twister state


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_structure(state: dict, path: Path) -> None:
    """Refuse a checkpoint whose keys, types or ranges are not a disgen run's (missing ``rng``,
    ``epoch: "abc"``, a negative epoch, an absurd image shape...), listing what is wrong."""
    from disgen.models import check_data_shape

    problems = []
    for key, kind in REQUIRED.items():
        if key not in state:
            problems.append(f"{key!r} missing")
        elif not isinstance(state[key], kind) or isinstance(state[key], bool):
            problems.append(f"{key!r} is {type(state[key]).__name__}")
    if not problems:
        if not 0 <= state["epoch"] < MAX_EPOCH:
            problems.append(f"epoch {state['epoch']} is not in 0..{MAX_EPOCH - 1}")
        problems += data_problems(state["data"], check_data_shape)
        problems += [
            f"nets.{k}: not a dict of tensors"
            for k, net in state["nets"].items()
            if not isinstance(k, str)
            or not isinstance(net, dict)
            or not all(isinstance(n, str) and isinstance(t, torch.Tensor) for n, t in net.items())
        ]
        for name, opt in state["opts"].items():
            problems += [f"opts.{name}: {p}" for p in optimizer_problems(opt)]
        problems += [f"scheds.{k}: not a dict" for k, v in state["scheds"].items() if not isinstance(v, dict)]
        rank = state.get("best_rank")
        ordered = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)  # noqa: E731
        if rank is not None and not (isinstance(rank, list) and len(rank) == 2 and all(map(ordered, rank))):
            problems.append("'best_rank' is not a list of two numbers")
        if state.get("scaler") is not None and not isinstance(state["scaler"], dict):
            problems.append("scaler is not a dict")
        problems += rng_problems(state["rng"])
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise DisgenError(
            f"checkpoint {path} is not a valid disgen checkpoint: {shown}; it is damaged or was "
            "not written by disgen: use another checkpoint of the run, or train again"
        )


def data_problems(data: dict, check_data_shape: Callable) -> list[str]:
    from disgen.data import MAX_CLASSES

    problems = []
    if not isinstance(data.get("name"), str) or len(data["name"]) > 4096:
        problems.append("data.name is not a name")
    try:
        check_data_shape(data.get("image_shape"), "data.image_shape")
    except DisgenError as err:
        problems.append(str(err))
    classes = data.get("classes")
    if (
        not isinstance(classes, list)
        or not 1 <= len(classes) <= MAX_CLASSES
        or not all(isinstance(c, str) and len(c) <= 1000 for c in classes)
    ):
        problems.append(f"data.classes is not a list of 1..{MAX_CLASSES:,} class names")
    return problems


def optimizer_problems(opt: Any) -> list[str]:
    """An optimizer's state_dict: param_groups listing distinct parameter indices, and a state
    per listed index holding tensors or finite numbers (``step`` in 0..2^53)."""
    if (
        not isinstance(opt, dict)
        or not isinstance(opt.get("state"), dict)
        or not isinstance(opt.get("param_groups"), list)
        or not opt["param_groups"]
    ):
        return ["not a dict of state and param_groups"]
    groups = opt["param_groups"]
    if not all(
        isinstance(g, dict) and isinstance(g.get("params"), list) and all(map(is_int, g["params"])) for g in groups
    ):
        return ["a param group without a list of parameter indices"]
    listed = [i for g in groups for i in g["params"]]
    if len(set(listed)) != len(listed):
        return ["a parameter index listed twice"]
    problems = []
    for i, entry in opt["state"].items():
        if i not in listed or not isinstance(entry, dict):
            problems.append(f"state of parameter {i!r}, which no param group lists")
            continue
        for key, v in entry.items():
            if isinstance(v, torch.Tensor):
                v = v.item() if key == "step" and v.numel() == 1 and not v.is_complex() else v
            if key == "step" and not (is_number(v) and 0 <= v <= MAX_STEP):
                shown = f"a tensor of shape {tuple(v.shape)}" if isinstance(v, torch.Tensor) else repr(v)[:40]
                problems.append(f"state {i}.step is {shown}, not a count of steps")
            elif not (isinstance(v, torch.Tensor) or v is None or is_number(v)):
                problems.append(f"state {i}.{key} is {type(v).__name__}")
    return problems


def rng_problems(rng: dict) -> list[str]:
    """Random generator states: uint8 vectors, the CPU ones of the Mersenne Twister's size."""
    problems = []
    ranks = rng.get("processes", [])
    if not isinstance(ranks, list) or not all(isinstance(r, dict) for r in ranks):
        return ["rng.processes is not a list of generator states"]
    for where, states in [("rng", rng)] + [(f"rng.processes[{i}]", r) for i, r in enumerate(ranks)]:
        for key in ("torch", "loader", "cuda"):
            t = states.get(key)
            if t is None and (key == "cuda" or where != "rng" and key == "loader"):
                continue
            size = RNG_BYTES.get(key)
            if (
                not isinstance(t, torch.Tensor)
                or t.dtype != torch.uint8
                or t.dim() != 1
                or (size is not None and t.numel() != size)
            ):
                problems.append(
                    f"{where}.{key} is not a generator state (a uint8 vector{f' of {size} bytes' if size else ''})"
                )
    return problems
