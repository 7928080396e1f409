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
    run_dir_args(p, INPUTS_HELP, "FILE.csv", out_help="the file to write the predictions to (default: standard output)")
    p.add_argument(
        "--format",
        choices=("csv", "kaggle"),
        default="csv",
        help="csv: input,label and one probability column per class, named by the class; kaggle: a competition "
        "submission, id + one probability column per class",
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
    run.require("predict")  # before any input is read
    if args.format == "kaggle":
        from disgen.report.submission import write_submission

        write_submission(run, args.inputs, args.out, args.sample_submission)
        return
    digits = all(c.isdigit() for c in run.classes)
    names, x = load_inputs(args.inputs, run.image_shape, digits)
    probs = run.predict(x)
    del x  # the images are no longer needed: the CSV's rows are made while writing
    if not args.out:
        write_predictions(sys.stdout, names, probs, run.classes)
        return
    from disgen.files import atomic_write

    def write(f) -> None:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        write_predictions(text, names, probs, run.classes)
        text.flush()
        text.detach()  # atomic_write still flushes, syncs and closes the file

    atomic_write(Path(args.out), write)
    print(f"wrote {plural(len(names), 'prediction')} to {args.out}", file=sys.stderr)


def write_predictions(out, names: list[str], probs, classes: list[str], rows: int = 4096) -> None:
    """The CSV input,label,CLASS... written to ``out`` a few thousand rows at a time (never the
    whole text in memory: 100,000 rows of Python floats and their text cost more than the images).
    Text cells are made safe for spreadsheets (:func:`disgen.files.csv_cell`)."""
    from disgen.files import csv_cell

    writer = csv.writer(out)
    writer.writerow([csv_cell(c) for c in ["input", "label", *class_columns(classes)]])
    safe = [csv_cell(c) for c in classes]
    for start in range(0, len(names), rows):
        chunk = probs[start : start + rows]
        best = chunk.argmax(1).tolist()
        writer.writerows(
            [csv_cell(name), safe[k]] + [f"{v:.6f}" for v in p]
            for name, k, p in zip(names[start : start + rows], best, chunk.tolist())
        )


def class_columns(classes: list[str]) -> list[str]:
    """A probability column per class, named by the class; ``p{i} NAME`` where a name would repeat
    one (``input``, ``label`` or another class's)."""
    taken = {"input", "label"}
    if len(set(classes)) == len(classes) and not taken & set(classes):
        return list(classes)
    return [f"p{i} {c}" for i, c in enumerate(classes)]


MAX_GRID_IMAGES = 100  # a grid of more would be too tall to look at (10,000 digits: 582x11,602 pixels)


def reconstruct_args(p: argparse.ArgumentParser, argv: list[str]) -> None:
    run_dir_args(
        p,
        INPUTS_HELP,
        "GRID.png",
        out_required=True,
        out_help=f"the PNG to write: rows of originals, each followed by its reconstructions (the first "
        f"{MAX_GRID_IMAGES} images)",
    )
    p.add_argument(
        "--label",
        type=int,
        metavar="K",
        help="supervised aae runs: the class (0-based) every image is decoded as; its decoder takes an image's "
        "style and its label",
    )


@command("reconstruct", reconstruct_args)
def cmd_reconstruct(args) -> None:
    from disgen.api import load
    from disgen.data.images import load_inputs
    from disgen.viz import save_pairs

    output_path(args.out)
    run = load(args.run_dir, args.checkpoint)
    run.require("reconstruct")  # before any input is read
    names, x = load_inputs(args.inputs, run.image_shape, True)
    shown = x[:MAX_GRID_IMAGES]
    recon = run.reconstruct(shown, label=args.label)
    save_pairs(shown.float() / 255, recon, args.out, nrow=min(10, len(shown)), scale=grid_scale(run.image_shape))
    what = (
        plural(len(names), "image")
        if len(names) <= MAX_GRID_IMAGES
        else f"the first {MAX_GRID_IMAGES} of {len(names):,} images"
    )
    print(f"wrote originals and reconstructions of {what} to {args.out}", file=sys.stderr)
