"""dcgan28's presets at equal training time: the seed preset (seed 002's Keras networks) against
the default, each trained for as many epochs as fit in the same budget, over several seeds.

    python benchmarks/bench_gan_equal_time.py [--dataset fashion-mnist] [--budget 720] [--seeds 0 1 2]

First both presets' seconds per epoch are measured in this process (one torch thread, the presets
alternating), which fixes each preset's number of epochs (its learning-rate schedule then spans
exactly those). Then each run is ``disgen train dcgan28 --preset P --epochs E --seed S`` in a
subprocess, ``--jobs`` side by side. Both presets train with the same validation split
(``--val-split 0.1``, which the seed preset does not use by itself), so that they share one
reference classifier. Reported: the test split's metrics, evaluated once after training with
best.pt (the best validation Fréchet distance), in that reference's feature space.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import load_data, make_trainer, rotated, save, stats, table  # noqa: E402

METRICS = ["frechet_distance", "kid", "precision", "recall", "min_class_share", "classes_covered", "class_kl"]
PRESETS = ["seed", "default"]


def seconds_per_epoch(dataset: str, steps: int, repeats: int) -> dict[str, float]:
    """Each preset's training seconds per epoch, from ``steps`` steps timed ``repeats`` times."""
    from disgen.data import splits
    from disgen.objectives import bound_step

    torch.set_num_threads(1)
    data = splits.with_validation(load_data(dataset), 0.1)
    times: dict[str, list[float]] = {p: [] for p in PRESETS}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {p: make_trainer("dcgan28", data, {"preset": p, "val_split": 0.1}, Path(tmp) / p) for p in PRESETS}
        for r in range(repeats):
            for p in rotated(PRESETS, r):
                t, batches = trainers[p], iter(trainers[p].loader)
                start = time.perf_counter()
                for _ in range(steps):
                    with t.speed.autocast():
                        bound_step(t.objective.step, t.model_cfg)(t.step_nets, t.opts, next(batches))
                times[p].append((time.perf_counter() - start) / steps)
    return {p: min(v) * len(trainers[p].loader) for p, v in times.items()}


def train(preset: str, epochs: int, seed: int, dataset: str, root: Path) -> dict:
    from disgen import runs

    run_dir = root / f"{preset}-{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "disgen",
        "train",
        "dcgan28",
        "--preset",
        preset,
        "--dataset",
        dataset,
        "--epochs",
        str(epochs),
        "--val-split",
        "0.1",
        "--seed",
        str(seed),
        "--run-dir",
        str(run_dir),
        "--no-progress",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    final, history = runs.read_final(run_dir), runs.read_metrics(run_dir)
    out = {
        "seed": seed,
        "epochs": epochs,
        "train_seconds": sum(r["seconds"] for r in history),
        "checkpoint_epoch": final["checkpoint_epoch"],
        **{m: final.get(f"test_{m}") for m in METRICS},
        "val_frechet_distance": history[final["checkpoint_epoch"] - 1]["val_frechet_distance"],
    }
    print(
        f"{preset:8s} seed {seed}: {epochs} epochs, {out['train_seconds']:.0f} s, test FD "
        f"{out['frechet_distance']:.3f}, min_class_share {out['min_class_share']:.3f}",
        file=sys.stderr,
        flush=True,
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--budget", type=float, default=720.0, help="training seconds per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timing-steps", type=int, default=20)
    p.add_argument("--name", help="results file name (default dcgan28_equal_time_DATASET)")
    args = p.parse_args()
    per_epoch = seconds_per_epoch(args.dataset, args.timing_steps, 3)
    epochs = {p: max(1, math.floor(args.budget / s)) for p, s in per_epoch.items()}
    print(
        f"seconds per epoch {json.dumps({p: round(s, 1) for p, s in per_epoch.items()})} -> epochs {epochs}",
        file=sys.stderr,
    )
    jobs = [(p, s) for s in args.seeds for p in PRESETS]
    with tempfile.TemporaryDirectory(prefix="disgen-gan-") as tmp, ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda j: train(j[0], epochs[j[0]], j[1], args.dataset, Path(tmp)), jobs))
    results = {}
    for preset in PRESETS:
        runs_ = [r for (p, _), r in zip(jobs, done) if p == preset]
        results[preset] = {
            "epochs": epochs[preset],
            "seconds_per_epoch_timed": per_epoch[preset],
            "train_seconds": stats([r["train_seconds"] for r in runs_]),
            "checkpoint_epoch": [r["checkpoint_epoch"] for r in runs_],
            "val_frechet_distance": stats([r["val_frechet_distance"] for r in runs_]),
            **{m: stats([r[m] for r in runs_]) for m in METRICS},
        }
    rows = [
        [p, r["epochs"], f"{r['train_seconds']['mean']:.0f}"]
        + [f"{r[m]['mean']:.4g} ± {r[m]['std']:.2g}" for m in METRICS]
        for p, r in results.items()
    ]
    print(table(rows, ["preset", "epochs", "train s"] + METRICS))
    save(
        args.name or f"dcgan28_equal_time_{args.dataset}",
        {
            "dataset": args.dataset,
            "budget_s": args.budget,
            "seeds": args.seeds,
            "jobs": args.jobs,
            "val_split": 0.1,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
