"""``disgen sample RUN_DIR``: draw from a trained generator, from the run directory alone.

    disgen sample RUN_DIR [--n 64] [--seed N] [--out grid.png | --out-dir DIR] [--interpolate]

``--out`` writes one grid PNG (for gan2d: a scatter PNG, or a CSV of points if it ends in .csv),
``--out-dir`` one PNG per sample, ``--interpolate`` rows that walk the latent space between random
pairs of z along the great circle (slerp; White 2016), which keeps the Gaussian's typical norm.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

from disgen.cli import MAX_SAMPLES, command, output_path, plural, run_dir_args
from disgen.errors import DisgenError
from disgen.objectives.gan import INTERPOLATION_STEPS, interpolation_latents


def sample_args(p, argv) -> None:
    run_dir_args(p)
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent draws (default 0)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="GRID.png", help="one grid picture (default RUN_DIR/samples/sample.png)")
    where.add_argument("--out-dir", metavar="DIR", help="one PNG per sample")
    p.add_argument("--label", type=int, help="aae (supervised, semi-supervised): the class to draw")
    p.add_argument(
        "--interpolate",
        action="store_true",
        help=f"rows of {INTERPOLATION_STEPS} images between random pairs of z (--n rounds to rows)",
    )


@command("sample", sample_args)
def cmd_sample(args) -> None:
    from disgen.api import generator_models, load
    from disgen.viz import save_grid

    if not 1 <= args.n <= MAX_SAMPLES:
        raise DisgenError(f"--n must be in 1..{MAX_SAMPLES:,} (got {args.n})")
    output_path(args.out)
    output_path(args.out_dir, "--out-dir", folder=True)
    run = load(args.run_dir, args.checkpoint)
    if run.objective.sample is None:
        raise DisgenError(
            f"{args.run_dir} is a {run.spec.name} run; `sample` needs a generator: a run of {generator_models()}"
        )
    nrow = None
    z = None
    if args.interpolate:
        rows = max(1, math.ceil(args.n / INTERPOLATION_STEPS))
        z, nrow = interpolation_latents(run.latent_net(), rows, args.seed), INTERPOLATION_STEPS
        if rows * INTERPOLATION_STEPS != args.n:
            print(
                f"--interpolate draws whole rows of {INTERPOLATION_STEPS} steps: {plural(rows, 'row')}, "
                f"{rows * INTERPOLATION_STEPS} images for --n {args.n}",
                file=sys.stderr,
            )
    x = run.sample(args.n, args.seed, z=z, label=args.label)
    if x.dim() == 2 and args.out_dir:
        raise DisgenError(
            f"--out-dir writes one picture per sample; {run.spec.name} draws points: use --out "
            "FILE.csv (the points) or FILE.png (a scatter)"
        )
    if x.dim() == 2:
        write_points(run, x, Path(args.out or Path(args.run_dir) / "samples" / "sample.png"))
        return
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(x):
            save_grid(img[None], out / f"sample_{i:05d}.png", 1, pad=0)
        print(f"wrote {len(x)} samples to {out}/", file=sys.stderr)
        return
    out = Path(args.out or Path(args.run_dir) / "samples" / "sample.png")
    save_grid(x, out, nrow)
    print(f"wrote a grid of {len(x)} samples to {out}", file=sys.stderr)


def write_points(run, x: torch.Tensor, out: Path) -> None:
    """gan2d: a CSV of points, or the objective's picture of them (a scatter over D's decision surface)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        out.write_text("x,y\n" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in x.tolist()))
    else:
        from disgen.data import load_dataset

        if run.objective.draw_points is None:
            raise DisgenError(f"{run.spec.name} draws no picture of points: use --out FILE.csv")
        real = load_dataset(run.config.dataset, run.config.data_dir).train.images
        run.objective.draw_points(run.nets, real, x, out, run.spec.model_config(run.config.model_args))
    print(f"wrote {len(x)} points to {out}", file=sys.stderr)
