"""Hugging Face datasets as input (``pip install disgen[hf]``), read with the ``datasets`` library:

    --dataset hf:NAME[:CONFIG]   datasets.load_dataset(NAME, CONFIG), through the library's cache
    --dataset SAVED_FOLDER       a folder written by Dataset/DatasetDict.save_to_disk (load_from_disk)
    --dataset FILE.parquet|DIR   Parquet files (load_dataset("parquet", ...); a folder's file names
                                 give the splits as the library infers them: train-*, test-*, ...)

Offline (``HF_DATASETS_OFFLINE=1``), ``hf:NAME`` is read from the datasets cache
(``$HF_HOME/datasets``) where an earlier ``load_dataset`` left it, and a name that is not there
fails at once with one line saying so.

The image column is the one ``datasets.Image`` feature (or a 2-D/3-D uint8 array: ``Array2D``,
``Array3D`` or nested lists), the label column the one ``datasets.ClassLabel``, else a column named
``label``; ``--image-column`` / ``--label-column`` name them. Class names are the ClassLabel's, or
a plain label column's sorted values; without a label column every image is of one class. The
dataset's own train / test / validation (``validation``, ``valid`` or ``val``) splits are used;
without a test split every 10th training image is the test split (as for image folders).

Images are decoded once, like an image folder's (:func:`disgen.data.image_folder.fit`: transparency
on white, resized to cover and centre-cropped) to the model's size, by default the images' own if
they all share it (else 3x64x64), into the memory-mapped cache :mod:`disgen.data.cache`, keyed by
the dataset's fingerprints (or its files' names, sizes and times), the size and the columns.

Decoding the images into the cache is :mod:`disgen.data.hf.images`.

May import: config, files, errors and this package's modules. ``datasets`` is imported inside the
functions, so ``import disgen`` does not load it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from disgen.data.dataset import ImageSplit, Rows, TensorDataset, take
from disgen.data.hf.images import decoded
from disgen.data.image_folder import TEST_EVERY
from disgen.errors import DisgenError

PREFIX = "hf:"
VAL_SPLITS = ("validation", "valid", "val")
INSTALL = "pip install disgen[hf]"


def require():
    """The ``datasets`` module, or an error saying how to install it."""
    try:
        import datasets
    except ImportError:
        raise DisgenError(f"Hugging Face datasets need the datasets library: {INSTALL}") from None
    return datasets


@contextmanager
def quiet(datasets):
    """The library's warnings (e.g. "Using the latest cached version ...") off while it loads."""
    level = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets.logging.set_verbosity(level)


def is_saved(path: Path) -> bool:
    """A folder written by ``save_to_disk``."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def is_parquet(path: Path) -> bool:
    return path.suffix == ".parquet" if path.is_file() else any(path.rglob("*.parquet"))


def load_hub(spec: str, image_shape=None, image_column=None, label_column=None) -> TensorDataset:
    """``hf:NAME[:CONFIG]`` through ``datasets.load_dataset`` and its cache."""
    name, _, config = spec[len(PREFIX) :].partition(":")
    if not name:
        raise DisgenError(f"--dataset {spec}: name the dataset after hf:, e.g. hf:ylecun/mnist or hf:NAME:CONFIG")
    datasets = require()
    try:
        with quiet(datasets):
            obj = datasets.load_dataset(name, config or None)
    except (ConnectionError, FileNotFoundError, ValueError) as err:
        raise not_found(datasets, name, config, err) from None
    except Exception as err:  # DatasetNotFoundError, gated repositories, the Hub's HTTP errors
        why = " ".join(str(err).split())
        raise DisgenError(f"Hugging Face dataset {name!r} could not be loaded: {type(err).__name__}: {why}") from None
    first = next(iter(obj.values())) if isinstance(obj, dict) else obj
    info = {"name": name, "config": config or first.info.config_name, "version": str(first.info.version)}
    if first.cache_files:  # the build's folder is named by its hash: a Hub dataset's commit
        info["revision"] = Path(first.cache_files[0]["filename"]).parent.name
    return from_datasets(obj, name, spec, info, None, image_shape, image_column, label_column)


def not_found(datasets, name: str, config: str, err: Exception) -> DisgenError:
    cache = datasets.config.HF_DATASETS_CACHE
    what = f"Hugging Face dataset {name!r}" + (f" (config {config!r})" if config else "")
    why = " ".join(str(err).split())
    if datasets.config.HF_HUB_OFFLINE:
        where = "offline mode is on (HF_DATASETS_OFFLINE or HF_HUB_OFFLINE) and it is not in the datasets cache"
    elif isinstance(err, ConnectionError):
        where = "the Hugging Face Hub could not be reached and it is not in the datasets cache"
    else:
        where = "it is not on the Hugging Face Hub nor in the datasets cache"
    return DisgenError(
        f"{what}: {where} at {cache} ({why}); load it once with network access (without HF_DATASETS_OFFLINE) "
        "to download it, check the name (NAME or OWNER/NAME, as on huggingface.co/datasets), point HF_HOME at "
        "the cache that holds it, or pass a folder it was saved to (save_to_disk) as --dataset"
    )


def load_path(path: Path, image_shape=None, image_column=None, label_column=None) -> TensorDataset:
    """A ``save_to_disk`` folder or Parquet files, keyed in the decoded cache by their files."""
    datasets = require()
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    try:
        with quiet(datasets):
            if is_saved(path):
                obj = datasets.load_from_disk(str(path))
            elif path.is_file():
                obj = datasets.load_dataset("parquet", data_files=str(path))
            else:
                obj = datasets.load_dataset("parquet", data_dir=str(path))
    except Exception as err:  # the library's many types for damaged or foreign files
        if holds_no_rows(path):
            raise empty_error(f"dataset {path}") from None
        why = " ".join(str(err).split())
        raise DisgenError(
            f"--dataset {path}: the datasets library cannot read it ({type(err).__name__}: {why}); pass a "
            "folder written by save_to_disk, a .parquet file or a folder of them"
        ) from None
    stamps = [
        f"{f.relative_to(path) if f != path else f.name}|{f.stat().st_size}|{f.stat().st_mtime_ns}" for f in files
    ]
    return from_datasets(
        obj, path.name, str(path), {"name": str(path)}, stamps, image_shape, image_column, label_column
    )


def holds_no_rows(path: Path) -> bool:
    """Whether a save_to_disk folder or Parquet files hold no rows at all (the library then fails
    with an IndexError or "corresponds to no data")."""
    import json

    try:
        if is_saved(path):
            states = list(path.rglob("state.json"))
            return bool(states) and all(not json.loads(p.read_text()).get("_data_files") for p in states)
        import pyarrow.parquet as pq

        files = [path] if path.is_file() else list(path.rglob("*.parquet"))
        return bool(files) and sum(pq.read_metadata(f).num_rows for f in files) == 0
    except Exception:  # unreadable: the library's own error says so
        return False


def empty_error(what: str) -> DisgenError:
    return DisgenError(f"{what} holds no rows in its train split (0 images): a dataset needs images to train on")


def pick_splits(obj, what: str) -> tuple[dict, dict]:
    """{"train", "test", "val": Dataset or None} and which of the dataset's splits each one is."""
    if not isinstance(obj, dict):  # a Dataset
        return {"train": obj, "test": None, "val": None}, {"train": "(all)"}
    if "train" not in obj and len(obj) == 1:
        (only,) = obj
        return {"train": obj[only], "test": None, "val": None}, {"train": only}
    if "train" not in obj:
        raise DisgenError(
            f"{what} has the splits {', '.join(obj)} but no 'train' split: save the one to train on as 'train'"
        )
    val = next((s for s in VAL_SPLITS if s in obj), None)
    chosen = {"train": "train", "test": "test" if "test" in obj else None, "val": val}
    return {k: obj[v] if v else None for k, v in chosen.items()}, {k: v for k, v in chosen.items() if v}


def from_datasets(obj, name, source, info, stamps, image_shape, image_column, label_column) -> TensorDataset:
    """A Dataset or DatasetDict as a TensorDataset (``stamps``: the files it was read from, if any)."""
    datasets = require()
    what = f"dataset {source}"
    parts, used = pick_splits(obj, what)
    present = {k: v for k, v in parts.items() if v is not None}
    features = present["train"].features
    image, kind, label = find_columns(datasets, features, image_column, label_column, what)
    declared = array_depth(features[image])[1] if kind == "array" else None
    if not len(present["train"]):
        raise empty_error(what)
    for split, ds in present.items():
        missing = [c for c in (image, label) if c and c not in ds.column_names]
        if missing:
            raise DisgenError(
                f"{what}: its {used[split]} split has no column {missing[0]!r}, its train split has: give "
                "every split the same columns"
            )
    if label is None:  # no labels: one class, as for a folder of images
        classes, labels = [name], {s: torch.zeros(len(ds), dtype=torch.int64) for s, ds in present.items()}
    else:
        classes, labels = read_labels(datasets, present, features, label, what)
    for split in [s for s in present if labels[s] is None]:  # a ClassLabel's -1 throughout: no labels
        print(f"warning: {what}: its {used[split]} split has no labels; it is left out", file=sys.stderr)
        del present[split], used[split]
    key = hashlib.sha1(
        repr((stamps or [identity(ds, image, label) for ds in present.values()], image, kind, label)).encode()
    )
    entry = decoded(present, (image, declared), kind, image_shape, f"hf-{key.hexdigest()[:12]}", what)
    splits, start = {}, 0
    for split, ds in present.items():
        rows = entry.ok[(entry.ok >= start) & (entry.ok < start + len(ds))]
        splits[split] = ImageSplit(Rows(entry.images, rows), labels[split][rows - start])
        start += len(ds)
    skipped = start - len(entry.ok)
    if skipped:
        print(f"warning: {what}: skipped {skipped} unreadable image(s) of {start}", file=sys.stderr)
    if not len(splits["train"]):
        raise DisgenError(f"{what}: none of the images of its column {image!r} in the train split could be read")
    if "test" not in splits:  # the image folders' rule: every 10th image is the test split
        train, test = splits["train"], torch.zeros(len(splits["train"]), dtype=torch.bool)
        test[::TEST_EVERY] = True
        splits["train"] = ImageSplit(take(train.images, ~test), train.labels[~test])
        splits["test"] = ImageSplit(take(train.images, test), train.labels[test])
        used["test"] = f"every {TEST_EVERY}th image of {used['train']}"
    fingerprints = {used[s]: identity(ds, image, label) for s, ds in present.items()}
    info = {**info, "splits": used, "fingerprints": fingerprints, "image_column": image, "label_column": label}
    train, test, val = splits["train"], splits["test"], splits.get("val")
    return TensorDataset(name, train, test, classes, source=source, extra={"hf": info, "skipped": skipped}, val=val)


def identity(ds, image: str, label: str | None) -> str:
    """What a split's cache entry is keyed by, through the library's public API: the names, sizes and
    modification times of the Arrow files behind it (``Dataset.cache_files``), or, for a dataset
    held in memory, a SHA-1 of its image and label columns' Arrow buffers."""
    digest = hashlib.sha1(f"{len(ds)}|{ds.column_names}".encode())
    if ds.cache_files:
        for f in ds.cache_files:
            st = os.stat(f["filename"])
            digest.update(f"{f['filename']}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        for column in [c for c in (image, label) if c]:
            for chunk in ds.data.column(column).chunks:
                for buf in chunk.buffers():
                    if buf is not None:
                        digest.update(memoryview(buf))
    return digest.hexdigest()[:16]


def array_depth(feature) -> tuple[int, str | None]:
    """How many dimensions an array feature has and its values' dtype: Array2D/Array3D, or nested
    lists (``Sequence``/``List`` or ``[feature]``) of one Value."""
    if hasattr(feature, "shape") and hasattr(feature, "dtype"):  # Array2D .. Array5D
        return len(feature.shape), feature.dtype
    depth = 0
    while isinstance(feature, list) or hasattr(feature, "feature"):
        feature = feature[0] if isinstance(feature, list) else feature.feature
        depth += 1
    return depth, getattr(feature, "dtype", None)


def find_columns(datasets, features, image_column, label_column, what: str) -> tuple[str, str, str | None]:
    """The image column, its kind ("image" or "array") and the label column (None: no labels)."""
    listing = ", ".join(f"{k} ({type(v).__name__ if not isinstance(v, list) else 'list'})" for k, v in features.items())
    for flag, col in (("--image-column", image_column), ("--label-column", label_column)):
        if col is not None and col not in features:
            raise DisgenError(f"{what} has no column {col!r} ({flag}); its columns: {listing}")

    def kind(col):
        if isinstance(features[col], datasets.Image):
            return "image"
        depth, dtype = array_depth(features[col])
        return "array" if depth in (2, 3) and dtype in ("uint8", "int16", "int32", "int64") else None

    if image_column is None:
        found = [c for c in features if kind(c) == "image"] or [c for c in features if kind(c) == "array"]
        if not found:
            raise DisgenError(
                f"{what} has no image column (a datasets.Image feature, or a 2-D/3-D uint8 array) among its "
                f"columns: {listing}; name one with --image-column"
            )
        if len(found) > 1:
            raise DisgenError(f"{what} has several image columns ({', '.join(found)}): choose one with --image-column")
        image_column = found[0]
    elif kind(image_column) is None:
        raise DisgenError(
            f"{what}: its column {image_column!r} (--image-column) holds {type(features[image_column]).__name__}, "
            f"not images (a datasets.Image feature, or a 2-D/3-D uint8 array); its columns: {listing}"
        )
    if label_column is None:
        found = [c for c in features if isinstance(features[c], datasets.ClassLabel)]
        if len(found) > 1:
            raise DisgenError(
                f"{what} has several ClassLabel columns ({', '.join(found)}): choose one with --label-column"
            )
        label_column = found[0] if found else "label" if "label" in features else None
    if label_column == image_column:
        raise DisgenError(f"{what}: --label-column {label_column!r} is the image column; choose another")
    return image_column, kind(image_column), label_column


def read_labels(datasets, present: dict, features, column, what: str) -> tuple[list[str], dict]:
    """The class names and each split's int64 labels (None for a split whose labels are all
    missing, a ClassLabel's -1: a test split without labels)."""
    values = {}
    for split, ds in present.items():
        batches = ds.select_columns([column]).with_format("numpy").iter(batch_size=65536)
        values[split] = np.concatenate([np.asarray(b[column]) for b in batches] or [np.zeros(0, np.int64)])
    feature = features[column]
    if isinstance(feature, datasets.ClassLabel):
        classes = list(feature.names)
        labels = {s: torch.from_numpy(v.astype(np.int64)) for s, v in values.items()}
        for split, y in labels.items():
            if split != "train" and len(y) and bool((y == -1).all()):
                labels[split] = None
            elif len(y) and not (0 <= int(y.min()) and int(y.max()) < len(classes)):
                bad = int(y[(y < 0) | (y >= len(classes))][0])
                raise DisgenError(
                    f"{what}: its {split} split has the label {bad} in column {column!r}, outside the "
                    f"ClassLabel's {len(classes)} classes (0..{len(classes) - 1}; -1 is an image without a "
                    "label): fix the labels, or name another column with --label-column"
                )
        return classes, labels
    kinds = {v.dtype.kind for v in values.values() if len(v)}
    if not kinds <= {"i", "u", "b"} and not kinds <= {"U", "O"}:
        raise DisgenError(
            f"{what}: its label column {column!r} holds {', '.join(str(v.dtype) for v in values.values())}, "
            "not class ids (integers) or names (strings): name another with --label-column"
        )
    try:
        unique = sorted(set().union(*(v.tolist() for v in values.values())))
    except TypeError:  # None among strings, or mixed types
        raise DisgenError(
            f"{what}: its label column {column!r} mixes types or has missing labels: give every image a label"
        ) from None
    index = {v: i for i, v in enumerate(unique)}
    labels = {s: torch.tensor([index[x] for x in v.tolist()], dtype=torch.int64) for s, v in values.items()}
    return [str(v) for v in unique], labels
