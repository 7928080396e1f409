"""What a report reads from one run directory (:class:`RunFiles`), and the numbers it picks from
a run's metrics: which keys it charts, which side of each is better, the best epoch of each.

May import: runs, models, objectives, config and errors (the run directory's own readers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from disgen import config, runs
from disgen.errors import DisgenError
from disgen.objectives import finite, validation_metrics

BOOKKEEPING = ("epoch", "lr", "seconds", "eval_seconds")  # logged, charted, but never "best"
LOWER_BETTER = ("loss", "mse", "frechet", "w2", "kid", "kl")
HIGHER_BETTER = ("accuracy", "acc", "precision", "recall", "covered", "entropy", "share")


@dataclass
class RunFiles:
    """What a report reads from one run directory (no checkpoint: pictures load those)."""

    dir: Path
    label: str
    config: dict  # config.json as written
    info: dict  # run.json (dataset, device, versions), {} if missing
    history: list[dict]  # metrics.jsonl's epoch records
    final: dict  # metrics.jsonl's final record: the test split after the last epoch ({} if none)
    evaluation: list[dict]  # eval.json's results: the test split after training, `disgen eval`s
    objective: str
    best: tuple[str, str]  # the objective's metric that picks best.pt, and "min" or "max"
    best_record: int | None = None  # index in history of the epoch best.pt holds (Objective.best_record)


def read_json(path: Path) -> dict:
    data = config.read_json(path, "run file")
    return data if isinstance(data, dict) else {}


def read_run(path: Path, label: str | None = None) -> RunFiles:
    from disgen.models import get_model
    from disgen.objectives import get_objective

    path = Path(path)
    if not path.is_dir():
        raise DisgenError(f"run directory {path} does not exist; pass the directory `disgen train` printed")
    cfg = runs.read_config(path)  # checks config.json's keys and types
    objective = get_objective(get_model(cfg.model).objective)
    history = [rec for rec in runs.read_metrics(path) if isinstance(rec, dict)]
    info = read_json(path / "run.json")
    if not isinstance(info.get("data"), dict):
        info["data"] = {}
    if not isinstance(info["data"].get("classes"), list):
        info["data"]["classes"] = []
    read_json(path / runs.EVAL_FILE)  # refuses a file that is not JSON, naming it
    return RunFiles(
        path,
        label or path.name,
        read_json(path / "config.json"),
        info,
        history,
        runs.read_final(path) or {},
        runs.read_evals(path),
        objective.name,
        objective.pick({k: v for rec in history for k, v in validation_metrics(rec).items()}),
        objective.best_record(history),
    )


# -- numbers -----------------------------------------------------------------------------------
def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def epoch_of(history: list[dict], i: int) -> int | float:
    """The epoch of record ``i`` (its position + 1 where the record lacks a usable one)."""
    e = history[i].get("epoch")
    return e if is_number(e) and math.isfinite(e) else i % len(history) + 1


def metric_keys(history: list[dict]) -> list[str]:
    """Numeric keys in the order first logged: validation metrics, then a test curve
    (--test-every-epoch), then training, then bookkeeping."""
    keys = list(dict.fromkeys(k for rec in history for k, v in rec.items() if is_number(v) and k != "epoch"))
    rank = {"val": 0, "test": 1, "train": 2}
    return sorted(keys, key=lambda k: 3 if k in BOOKKEEPING else rank.get(k.split("_")[0], 2))


def direction(key: str) -> str | None:
    """ "min" or "max" for held-out metrics whose better side is clear, else None (GAN losses, lr, ...)."""
    if not key.startswith(("val_", "test_")):
        return None
    words = key.split("_", 1)[1].split("_")
    if any(w in LOWER_BETTER for w in words):
        return "min"
    if any(w in HIGHER_BETTER for w in words):
        return "max"
    return None


def best_of(history: list[dict], key: str, mode: str) -> tuple[float, int] | None:
    """(value, epoch) of the best finite ``key``, the first epoch among equal values."""
    found = [(rec[key], epoch_of(history, i)) for i, rec in enumerate(history) if finite(rec.get(key))]
    if not found:
        return None
    pick = min if mode == "min" else max
    value = pick(v for v, _ in found)
    return value, next(e for v, e in found if v == value)
