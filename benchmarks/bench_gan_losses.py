"""dcgan28's GAN losses at equal training time: ``--gan-loss bce`` (the default) against ``hinge``
and ``wasserstein-gp``, each ``disgen train dcgan28 --gan-loss L --time-budget B --seed S`` (the
default preset otherwise, its validation split), over several seeds.

    python benchmarks/bench_gan_losses.py [--dataset mnist-mini] [--budget 60] [--seeds 0 1 2]

Runs are one torch thread each, one at a time, the losses in rotated order per seed (so a change
in the machine's load falls on every loss alike). Reported per run: the steps the budget allowed
and the test split's metrics, evaluated once after training with best.pt, in the feature space of
disgen's reference classifier for the dataset (trained once and shared by every run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import rotated, save, stats, table  # noqa: E402

LOSSES = ["bce", "hinge", "wasserstein-gp"]
METRICS = ["frechet_distance", "kid", "precision", "recall", "min_class_share", "classes_covered"]


def train(loss: str, seed: int, args, root: Path) -> dict:
    from disgen import runs

    run_dir = root / f"{loss}-{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "disgen", "train", "dcgan28", "--gan-loss", loss, "--dataset", args.dataset]
    cmd += ["--time-budget", str(args.budget), "--seed", str(seed), "--run-dir", str(run_dir), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    final, history = runs.read_final(run_dir), runs.read_metrics(run_dir)
    out = {
        "seed": seed,
        "epochs": len(history),
        "train_seconds": sum(r["seconds"] for r in history),
        "checkpoint_epoch": final["checkpoint_epoch"],
        **{m: final.get(f"test_{m}") for m in METRICS},
    }
    print(f"{loss:15s} seed {seed}: {out}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist-mini")
    p.add_argument("--budget", type=float, default=60.0, help="training seconds per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--name", default="gan_losses_mnist-mini")
    args = p.parse_args()
    done: dict[str, list[dict]] = {loss: [] for loss in LOSSES}
    with tempfile.TemporaryDirectory(prefix="disgen-gan-losses-") as tmp:
        for i, seed in enumerate(args.seeds):
            for loss in rotated(LOSSES, i):
                done[loss].append(train(loss, seed, args, Path(tmp)))
    results = {
        loss: {"runs": r, **{m: stats([x[m] for x in r]) for m in ["train_seconds", *METRICS]}}
        for loss, r in done.items()
    }
    rows = [
        [loss, f"{r['train_seconds']['mean']:.0f}"] + [f"{r[m]['mean']:.4g} ± {r[m]['std']:.2g}" for m in METRICS]
        for loss, r in results.items()
    ]
    print(table(rows, ["loss", "train s"] + METRICS))
    save(args.name, {"dataset": args.dataset, "budget_s": args.budget, "seeds": args.seeds, "results": results})


if __name__ == "__main__":
    main()
