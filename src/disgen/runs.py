"""Run directories: creating them, and reading back what a run wrote.

    RUN_DIR/config.json        the resolved TrainConfig
    RUN_DIR/run.json           dataset (name, image shape, classes), device, versions
    RUN_DIR/split.json         which images the validation split holds (disgen.data.splits)
    RUN_DIR/metrics.jsonl      one JSON object per completed epoch (train_*, val_*), then a
                               final record ("final": true) with the test split's metrics
    RUN_DIR/checkpoints/       last.pt (every epoch) and best.pt (best validation metric)
    RUN_DIR/images/            pictures
    RUN_DIR/eval.json          every evaluation of the run, one per dataset, split and checkpoint:
                               the test split after training, and each ``disgen eval``
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

from disgen import __version__
from disgen.checkpoint import atomic_write
from disgen.config import TrainConfig, from_dict
from disgen.data import TensorDataset
from disgen.errors import DisgenError


def default_run_dir(cfg: TrainConfig, root: str | Path = "runs") -> Path:
    dataset = Path(cfg.dataset).name if ("/" in cfg.dataset or Path(cfg.dataset).is_dir()) else cfg.dataset
    return Path(root) / f"{cfg.model}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def data_info(data: TensorDataset) -> dict:
    return {"name": data.name, "image_shape": list(data.image_shape), "classes": list(data.classes)}


def write_error(path: Path, err: OSError) -> DisgenError:
    """A failed write of a run file (a full disk, a read-only folder) as one clear error."""
    return DisgenError(f"could not write {path}: {err.strerror or err}; free some disk space or check the "
                       "folder's permissions (a training run then continues with --resume)")


def write_json(path: Path, obj: dict) -> None:
    try:
        atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))
    except OSError as err:
        raise write_error(path, err) from None


def prepare(run_dir: Path, cfg: TrainConfig, data: TensorDataset, device: torch.device, resume: bool,
            speed: dict | None = None) -> None:
    """Create the run directory and write config.json and run.json (with ``speed``: the precision,
    layout and processes the run resolved to), refusing to overwrite a run."""
    has_run = (run_dir / "checkpoints" / "last.pt").exists()
    if has_run and not resume:
        raise DisgenError(f"{run_dir} already holds a training run: add --resume to continue it, "
                          "or choose another --run-dir")
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "images").mkdir(exist_ok=True)
    except OSError as err:
        raise write_error(run_dir, err) from None
    write_json(run_dir / "config.json", cfg.to_dict())
    write_json(run_dir / "run.json", {
        "data": data_info(data), "device": str(device), **(speed or {}), "disgen": __version__,
        "torch": torch.__version__, "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })


def read_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise DisgenError(f"{run_dir} is not a disgen run directory (no config.json); "
                          "pass the directory that `disgen train` printed")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DisgenError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise DisgenError(f"{path} must hold a JSON object of option: value, not {type(data).__name__}")
    return from_dict(data)


def _records(run_dir: Path) -> list[dict]:
    """Every well-formed record of metrics.jsonl (a torn last line is dropped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("epoch", 0), (int, float)):
            out.append(rec)
    return out


def read_metrics(run_dir: Path, upto: int | None = None) -> list[dict]:
    """Epoch records of metrics.jsonl (those with epoch <= ``upto``), without the final test record."""
    return [r for r in _records(run_dir) if not r.get("final") and (upto is None or r.get("epoch", 0) <= upto)]


def read_final(run_dir: Path) -> dict | None:
    """The final record of metrics.jsonl: the test split's metrics after the last epoch (None if
    the run has not finished, or has no test split)."""
    finals = [r for r in _records(run_dir) if r.get("final")]
    return finals[-1] if finals else None


EVAL_FILE = "eval.json"


def read_evals(run_dir: Path) -> list[dict]:
    """The evaluations kept in eval.json, one per (dataset, split, checkpoint)."""
    path = Path(run_dir) / EVAL_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        return [r for r in data["results"] if isinstance(r, dict)]
    return [data] if isinstance(data, dict) and "dataset" in data else []  # one result (older disgen)


def record_eval(run_dir: Path, result: dict) -> list[dict]:
    """Keep ``result`` in eval.json, replacing an earlier one of the same dataset, split and
    checkpoint (and nothing else), and return them all."""
    key = lambda r: (r.get("dataset"), r.get("split", "test"), r.get("checkpoint"))
    kept = [r for r in read_evals(run_dir) if key(r) != key(result)] + [result]
    write_json(Path(run_dir) / EVAL_FILE, {"results": kept})
    return kept


def has_checkpoint(run_dir: Path) -> bool:
    return any((Path(run_dir) / "checkpoints" / n).is_file() for n in ("last.pt", "best.pt"))


def checkpoint_path(run_dir: Path, name: str = "auto") -> Path:
    """``checkpoints/NAME.pt``; ``auto``: best.pt (chosen on validation) where the run has one,
    else last.pt."""
    folder = Path(run_dir) / "checkpoints"
    if name == "auto":
        name = "best" if (folder / "best.pt").is_file() else "last"
    return folder / f"{name}.pt"


def write_metrics(run_dir: Path, records: list[dict]) -> None:
    path = Path(run_dir) / "metrics.jsonl"
    try:
        atomic_write(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in records).encode()))
    except OSError as err:
        raise write_error(path, err) from None


def append_metrics(run_dir: Path, record: dict) -> None:
    path = Path(run_dir) / "metrics.jsonl"
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as err:
        raise write_error(path, err) from None


def check_compatible(state: dict, cfg: TrainConfig, nets: dict) -> None:
    """Refuse a checkpoint of another model or shape, listing what does not match."""
    problems = []
    if state.get("model") != cfg.model:
        problems.append(f"model {state.get('model')!r} != {cfg.model!r}")
    saved = state.get("nets", {})
    if set(saved) != set(nets):
        problems.append(f"networks {sorted(saved)} != {sorted(nets)}")
    for name, module in nets.items():
        ours = module.state_dict()
        theirs = saved.get(name, {})
        for key in sorted(set(ours) | set(theirs)):
            if key not in theirs:
                problems.append(f"{name}.{key} missing from the checkpoint")
            elif key not in ours:
                problems.append(f"{name}.{key} unexpected in the checkpoint")
            elif tuple(ours[key].shape) != tuple(theirs[key].shape):
                problems.append(f"{name}.{key} shape {tuple(theirs[key].shape)} != {tuple(ours[key].shape)}")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise DisgenError(f"the checkpoint does not fit this model: {shown}")
