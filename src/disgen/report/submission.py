"""Kaggle submissions: ``disgen predict RUN_DIR DIR --format kaggle --out submission.csv``.

One row per test image, ``id`` (the file name without suffix) then one probability column per
class, in ``sample_submission.csv``'s column and row order when it is given (else the run's class
order and sorted ids). The rows are validated before anything is written: every id exactly once,
the columns exactly the classes, probabilities in [0, 1] summing to 1.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import torch

from disgen.data.kaggle import read_sample
from disgen.errors import DisgenError, plural

CHUNK = 512  # images decoded and classified at a time: bounded memory for 10,000 test images
SUM_TOLERANCE = 1e-4  # a row's sum after printing 7 significant digits per probability


def test_files(inputs: list[str | Path]) -> dict[str, Path]:
    """id -> image file for the images in ``inputs`` (files or folders)."""
    from disgen.data.images import expand

    files: dict[str, Path] = {}
    for path in expand(inputs):
        if path.stem in files:
            raise DisgenError(f"two test images have the id {path.stem}: {files[path.stem]} and {path}")
        files[path.stem] = path
    return files


def predict_files(run, paths: list[Path], log=None) -> torch.Tensor:
    """Probabilities (N, classes); images that cannot be read get the uniform distribution (a
    submission needs every id) and are named in one warning."""
    from disgen.data.image_folder import decode_all

    k = len(run.classes)
    probs = torch.full((len(paths), k), 1.0 / k)
    unreadable: list[str] = []
    for start in range(0, len(paths), CHUNK):
        chunk = paths[start : start + CHUNK]
        images, ok, _ = decode_all(chunk, tuple(run.image_shape))
        if ok:
            probs[[start + i for i in ok]] = run.predict(images).float().cpu()
        unreadable += [str(chunk[i]) for i in sorted(set(range(len(chunk))) - set(ok))]
    if unreadable:
        (log or (lambda m: print(m, file=sys.stderr)))(
            f"warning: {len(unreadable)} test image(s) could not be read and get uniform probabilities: "
            + ", ".join(unreadable[:5])
        )
    return probs


def validate(header: list[str], rows: list[list[str]], classes: list[str], ids: list[str]) -> None:
    """Refuse a submission that Kaggle would reject or score wrongly, saying what is wrong."""
    if header[:1] != ["id"] or sorted(header[1:]) != sorted(classes) or len(set(header)) != len(header):
        extra, missing = sorted(set(header[1:]) - set(classes)), sorted(set(classes) - set(header[1:]))
        raise DisgenError(
            f"submission columns must be id and each class once: extra {extra[:5]}, missing {missing[:5]}"
        )
    got = [r[0] for r in rows]
    if len(got) != len(set(got)) or set(got) != set(ids):
        dup = sorted({i for i in got if got.count(i) > 1}) if len(got) != len(set(got)) else []
        raise DisgenError(
            f"submission ids must be the test ids once each: missing "
            f"{sorted(set(ids) - set(got))[:5]}, unexpected {sorted(set(got) - set(ids))[:5]}, "
            f"repeated {dup[:5]}"
        )
    for r in rows:
        values = [float(v) for v in r[1:]]
        if len(values) != len(classes) or min(values) < 0 or max(values) > 1 or abs(sum(values) - 1) > SUM_TOLERANCE:
            raise DisgenError(
                f"submission row {r[0]}: {len(values)} probabilities summing to "
                f"{sum(values):.6f}; expected {len(classes)} in [0, 1] summing to 1"
            )


def build_rows(
    probs: torch.Tensor, ids: list[str], classes: list[str], columns: list[str], order: list[str]
) -> list[list[str]]:
    col = [classes.index(c) for c in columns]
    index = {i: n for n, i in enumerate(ids)}
    return [[i] + [f"{v:.7g}" for v in probs[index[i], col].tolist()] for i in order]


def write_submission(run, inputs: list[str], out: str | None, sample: str | None = None) -> Path:
    """Predict every test image in ``inputs`` and write the validated submission to ``out``."""
    from disgen.files import atomic_write

    if not out:
        raise DisgenError("--format kaggle needs --out FILE.csv")
    files = test_files(inputs)
    ids = sorted(files)
    columns, order = list(run.classes), ids
    if sample:
        columns, order = read_sample(sample)
        if set(columns) != set(run.classes):
            raise DisgenError(
                f"{sample} has classes {sorted(set(columns) - set(run.classes))[:5]} the run "
                f"does not know and lacks {sorted(set(run.classes) - set(columns))[:5]}: "
                "was the run trained on this competition's data?"
            )
        if set(order) != set(ids):
            raise DisgenError(
                f"{sample} lists {len(order)} ids, the test images {len(ids)}; missing images "
                f"for {sorted(set(order) - set(ids))[:5]}, images not in it "
                f"{sorted(set(ids) - set(order))[:5]}"
            )
    probs = predict_files(run, [files[i] for i in ids])
    rows = build_rows(probs, ids, list(run.classes), columns, order)
    validate(["id"] + columns, rows, list(run.classes), ids)
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([["id"] + columns] + rows)
    atomic_write(Path(out), lambda f: f.write(text.getvalue().encode()))
    print(
        f"wrote a submission of {plural(len(rows), 'test image')} x "
        f"{plural(len(columns), 'class', 'classes')} to {out}",
        file=sys.stderr,
    )
    return Path(out)


def validate_file(path: str | Path, classes: list[str], ids: list[str]) -> int:
    """Check a written submission file; returns its number of rows."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DisgenError(f"submission {path} is empty")
    validate(rows[0], rows[1:], classes, ids)
    return len(rows) - 1
