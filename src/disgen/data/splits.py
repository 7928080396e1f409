"""The validation split: a stratified share of the training split held out for every choice a run
makes (``best.pt``, early warnings, presets), so that the test split is used once, for the figure
a user reports.

``--val-split F`` (default 0.1) moves ``round(F * n_c)`` images of each class ``c`` from the
training split into the validation split. The draw uses a fixed generator (:data:`SPLIT_SEED`),
never ``--seed``: runs with different seeds are compared on the same validation images. A dataset
with a validation split of its own (a Kaggle-organised ``valid/`` folder, gaussian2d's generated
points) keeps it. ``--val-split 0`` trains on the whole training split (the final run a user makes
after choosing settings): nothing is held out and no ``best.pt`` is written.

Which images the split holds is recorded in ``RUN_DIR/split.json`` (the indices into the training
split and a SHA-256 of the validation images and labels), and a run is resumed or evaluated on its
validation split only if the split made now is the same (:func:`check`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import torch

from disgen.data.dataset import ImageSplit, Rows, TensorDataset, take
from disgen.errors import DisgenError, plural

SPLIT_SEED = 20151106  # fixed: the validation images must not depend on --seed
SPLIT_FILE = "split.json"


def fingerprint(split: ImageSplit | None) -> str | None:
    """SHA-256 of a split's images (dtype, shape, bytes) and labels; None for no split."""
    if split is None:
        return None
    h = hashlib.sha256()
    for t in (split.images, split.labels):
        h.update(f"{t.dtype}{tuple(t.shape)};".encode())
        for part in chunks(t):
            h.update(part.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def chunks(t: torch.Tensor | Rows, rows: int = 4096):
    """A tensor's or a memory-mapped split's rows, a few thousand at a time (hashing a dataset
    larger than memory must not gather it whole)."""
    if isinstance(t, Rows):
        yield from t.chunks(rows)
    else:
        yield from (t[i : i + rows] for i in range(0, max(len(t), 1), rows))


def validation_indices(labels: torch.Tensor, fraction: float) -> torch.Tensor:
    """Sorted indices into the training split of a stratified validation split: ``round(fraction *
    n_c)`` of each class ``c`` (at least one of every class with two or more images), drawn with
    the fixed :data:`SPLIT_SEED`."""
    labels = labels.cpu()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    chosen = []
    for c in labels.unique().tolist():
        members = order[labels[order] == c]  # class c in the fixed random order
        k = min(len(members) - 1, max(1, round(fraction * len(members)))) if len(members) > 1 else 0
        chosen.append(members[:k])
    return torch.cat(chosen).sort().values if chosen else torch.zeros(0, dtype=torch.long)


def with_validation(data: TensorDataset, fraction: float) -> TensorDataset:
    """``data`` with a validation split: its own, else ``fraction`` of the training split carved
    out (stratified by class, fixed seed); ``fraction == 0`` leaves none. ``extra["split"]`` says
    which, with the sizes and the fingerprint that :func:`check` compares."""
    if not 0 <= fraction < 1 or not math.isfinite(fraction):
        raise DisgenError(
            f"--val-split {fraction}: use a fraction in [0, 1), e.g. 0.1; 0 trains on the whole training split"
        )
    info: dict = {"val_split": fraction}
    if fraction == 0 or (len(data.train) == 0 and data.val is None):  # nothing to hold out (e.g. a test set alone)
        data = replace(data, val=None)
        info["source"] = "none"
    elif data.val is not None:
        info["source"] = "dataset"  # its own validation split (e.g. a Kaggle valid/ folder)
    else:
        idx = validation_indices(data.train.labels, fraction)
        if len(idx) == 0:
            raise DisgenError(
                f"--val-split {fraction}: the training split of {data.name} has "
                f"{len(data.train)} images, too few to hold any out; use more images "
                "or --val-split 0"
            )
        keep = torch.ones(len(data.train), dtype=torch.bool)
        keep[idx] = False
        train = ImageSplit(take(data.train.images, keep), data.train.labels[keep])
        val = ImageSplit(take(data.train.images, idx), data.train.labels[idx])
        data = replace(data, train=train, val=val)
        info.update(source="carved", seed=SPLIT_SEED, val_indices=idx.tolist())
    info["sizes"] = {
        "train": len(data.train),
        "val": len(data.val) if data.val is not None else 0,
        "test": len(data.test) if data.test is not None else 0,
    }
    info["val_sha256"] = fingerprint(data.val)
    return replace(data, extra={**data.extra, "split": info})


def describe(info: dict, unit: str = "image") -> str:
    """One line for the log: how the data was split (``unit``: "point" for 2-D points)."""
    sizes = info["sizes"]
    if info["source"] == "none":
        return (
            f"no validation split (--val-split 0): training on all {sizes['train']} training {unit}s; "
            "best.pt is not written and nothing is chosen during training"
        )
    how = (
        "the dataset's own"
        if info["source"] == "dataset"
        else f"{info['val_split']:g} of the training split, stratified, the same for every --seed"
    )
    return f"validation split: {plural(sizes['val'], unit)} ({how}); training on {sizes['train']}"


def save(run_dir: Path, info: dict) -> None:
    from disgen.files import write_json

    write_json(Path(run_dir) / SPLIT_FILE, info)


def read(run_dir: Path) -> dict | None:
    """The split a run was trained with (None for a run written before splits were recorded)."""
    path = Path(run_dir) / SPLIT_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DisgenError(f"{path} cannot be read ({err}); it records the run's validation split") from None
    if not isinstance(info, dict) or not isinstance(info.get("val_split"), (int, float)):
        raise DisgenError(f"{path} is not a split record of disgen (no val_split)")
    return info


def check(run_dir: Path, info: dict, what: str) -> None:
    """Refuse to ``what`` (e.g. "resume") a run against another validation split than it was
    trained with: the comparison of checkpoints and of metrics would no longer hold."""
    saved = read(run_dir)
    if saved is None:
        if what == "resume":
            raise DisgenError(
                f"{run_dir} has no {SPLIT_FILE}: it was trained by a disgen without validation "
                "splits and cannot be resumed by this one; start a new run"
            )
        raise DisgenError(
            f"{run_dir} has no {SPLIT_FILE}: this run's validation split is not known; "
            "evaluate its test split instead (--split test)"
        )
    if saved.get("val_sha256") != info.get("val_sha256") or saved.get("val_split") != info.get("val_split"):
        ours = info["sizes"]["val"]
        theirs = saved.get("sizes", {}).get("val", "?")
        raise DisgenError(
            f"cannot {what} {run_dir}: its validation split ({theirs} images, --val-split "
            f"{saved.get('val_split')}) differs from the one made now ({ours} images, --val-split "
            f"{info.get('val_split')}): the dataset's training split changed or another --val-split "
            f"was given. Use the same dataset files and --val-split, or start a new run"
        )
