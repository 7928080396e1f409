"""Run directories: where a run goes, what starts one (config.json, run.json), whether a folder
holds a run, and a run's networks rebuilt from the directory alone (:func:`load_nets`).

May import: models, data, config, files, errors, version, and the siblings checkpoint and lock.
"""

from __future__ import annotations

import contextlib
import json
import platform
import time
from pathlib import Path

import torch

from disgen.config import TrainConfig, from_dict, read_json, validate
from disgen.data import TensorDataset
from disgen.errors import DisgenError
from disgen.files import write_error, write_json
from disgen.models import get_model
from disgen.runs import checkpoint
from disgen.runs.compatible import check_compatible
from disgen.runs.lock import LOCK
from disgen.version import __version__


def default_run_dir(cfg: TrainConfig, root: str | Path = "runs") -> Path:
    dataset = Path(cfg.dataset).name if ("/" in cfg.dataset or Path(cfg.dataset).is_dir()) else cfg.dataset
    return Path(root) / f"{cfg.model}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def data_info(data: TensorDataset) -> dict:
    """What run.json says of the data; a Hugging Face dataset's name, config, revision and fingerprints too."""
    info = {"name": data.name, "image_shape": list(data.image_shape), "classes": list(data.classes)}
    return {**info, "hf": data.extra["hf"]} if "hf" in data.extra else info


def prepare(
    run_dir: Path, cfg: TrainConfig, data: TensorDataset, device: torch.device, resume: bool, speed: dict | None = None
) -> None:
    """Create the run directory and write config.json and run.json (with ``speed``: the precision,
    layout and processes the run resolved to), refusing to overwrite a run."""
    has_run = (run_dir / "checkpoints" / "last.pt").exists()
    if has_run and not resume:
        raise DisgenError(
            f"{run_dir} already holds a training run: add --resume to continue it, or choose another --run-dir"
        )
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "images").mkdir(exist_ok=True)
    except OSError as err:
        raise write_error(run_dir, err) from None
    write_json(run_dir / "config.json", cfg.to_dict())
    write_json(
        run_dir / "run.json",
        {
            "data": data_info(data),
            "device": str(device),
            **(speed or {}),
            "disgen": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


def check_run_dir(run_dir: Path, dataset: str | None, resume: bool) -> None:
    """Refuse, before anything is written: a run directory inside the folder of images it trains
    on (its pictures would become images of the dataset on the next run), and, for a new run, an
    existing folder that holds files but no run disgen started there (they would be overwritten)."""
    run_dir = Path(run_dir)
    source = Path(dataset).expanduser() if dataset else None
    if source is not None and source.is_dir() and inside(run_dir, source):
        raise DisgenError(
            f"--run-dir {run_dir} is inside the dataset's folder {source}: the run's pictures would become "
            f"images of the dataset; choose a --run-dir outside {source}"
        )
    if resume or not run_dir.is_dir() or has_checkpoint(run_dir) or started_here(run_dir):
        return  # a run there is refused or continued by prepare and --resume
    present = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK)
    if present:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise DisgenError(
            f"--run-dir {run_dir} is a folder of other files ({shown}), not a disgen run directory; nothing "
            "was written: choose a new or empty folder"
        )


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or below it (links resolved)."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def started_here(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds the run.json of a run disgen started (one stopped before its first
    checkpoint may be started again)."""
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(info, dict) and isinstance(info.get("disgen"), str) and isinstance(info.get("data"), dict)


def read_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    data = read_json(path, "the run's config") if path.is_file() else None
    if data is None:
        raise DisgenError(
            f"{run_dir} is not a disgen run directory (no config.json); pass the directory that `disgen train` printed"
        )
    if not isinstance(data, dict):
        raise DisgenError(f"{path} must hold a JSON object of option: value, not {type(data).__name__}")
    cfg = from_dict(data)
    validate(cfg)
    return cfg


def has_checkpoint(run_dir: Path) -> bool:
    return any((Path(run_dir) / "checkpoints" / n).is_file() for n in ("last.pt", "best.pt"))


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a training run to resume: its config.json or a checkpoint."""
    return (Path(run_dir) / "config.json").is_file() or has_checkpoint(run_dir)


def nearest_runs(run_dir: Path, root: str | Path = "runs", n: int = 5) -> list[Path]:
    """The run directories beside ``run_dir`` and under ``root``, nearest in name first
    (difflib's ratio): what a mistyped ``--run-dir`` most likely meant."""
    import difflib

    found = set()
    for folder in {Path(run_dir).parent, Path(root)}:
        with contextlib.suppress(OSError):
            found.update(p for p in folder.iterdir() if p.is_dir() and holds_run(p))
    name = Path(run_dir).name
    return sorted(found, key=lambda p: (-difflib.SequenceMatcher(None, name, p.name).ratio(), str(p)))[:n]


def no_run_error(run_dir: Path, root: str | Path = "runs") -> DisgenError:
    """``--resume`` on a folder with no run: the folder, the nearest runs, and what to do."""
    near = nearest_runs(run_dir, root)
    listed = (
        ("nearest run directories: " + ", ".join(map(str, near)))
        if near
        else f"no run directories in {Path(run_dir).parent} or {root}/"
    )
    return DisgenError(
        f"--resume: {run_dir} holds no run (no config.json, no checkpoint); {listed}. Check "
        "--run-dir, or use --resume auto to continue a run where there is one and start one where "
        "there is not"
    )


def checkpoint_path(run_dir: Path, name: str = "auto") -> Path:
    """``checkpoints/NAME.pt``; ``auto``: best.pt (chosen on validation) where the run has one,
    else last.pt."""
    folder = Path(run_dir) / "checkpoints"
    if name == "auto":
        name = "best" if (folder / "best.pt").is_file() else "last"
    return folder / f"{name}.pt"


def load_nets(run_dir: Path, name: str = "auto", device: str | torch.device = "cpu"):
    """A run's networks from its directory alone, in eval mode on ``device``, their checkpoint
    checked against its config: ``(cfg, spec, nets, state, path)``."""
    cfg = read_config(run_dir)
    spec = get_model(cfg.model)
    path = checkpoint_path(run_dir, name)
    if name == "best" and not path.is_file() and path.with_name("last.pt").is_file():
        why = (
            "it was trained with --val-split 0: no validation split chose a best epoch"
            if cfg.val_split == 0
            else "no epoch has written it yet"
        )
        raise DisgenError(f"--checkpoint best: {run_dir} has no checkpoints/best.pt ({why}); use --checkpoint last")
    state = checkpoint.load(path, device)
    info = state["data"]
    nets = spec.build(spec.model_config(cfg.model_args), tuple(info["image_shape"]), len(info["classes"]))
    check_compatible(state, cfg, nets)
    for k, m in nets.items():
        m.load_state_dict(state["nets"][k])
        m.to(device).eval()
    return cfg, spec, nets, state, path
