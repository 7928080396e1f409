"""`disgen predict` and `disgen reconstruct`: a run applied to a user's images."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from disgen.cli import (
    INPUTS_HELP,
    command,
    grid_scale,
    output_path,
    plural,
    run_dir_args,
)


def predict_args(p: argparse.ArgumentParser, argv: list[str]) -> None:
    run_dir_args(p, INPUTS_HELP, "FILE.csv")
    p.add_argument(
        "--format",
        choices=("csv", "kaggle"),
        default="csv",
        help="csv: input,label,p0,...; kaggle: a competition submission, id + one probability column per class",
    )
    p.add_argument(
        "--sample-submission",
        metavar="FILE",
        help="kaggle: the competition's sample_submission.csv, whose column order and ids the submission follows",
    )


@command("predict", predict_args)
def cmd_predict(args) -> None:
    from disgen.api import load
    from disgen.data.images import load_inputs

    output_path(args.out)
    run = load(args.run_dir, args.checkpoint)
    if args.format == "kaggle":
        from disgen.report.submission import write_submission

        write_submission(run, args.inputs, args.out, args.sample_submission)
        return
    digits = all(c.isdigit() for c in run.classes)
    names, x = load_inputs(args.inputs, run.image_shape, digits)
    probs = run.predict(x)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["input", "label"] + [f"p{i}" for i in range(probs.shape[1])])
    for name, p in zip(names, probs.tolist()):
        writer.writerow([name, run.classes[max(range(len(p)), key=p.__getitem__)]] + [f"{v:.6f}" for v in p])
    if not args.out:
        sys.stdout.write(text.getvalue())
        return
    from disgen.files import atomic_write

    atomic_write(Path(args.out), lambda f: f.write(text.getvalue().encode()))
    print(f"wrote {plural(len(names), 'prediction')} to {args.out}", file=sys.stderr)


@command("reconstruct", lambda p, argv: run_dir_args(p, INPUTS_HELP, "GRID.png", out_required=True))
def cmd_reconstruct(args) -> None:
    from disgen.api import load
    from disgen.data.images import load_inputs
    from disgen.viz import save_pairs

    output_path(args.out)
    run = load(args.run_dir, args.checkpoint)
    names, x = load_inputs(args.inputs, run.image_shape, True)
    recon = run.reconstruct(x)
    save_pairs(x.float() / 255, recon, args.out, nrow=min(10, len(x)), scale=grid_scale(run.image_shape))
    print(f"wrote originals and reconstructions of {plural(len(names), 'image')} to {args.out}", file=sys.stderr)
