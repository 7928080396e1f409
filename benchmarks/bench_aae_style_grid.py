"""Supervised AAE: does its style/content grid show each column as its digit? A reference
``cnn-classifier`` (disgen.reference: trained once on the dataset and cached) classifies every
cell of grids whose rows share a style z (from test images, and drawn from the prior) and whose
columns are the classes; we report the share of cells classified as their column's class.

    python benchmarks/bench_aae_style_grid.py --epochs 10 --z-dim 2 --rows 50
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save, table  # noqa: E402

import disgen  # noqa: E402
from disgen.data import load_dataset, to_float  # noqa: E402
from disgen.models.aae import sample_prior  # noqa: E402
from disgen.objectives.aae import encode  # noqa: E402
from disgen.reference import get_reference  # noqa: E402
from disgen.viz import save_grid  # noqa: E402
from disgen.viz_aae import style_grid  # noqa: E402


def column_accuracy(reference, grid: torch.Tensor, k: int) -> float:
    pred = reference.predict_features(reference.features_of(grid, (0.0, 1.0))).argmax(1)
    return (pred == torch.arange(k).repeat(len(grid) // k)).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist-mini")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--z-dim", type=int, default=2)
    p.add_argument("--rows", type=int, default=50, help="styles per grid (10 are drawn in the PNGs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--d-lr", type=float, default=None, help="discriminator lr (default: the preset's)")
    p.add_argument("--label-conditioned", action=argparse.BooleanOptionalAction, default=True,
                   help="d_gauss also sees the label (the default); --no-label-conditioned: the paper's")
    p.add_argument("--run-dir", default=f"/tmp/bench-aae-style-{time.strftime('%H%M%S')}-{os.getpid()}")
    args = p.parse_args()
    data = load_dataset(args.dataset)
    start = time.process_time()
    run = disgen.train("aae", dataset_obj=data, dataset=args.dataset, epochs=args.epochs, seed=args.seed,
                       model_args={"mode": "supervised", "z_dim": args.z_dim,
                                   "label_conditioned": args.label_conditioned,
                                   **({} if args.d_lr is None else {"d_lr": args.d_lr})},
                       run_dir=args.run_dir,
                       progress=False, device="cpu")
    minutes = (time.process_time() - start) / 60
    reference = get_reference(data, torch.device("cpu"), log=lambda m: print(m, file=sys.stderr))
    k, cfg = len(data.classes), run.nets["encoder"].cfg
    _, z_test = encode(run.nets, to_float(data.test.images[:args.rows]))
    z_prior = sample_prior(cfg, args.rows, "cpu", torch.Generator().manual_seed(args.seed))
    rows, results = [], {}
    for name, z in (("test style", z_test), ("prior style", z_prior)):
        grid = style_grid(run.nets, z, k)
        results[name] = column_accuracy(reference, grid, k)
        rows.append([name, args.rows * k, f"{results[name]:.3f}"])
        save_grid(grid[:10 * k], Path(args.run_dir) / f"check_{name.split()[0]}.png", k, scale=2)
    print(table(rows, ["grid", "cells", "share as column digit"]))
    print(f"{args.epochs} epochs, {minutes:.1f} CPU minutes; run {args.run_dir}", file=sys.stderr)
    out = f"aae_style_grid_{args.dataset}" + ("" if args.label_conditioned else "_plain")
    save(out, {"args": vars(args), "results": results, "cpu_minutes": minutes, "reference": reference.source})


if __name__ == "__main__":
    main()
