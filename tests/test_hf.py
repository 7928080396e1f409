"""Hugging Face datasets as input (disgen.data.hf): real ``datasets`` objects made from the bundled
digits, saved with save_to_disk, written as Parquet and put in a real datasets cache, then trained
on and read back. Every ``datasets`` cache (HF_HOME) and disgen's decoded cache (DISGEN_HOME) live
in tmp_path, and the library runs offline (no test reaches the network)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import SUBPROCESS_ENV

import disgen
from disgen.data import load_dataset
from disgen.errors import DisgenError

# Not importorskip: datasets must first be imported by the fixture below, after HF_HOME is set.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("datasets") is None, reason="the [hf] extra: pip install disgen[hf]"
)

N_TRAIN, N_TEST = 600, 200
DIGITS = [str(i) for i in range(10)]
# Enough steps for a CNN to learn 600 digits well above chance (10%) in a few seconds.
TRAIN_ARGS = {"epochs": 3, "batch_size": 20, "augment": "none"}


@pytest.fixture(scope="module")
def hf(tmp_path_factory, mnist_mini):
    """The ``datasets`` module, imported with HF_HOME in tmp_path and offline (datasets reads both
    when it is imported), and the digits it is tested on."""
    home = tmp_path_factory.mktemp("hf")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(home / "hf"))
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("DISGEN_HOME", str(home / "disgen"))
        assert "datasets" not in sys.modules, "datasets was imported before HF_HOME was set"
        datasets = importlib.import_module("datasets")
        assert str(datasets.config.HF_DATASETS_CACHE).startswith(str(home))
        yield datasets


def run_disgen(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """``python -m disgen ARGS`` with the fixture's HF_HOME, DISGEN_HOME and offline switches
    (``env`` overrides them)."""
    keep = ("HF_HOME", "HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "DISGEN_HOME")
    env = {**SUBPROCESS_ENV, **{k: os.environ[k] for k in keep}, **(env or {})}
    return subprocess.run([sys.executable, "-m", "disgen", *args], capture_output=True, text=True, env=env, **kwargs)


def digits(hf, split, n: int, label_feature=None):
    """The first ``n`` digits of a mnist-mini split as a Dataset: ``image`` (datasets.Image, grey
    PNG) and ``label`` (a ClassLabel of the ten digits, unless ``label_feature`` says otherwise)."""
    from PIL import Image

    features = hf.Features({"image": hf.Image(), "label": label_feature or hf.ClassLabel(names=DIGITS)})
    images = [Image.fromarray(split.images[i, 0].numpy()) for i in range(n)]
    return hf.Dataset.from_dict({"image": images, "label": split.labels[:n].tolist()}, features=features)


@pytest.fixture(scope="module")
def saved_dict(hf, mnist_mini, tmp_path_factory):
    """A DatasetDict (train, test) written with save_to_disk."""
    path = tmp_path_factory.mktemp("saved") / "digits"
    hf.DatasetDict(train=digits(hf, mnist_mini.train, N_TRAIN), test=digits(hf, mnist_mini.test, N_TEST)).save_to_disk(
        str(path)
    )
    return path


def test_train_on_a_saved_datasetdict(hf, saved_dict, tmp_path):
    """`disgen train cnn-classifier --dataset SAVED_FOLDER`: its train and test splits, class names
    from its ClassLabel, and a classifier that learns the digits; run.json names the dataset."""
    run = disgen.train(
        "cnn-classifier", dataset=str(saved_dict), run_dir=str(tmp_path / "run"), progress=False, **TRAIN_ARGS
    )
    assert run.final["test_accuracy"] > 0.5  # chance is 0.1
    info = json.loads((tmp_path / "run" / "run.json").read_text())["data"]
    assert info["classes"] == DIGITS and info["image_shape"] == [1, 28, 28]
    assert info["hf"]["splits"] == {"train": "train", "test": "test"}
    assert info["hf"]["image_column"] == "image" and info["hf"]["label_column"] == "label"
    assert set(info["hf"]["fingerprints"]) == {"train", "test"}
    data = run.dataset()  # the run's own dataset read back the same way: its test split is the saved one
    assert len(data.test) == N_TEST and len(data.train) + len(data.val) == N_TRAIN


@pytest.mark.slow  # 12 s on 2 cores (a training subprocess)
def test_hf_name_from_the_cache_offline(hf, mnist_mini, tmp_path):
    """`--dataset hf:digits` with HF_DATASETS_OFFLINE=1, read from a datasets cache populated the way
    the library populates it: ``datasets.load_dataset(FOLDER)`` of a local dataset repository (a
    folder ``digits/`` of ``train.parquet`` and ``test.parquet``, the layout of a Hub repository)
    builds it into ``$HF_HOME/datasets/digits/default/0.0.0/<hash>/``. Offline, load_dataset("digits")
    cannot reach the Hub and falls back to that cache entry (datasets' CachedDatasetModuleFactory),
    as it does for a Hub dataset loaded once with network access. The run happens in another folder
    (cwd) than the repository, so the name is resolved from the cache, not as a local path."""
    repo = tmp_path / "repos" / "digits"
    repo.mkdir(parents=True)
    digits(hf, mnist_mini.train, N_TRAIN).to_parquet(str(repo / "train.parquet"))
    digits(hf, mnist_mini.test, N_TEST).to_parquet(str(repo / "test.parquet"))
    hf.load_dataset(str(repo))  # populates the cache
    cached = list((hf.config.HF_DATASETS_CACHE / "digits" / "default").glob("*/*/digits-train.arrow"))
    assert len(cached) == 1
    work = tmp_path / "work"
    work.mkdir()
    args = [f"--{k.replace('_', '-')}={v}" for k, v in TRAIN_ARGS.items()]
    proc = run_disgen(
        "train", "cnn-classifier", "--dataset", "hf:digits", "--run-dir", str(work / "run"), "--no-progress", *args,
        cwd=work, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((work / "run" / "run.json").read_text())["data"]
    assert info["classes"] == DIGITS and info["hf"]["name"] == "digits" and info["hf"]["config"] == "default"
    assert info["hf"]["revision"] == cached[0].parent.name  # the cached build's hash
    final = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith('{"run_dir"')))
    assert final["test_accuracy"] > 0.5


def test_a_missing_name_offline_fails_fast_in_one_line(hf, tmp_path):
    """Offline with an empty cache, `--dataset hf:nonexistent/thing` is one line naming the dataset
    and the cache, no traceback, within seconds of what importing torch and datasets takes on this
    machine (timed beside it: a busy machine slows both), not after network retries."""
    env = {"HF_HOME": str(tmp_path / "empty")}
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import torch, datasets"], env={**SUBPROCESS_ENV, **env}, check=True)
    imports = time.monotonic() - start
    start = time.monotonic()
    proc = run_disgen("train", "cnn-classifier", "--dataset", "hf:nonexistent/thing", "--run-dir",
                      str(tmp_path / "run"), env=env, timeout=60)  # fmt: skip
    took = time.monotonic() - start
    assert proc.returncode != 0 and took < imports + 5, (proc.returncode, took, imports)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "'nonexistent/thing'" in lines[0] and str(tmp_path / "empty" / "datasets") in lines[0]
    assert "network" in lines[0]
    assert not (tmp_path / "run").exists()


def test_decoded_pixels_are_the_digits_and_a_second_load_decodes_nothing(hf, saved_dict, mnist_mini, monkeypatch):
    import disgen.data.hf.images as hf_loader

    data = load_dataset(str(saved_dict), image_shape=(1, 28, 28))
    assert np.array_equal(data.train.images.contiguous().numpy(), mnist_mini.train.images[:N_TRAIN].numpy())
    assert np.array_equal(data.test.images.contiguous().numpy(), mnist_mini.test.images[:N_TEST].numpy())
    assert data.train.labels.tolist() == mnist_mini.train.labels[:N_TRAIN].tolist()

    def refuse(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(hf_loader, "filler", refuse)
    monkeypatch.setattr(hf_loader, "own_shape", refuse)
    again = load_dataset(str(saved_dict), image_shape=(1, 28, 28))
    assert np.array_equal(again.train.images.contiguous().numpy(), data.train.images.contiguous().numpy())
    monkeypatch.undo()
    own = load_dataset(str(saved_dict))  # no size given: the images' own (grey 28x28)
    assert own.image_shape == (1, 28, 28)
    rgb = load_dataset(str(saved_dict), image_shape=(3, 32, 32))
    assert rgb.image_shape == (3, 32, 32) and rgb.train.images[0].float().std() > 0


def test_a_single_dataset_and_parquet_split_like_folders(hf, mnist_mini, tmp_path):
    """A saved Dataset and a .parquet file have no test split: every 10th image is it."""
    ds = digits(hf, mnist_mini.train, 100)
    ds.save_to_disk(str(tmp_path / "single"))
    ds.to_parquet(str(tmp_path / "digits.parquet"))
    for path in (tmp_path / "single", tmp_path / "digits.parquet"):
        data = load_dataset(str(path), image_shape=(1, 28, 28))
        assert (len(data.train), len(data.test)) == (90, 10)
        assert data.test.labels.tolist() == mnist_mini.train.labels[:100:10].tolist()
        assert data.extra["hf"]["splits"]["test"].startswith("every 10th")


def test_plain_label_columns_and_validation_splits(hf, mnist_mini, tmp_path):
    """A label column of strings gets its sorted values as class names; --label-column and
    --image-column choose among columns; a "validation" split is the run's validation split."""
    from PIL import Image

    images = [Image.fromarray(mnist_mini.train.images[i, 0].numpy()) for i in range(60)]
    names = hf.Dataset.from_dict(
        {"image": images, "copy": images, "name": [f"digit-{v}" for v in mnist_mini.train.labels[:60].tolist()]},
        features=hf.Features({"image": hf.Image(), "copy": hf.Image(), "name": hf.Value("string")}),
    )
    hf.DatasetDict(train=names, validation=names.select(range(10))).save_to_disk(str(tmp_path / "named"))
    with pytest.raises(DisgenError, match="several image columns \\(image, copy\\).*--image-column"):
        load_dataset(str(tmp_path / "named"))
    data = load_dataset(str(tmp_path / "named"), image_column="copy", label_column="name")
    present = sorted({f"digit-{v}" for v in mnist_mini.train.labels[:60].tolist()})
    assert data.classes == present and data.val is not None and len(data.val) == 10
    kept = [f"digit-{v}" for i, v in enumerate(mnist_mini.train.labels[:60].tolist()) if i % 10]  # no test split
    assert [data.classes[i] for i in data.train.labels] == kept
    # the same two flags reach the Trainer's loader
    run = disgen.train(
        "mlp-classifier",
        dataset=str(tmp_path / "named"),
        image_column="copy",
        label_column="name",
        epochs=1,
        run_dir=str(tmp_path / "run"),
        progress=False,
    )
    assert run.classes == present and run.config.image_column == "copy"


def test_column_errors_name_the_column_and_what_to_do(hf, mnist_mini, tmp_path):
    ints = hf.Dataset.from_dict({"x": [1, 2, 3], "y": [0, 1, 0]})
    ints.save_to_disk(str(tmp_path / "ints"))
    with pytest.raises(DisgenError, match="no image column .* x \\(Value\\), y \\(Value\\).*--image-column"):
        load_dataset(str(tmp_path / "ints"))
    with pytest.raises(DisgenError, match="no column 'pixels' \\(--image-column\\)"):
        load_dataset(str(tmp_path / "ints"), image_column="pixels")
    with pytest.raises(DisgenError, match="its column 'x' \\(--image-column\\) holds Value, not images"):
        load_dataset(str(tmp_path / "ints"), image_column="x")
    bad = digits(hf, mnist_mini.train, 20, hf.Value("int64")).cast_column("label", hf.ClassLabel(names=["a", "b"]))
    bad.save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(DisgenError, match="label [2-9] in column 'label', outside the ClassLabel's 2 classes"):
        load_dataset(str(tmp_path / "bad"))
    ragged = hf.Dataset.from_dict({"pixels": [np.zeros((4, 4), np.uint8), np.zeros((5, 5), np.uint8)], "y": [0, 1]})
    ragged.save_to_disk(str(tmp_path / "ragged"))
    with pytest.raises(DisgenError, match="arrays of its column 'pixels' differ in shape"):
        load_dataset(str(tmp_path / "ragged"))
    with pytest.raises(DisgenError, match="--image-column .* Hugging Face dataset's columns"):
        load_dataset("mnist-mini", image_column="image")


def test_uint8_arrays_are_images(hf, mnist_mini, tmp_path):
    """A column of 2-D uint8 arrays (lists of lists) is an image column, its pixels kept as they are."""
    arrays = [mnist_mini.train.images[i, 0].numpy() for i in range(30)]
    ds = hf.Dataset.from_dict({"pixels": arrays, "label": mnist_mini.train.labels[:30].tolist()})
    ds.save_to_disk(str(tmp_path / "arrays"))
    data = load_dataset(str(tmp_path / "arrays"))
    assert data.image_shape == (1, 28, 28) and data.classes == sorted({str(v) for v in ds["label"]})
    kept = np.concatenate([data.train.images.contiguous().numpy(), data.test.images.contiguous().numpy()])
    assert sorted(map(bytes, kept)) == sorted(bytes(a[None]) for a in arrays)


def test_without_the_library_it_says_how_to_install_it(hf, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    with pytest.raises(DisgenError, match=r"pip install disgen\[hf\]"):
        load_dataset("hf:ylecun/mnist")
