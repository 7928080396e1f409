"""Time to quality: Fashion-MNIST test accuracy against training seconds for ``cnn-classifier``.

Trains with the given preset (by default ``fast``, made for this) with ``--test-every-epoch``: the
10,000 test images are evaluated after every epoch for this curve only, and nothing reads them for
a choice (best.pt is chosen on the validation split as always). Prints the curve: training seconds
(the sum of the epochs' steps), with evaluation, and accuracy, then the first point at or above
``--target``. Over ``--seeds`` runs it gives the mean and spread of the run's own test figure
(best.pt, evaluated once after training), of the time to the target and of the whole command.

    python benchmarks/bench_time_to_accuracy.py [--preset fast] [--target 0.92] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import save, stats, summary, table  # noqa: E402

import disgen  # noqa: E402


def curve(preset: str, seed: int, dataset: str, extra: dict) -> list[dict]:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = disgen.train(
            "cnn-classifier",
            preset=preset,
            dataset=dataset,
            seed=seed,
            progress=False,
            run_dir=str(Path(tmp) / "run"),
            test_every_epoch=True,
            **extra,
        )
        wall = time.perf_counter() - start
    points, train_s, eval_s = [], 0.0, 0.0
    for r in run.history:
        train_s += r["seconds"]
        eval_s += r["eval_seconds"]
        points.append(
            {
                "epoch": r["epoch"],
                "train_seconds": round(train_s, 1),
                "train_and_eval_seconds": round(train_s + eval_s, 1),
                "test_accuracy": r["test_accuracy"],
                "val_accuracy": r["val_accuracy"],
            }
        )
    points[-1]["wall_seconds"] = round(wall, 1)
    points[-1]["final_test_accuracy"] = run.final["test_accuracy"]  # best.pt, chosen on validation
    points[-1]["checkpoint_epoch"] = run.final["checkpoint_epoch"]
    return points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--target", type=float, default=0.92)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    args = ap.parse_args()
    extra = {"epochs": args.epochs} if args.epochs else {}
    runs = {}
    for seed in args.seeds:
        points = curve(args.preset, seed, args.dataset, extra)
        runs[seed] = points
        rows = [
            [
                p["epoch"],
                f"{p['train_seconds']:.1f}",
                f"{p['train_and_eval_seconds']:.1f}",
                f"{100 * p['test_accuracy']:.2f}%",
            ]
            for p in points
        ]
        print(
            f"cnn-classifier --preset {args.preset} on {args.dataset}, seed {seed} "
            f"(whole command: {points[-1]['wall_seconds']:.0f} s wall)"
        )
        print(table(rows, ["epoch", "train s", "train+eval s", "test accuracy"]))
    reached = [
        next((p["train_seconds"] for p in pts if p["test_accuracy"] >= args.target), None) for pts in runs.values()
    ]
    final = [pts[-1]["final_test_accuracy"] for pts in runs.values()]
    wall = [pts[-1]["wall_seconds"] for pts in runs.values()]
    ok = [r for r in reached if r is not None]
    print(
        f"\nfinal accuracy {100 * summary(final)[0]:.2f}% ± {100 * summary(final)[1]:.2f} (n = {len(final)}); "
        f"reached {100 * args.target:.0f}% in {len(ok)}/{len(reached)} runs"
        + (f", after {summary(ok)[0]:.0f} ± {summary(ok)[1]:.0f} training seconds" if ok else "")
        + f"; whole command {summary(wall)[0]:.0f} s wall"
    )
    path = save(
        f"time_to_accuracy_{args.dataset}",
        {
            "preset": args.preset,
            "target": args.target,
            "seeds": args.seeds,
            "curves": runs,
            "final_accuracy_mean": summary(final)[0],
            "final_accuracy_std": summary(final)[1],
            "train_seconds_to_target": reached,
            "wall_seconds": wall,
            "test_accuracy": stats(final),
            "to_target": stats(ok) if ok else None,
            "reached": f"{len(ok)}/{len(reached)}",
            "wall": stats(wall),
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
