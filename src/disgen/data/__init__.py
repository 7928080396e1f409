"""Datasets: a registry of named image datasets held as tensors.

Every dataset is returned as a :class:`TensorDataset` of uint8 images ``(N, C, H, W)`` and int64
labels, with a train and a test split, and a validation split where the dataset has its own (a
Kaggle-organised ``valid/`` folder, gaussian2d's generated points); otherwise the Trainer carves one
out of the training split (:mod:`disgen.data.splits`). Conversion to floats happens once, on the device, in the
range the model asks for (see :func:`to_float`): ``[0, 1]`` by default, ``[-1, 1]`` for GAN-style
models.

Adding a dataset is a one-file change: write a module in this package whose loader function is
decorated with :func:`register_dataset`, and list the module in ``disgen.data.dataset._MODULES``.
Hugging Face datasets (``hf:NAME``, ``save_to_disk`` folders, Parquet) are read by ``hf`` with the
optional ``datasets`` library. Also here: users' image files (``images``), the labelled subset of
``--labels N`` (``labels``), the validation split (``splits``), batching (``loader``), augmentation
and downloads.

May import: config, files, errors. Never models or anything above.
"""

from __future__ import annotations

from pathlib import Path

from disgen.data.dataset import (
    _REGISTRY,
    MAX_CLASSES,
    ImageSplit,
    Loader,
    TensorDataset,
    _import_all,
    check_decoded_size,
    list_datasets,
    machine_memory,
    register_dataset,
    to_float,
)
from disgen.errors import DisgenError

__all__ = [
    "FOLDER_FORMS",
    "MAX_CLASSES",
    "ImageSplit",
    "Loader",
    "TensorDataset",
    "check_decoded_size",
    "dataset_forms",
    "list_datasets",
    "load_dataset",
    "machine_memory",
    "register_dataset",
    "to_float",
]

# Every form ``--dataset`` takes besides a registered name: the errors, ``disgen datasets`` and
# ``--dataset``'s help say it.
FOLDER_FORMS = (
    "a folder of the four IDX files of an MNIST-like dataset (train-images-idx3-ubyte, "
    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, raw or .gz)",
    "a folder of images with one subfolder per class (images directly in it: one class)",
    "a folder of CSV files *train*.csv and *test*.csv (or .csv.gz), a row an image: the label, then its "
    "grey pixels (Kaggle's and PyPI's MNIST and Fashion-MNIST CSV copies)",
    "a Kaggle layout organised by `disgen kaggle-organize DATA_DIR --out DIR`: DIR (train/ and valid/ "
    "class folders) or DIR/train_valid",
    "a Hugging Face dataset (pip install disgen[hf]): hf:NAME[:CONFIG] (datasets.load_dataset, through "
    "its cache), a folder written by save_to_disk, or a .parquet file or a folder of them",
)


def load_dataset(
    name_or_path: str,
    data_dir: str | Path | None = None,
    image_shape: tuple[int, ...] | None = None,
    *,
    image_column: str | None = None,
    label_column: str | None = None,
) -> TensorDataset:
    """Load a registered dataset by name, a Hugging Face dataset (``hf:NAME[:CONFIG]``), or by
    path a directory holding IDX files or images, a ``save_to_disk`` folder or Parquet files.

    ``image_shape`` (C, H, W) is the size a folder of images or a Hugging Face dataset is resized
    to (default: a folder's 3x64x64, a Hugging Face dataset's own size). ``image_column`` and
    ``label_column`` name a Hugging Face dataset's columns (default: found from its features)."""
    from disgen.config import check_text

    _import_all()
    check_text("--dataset", name_or_path)
    path = Path(name_or_path).expanduser()
    hf_form = name_or_path.startswith("hf:") or (name_or_path not in _REGISTRY and path.exists() and is_hf(path))
    if hf_form:
        from disgen.data import hf

        columns = {"image_column": image_column, "label_column": label_column}
        if name_or_path.startswith("hf:"):
            return hf.load_hub(name_or_path, image_shape, **columns)
        return hf.load_path(path, image_shape, **columns)
    if image_column is not None or label_column is not None:
        raise DisgenError(
            f"--image-column and --label-column name a Hugging Face dataset's columns; --dataset {name_or_path} "
            "is not one (hf:NAME, a save_to_disk folder or Parquet files)"
        )
    if name_or_path in _REGISTRY:
        loader, _ = _REGISTRY[name_or_path]
        return loader(Path(data_dir) if data_dir else None)
    if path.is_dir():
        from disgen.data.image_folder import is_image_folder, load_image_folder
        from disgen.data.kaggle import load_organized, organized_root

        if organized_root(path):  # train/ + valid/ class folders (disgen kaggle-organize)
            return load_organized(path, image_shape if image_shape and len(image_shape) == 3 else (3, 256, 256))
        if (path / "labels.csv").is_file() and (path / "train").is_dir():
            raise DisgenError(
                f"{path} is a Kaggle competition download (labels.csv and train/): organise it "
                f"first with `disgen kaggle-organize {path} --out DIR`, then train on --dataset DIR"
            )
        if is_image_folder(path):
            return load_image_folder(path, image_shape if image_shape and len(image_shape) == 3 else None)
        from disgen.data.csv_folder import is_csv_folder, load_csv_folder
        from disgen.data.mnist import has_idx_files, load_idx_dir

        if has_idx_files(path):
            return load_idx_dir(path)
        if is_csv_folder(path):
            return load_csv_folder(path)
        raise DisgenError(f"the folder {path} holds no image files, no IDX files and no CSV files. {dataset_forms()}")
    if path.exists():
        raise DisgenError(f"--dataset {path} is a file, not a folder. {dataset_forms()}")
    import difflib

    close = difflib.get_close_matches(name_or_path, list(_REGISTRY), n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    raise DisgenError(
        f"unknown dataset {name_or_path!r}: no registered dataset has that name, and the path "
        f"{path.absolute()} does not exist.{hint} {dataset_forms()}"
    )


def is_hf(path: Path) -> bool:
    """A folder written by ``save_to_disk``, a ``.parquet`` file, or a folder of them and no images."""
    from disgen.data.hf import is_parquet, is_saved
    from disgen.data.image_folder import is_image_folder

    if path.is_dir() and (is_saved(path) or is_image_folder(path)):
        return is_saved(path)
    return is_parquet(path)


def dataset_forms(names: list[str] | None = None) -> str:
    """One sentence listing every form a dataset may take, with the registered names."""
    names = sorted(_REGISTRY) if names is None else names
    return (
        "A dataset is a registered name ("
        + ", ".join(names)
        + "; see `disgen datasets`), "
        + ", ".join(FOLDER_FORMS[:-1])
        + ", or "
        + FOLDER_FORMS[-1]
        + "."
    )
