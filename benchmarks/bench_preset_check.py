"""Presets chosen on validation: each model's presets (and the variants that decided them) trained
side by side with the same validation split, over several seeds, compared by their validation
metric only. Nothing here reads a test split: it is the evidence behind each preset's choice, and
bench_presets.py then measures the chosen presets on the test split once.

    python benchmarks/bench_preset_check.py [--checks NAME,...] [--seeds 0 1 2] [--jobs 2]

Each run is ``disgen train MODEL ARGS --val-split 0.1 --seed S``; the seed presets, which train on
the whole training split by themselves, get the same validation split here so that they are
compared on the same images.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_presets import train  # noqa: E402
from common import save, stats, table  # noqa: E402

# check -> (the metric and whether higher is better, {variant: `disgen train` arguments})
CHECKS: dict[str, tuple[str, str, dict[str, list[str]]]] = {
    "mlp-classifier": (
        "accuracy",
        "max",
        {
            "seed": ["mlp-classifier", "--preset", "seed", "--dataset", "fashion-mnist"],
            "default": ["mlp-classifier", "--dataset", "fashion-mnist"],
        },
    ),
    "mlp-autoencoder": (
        "mse",
        "min",
        {
            "seed": ["mlp-autoencoder", "--preset", "seed", "--dataset", "fashion-mnist"],
            "default": ["mlp-autoencoder", "--dataset", "fashion-mnist"],
        },
    ),
    "gan2d": ("w2_squared", "min", {"seed": ["gan2d", "--preset", "seed"], "default": ["gan2d"]}),
    "cnn-classifier": (
        "accuracy",
        "max",
        {
            "seed": ["cnn-classifier", "--preset", "seed"],
            "fast": ["cnn-classifier", "--preset", "fast"],
            "default": ["cnn-classifier"],
            "default, 15 epochs": ["cnn-classifier", "--epochs", "15"],
        },
    ),
}


def one(check: str, variant: str, seed: int, root: Path, threads: int) -> dict:
    from disgen import runs

    metric, mode, variants = CHECKS[check]
    run_dir = root / f"{check}-{variant.replace(' ', '').replace(',', '-')}-{seed}"
    train(variants[variant] + ["--val-split", "0.1"], seed, run_dir, threads)
    history = runs.read_metrics(run_dir)
    values = [r[f"val_{metric}"] for r in history]
    best = max(values) if mode == "max" else min(values)
    train_s = sum(r["seconds"] for r in history)
    print(
        f"{check:22s} {variant:20s} seed {seed}: best val {metric} {best:.4f} (epoch {values.index(best) + 1}), "
        f"{train_s:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return {"val": best, "epoch": values.index(best) + 1, "train_seconds": train_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checks", default=",".join(CHECKS), help=f"comma-separated subset of {','.join(CHECKS)}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="preset_check")
    args = p.parse_args()
    names = [n for n in args.checks.split(",") if n]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        p.error(f"unknown check(s) {', '.join(unknown)}: choose from {', '.join(CHECKS)}")
    jobs = [(c, v, s) for c in names for v in CHECKS[c][2] for s in args.seeds]
    with tempfile.TemporaryDirectory(prefix="disgen-check-") as tmp, ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda j: one(*j, Path(tmp), args.threads), jobs))
    results: dict[str, dict] = {}
    for (c, v, _), r in zip(jobs, done):
        results.setdefault(c, {"metric": CHECKS[c][0], "better": CHECKS[c][1], "variants": {}})
        results[c]["variants"].setdefault(
            v, {"command": "disgen train " + " ".join(CHECKS[c][2][v]) + " --val-split 0.1 --seed S", "runs": []}
        )["runs"].append(r)
    rows = []
    for c, r in results.items():
        for v, x in r["variants"].items():
            x["val"] = stats([y["val"] for y in x["runs"]])
            x["train_seconds"] = stats([y["train_seconds"] for y in x["runs"]])
            rows.append(
                [
                    c,
                    v,
                    x["val"]["n"],
                    f"{x['val']['mean']:.4f} ± {x['val']['std']:.4f}",
                    f"{x['train_seconds']['mean']:.0f}",
                ]
            )
    print(table(rows, ["check", "variant", "n", "best val", "train s"]))
    save(args.name, {"seeds": args.seeds, "jobs": args.jobs, "threads": args.threads, "results": results})


if __name__ == "__main__":
    main()
