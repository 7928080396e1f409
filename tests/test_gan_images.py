"""Image GANs end to end: an image folder of mixed sizes, RGBA PNGs, greyscale and a corrupt file
trains dcgan64 and samples a 64x64 grid; dcgan28 writes per-epoch grids, best.pt and eval.json."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import subset
from PIL import Image

import disgen
from disgen import runs
from disgen.cli import main
from disgen.data import image_folder, load_dataset
from disgen.errors import DisgenError


@pytest.fixture
def folder(tmp_path) -> Path:
    """12 readable images in two class folders (RGB JPEGs of several sizes, RGBA PNGs with a fully
    transparent border, greyscale PNGs) and one corrupt file."""
    root = tmp_path / "sprites"
    rng = np.random.default_rng(0)
    for i in range(4):
        (root / "a").mkdir(parents=True, exist_ok=True)
        w, h = [(100, 80), (40, 64), (64, 64), (300, 200)][i]
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "a" / f"rgb{i}.jpg")
    for i in range(4):
        (root / "b").mkdir(exist_ok=True)
        rgba = np.zeros((50, 50, 4), np.uint8)  # transparent black everywhere...
        rgba[20:30, 20:30] = (255, 0, 0, 255)  # ...but an opaque red centre
        Image.fromarray(rgba, "RGBA").save(root / "b" / f"sprite{i}.png")
    for i in range(4):
        Image.fromarray(np.full((30, 90), 60 + i, np.uint8), "L").save(root / "b" / f"grey{i}.png")
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


def test_image_folder_resizes_composites_and_skips(folder, home, capsys):
    data = load_dataset(str(folder), image_shape=(3, 64, 64))
    assert data.classes == ["a", "b"]
    assert data.image_shape == (3, 64, 64) and data.train.images.dtype == torch.uint8
    assert len(data.train) + len(data.test) == 12 and len(data.test) == 2  # every 10th is test
    err = capsys.readouterr().err
    assert "skipped 1 unreadable image file(s) of 13" in err and "broken.png" in err
    files = image_folder.list_images(folder)
    ok = [f for f in files if f.name != "broken.png"]
    x = image_folder.decode(folder / "b" / "sprite0.png", (3, 64, 64))
    assert tuple(x[:, 0, 0]) == (255, 255, 255)  # transparency composited on white, not black
    assert tuple(x[:, 32, 32]) == (255, 0, 0)
    grey = image_folder.decode(folder / "b" / "grey2.png", (3, 64, 64))
    assert (grey == 62).all()  # grey to RGB, resized to cover and centre-cropped
    assert image_folder.decode(folder / "b" / "broken.png", (3, 64, 64)) is None
    assert len(ok) == 12


def test_image_folder_is_decoded_once_and_cached(folder, home, monkeypatch):
    first = load_dataset(str(folder), image_shape=(1, 28, 28))
    assert first.image_shape == (1, 28, 28)
    monkeypatch.setattr(image_folder, "decode_all", lambda *a: pytest.fail("decoded again"))
    second = load_dataset(str(folder), image_shape=(1, 28, 28))
    assert torch.equal(first.train.images, second.train.images)
    (folder / "a" / "rgb0.jpg").unlink()  # a changed folder is decoded afresh
    monkeypatch.undo()
    monkeypatch.setenv("DISGEN_HOME", str(home))
    third = load_dataset(str(folder), image_shape=(1, 28, 28))
    assert len(third.train) + len(third.test) == 11


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "note.png").write_bytes(b"nope")
    with pytest.raises(DisgenError, match="none of the 1 image files"):
        image_folder.load_image_folder(tmp_path / "empty", cache=False)


def test_dcgan64_trains_on_a_folder_and_samples(folder, home, tmp_path, capsys):
    """Sprites (RGBA), greyscale images of other sizes and a corrupt file, one class (so the
    reference is a fixed random feature extractor: nothing to train)."""
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "dcgan64",
                "--dataset",
                str(folder / "b"),
                "--epochs",
                "1",
                "--width",
                "4",
                "--batch-size",
                "4",
                "--run-dir",
                str(run_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "skipped 1 unreadable image file(s) of 9" in err
    # One validation image: a Fréchet distance of it chose best.pt (epoch 1 of an untrained G won on
    # a 300-image folder). Now the run keeps its last weights and says why.
    assert (
        "validation split of 1 image: too few to choose a checkpoint by frechet distance (it takes 256, "
        "docs/gans.md); best.pt is not written, and the last weights (last.pt) are tested, sampled and exported"
    ) in err
    assert not (run_dir / "checkpoints" / "best.pt").exists() and runs.read_final(run_dir)["checkpoint"] == "last"
    assert (run_dir / "samples" / "epoch_001.png").is_file()
    assert Image.open(run_dir / "samples" / "epoch_001.png").size == (8 * 66 + 2, 8 * 66 + 2)
    grid = tmp_path / "grid.png"
    assert main(["sample", str(run_dir), "--n", "16", "--out", str(grid)]) == 0
    assert Image.open(grid).size == (4 * 66 + 2, 4 * 66 + 2)  # 64x64 tiles, 2-pixel padding
    assert main(["sample", str(run_dir), "--n", "3", "--seed", "5", "--out-dir", str(tmp_path / "each")]) == 0
    files = sorted((tmp_path / "each").glob("*.png"))
    assert len(files) == 3 and Image.open(files[0]).size == (64, 64)
    capsys.readouterr()
    assert main(["sample", str(run_dir), "--n", "20", "--interpolate", "--out", str(tmp_path / "walk.png")]) == 0
    assert Image.open(tmp_path / "walk.png").size == (10 * 66 + 2, 2 * 66 + 2)
    assert "whole rows" not in capsys.readouterr().err  # 20 is two whole rows: nothing to explain
    assert main(["sample", str(run_dir), "--n", "16", "--interpolate", "--out", str(tmp_path / "walk.png")]) == 0
    assert Image.open(tmp_path / "walk.png").size == (10 * 66 + 2, 2 * 66 + 2)
    assert "--interpolate draws whole rows of 10 steps: 2 rows, 20 images for --n 16" in capsys.readouterr().err
    run = disgen.load(run_dir)
    assert torch.equal(run.sample(4, seed=1), run.sample(4, seed=1))
    assert not torch.equal(run.sample(4, seed=1), run.sample(4, seed=2))


def test_sample_refuses_a_classifier_run(classifier_run, capsys):
    """The message lists the generators the registry holds (a model added there is named too)."""
    from disgen.models import get_model, list_models
    from disgen.objectives import get_objective

    assert main(["sample", str(classifier_run.dir)]) == 2
    err = capsys.readouterr().err
    generators = [m for m in list_models() if get_objective(get_model(m).objective).sample is not None]
    assert {"aae", "dcgan28", "dcgan64", "gan2d", "vae"} <= set(generators)
    assert f"needs a generator: a run of {', '.join(generators[:-1])} or {generators[-1]}" in err


def test_dcgan28_training_and_eval(tiny_data, classifier_run, home, tmp_path, capsys):
    # 300 digits, 270 of them held out for validation: enough for a Fréchet distance to choose
    # best.pt (MIN_SELECT_IMAGES), and the automatic reference trains on the other 30 in seconds.
    data = subset(tiny_data, 300, 100)
    run = disgen.train(
        "dcgan28",
        dataset_obj=data,
        val_split=0.9,
        epochs=2,
        batch_size=50,
        progress=False,
        model_args={"g_width": 8, "d_width": 8},
        run_dir=str(tmp_path / "run"),
    )
    assert (
        "training the reference classifier for Fréchet distance and class coverage (cnn-classifier"
        in capsys.readouterr().err
    )
    assert len(list(home.glob("reference/*/checkpoints/last.pt"))) == 1  # cached for next time
    keys = {"frechet_distance", "kid", "precision", "recall", "class_kl", "min_class_share", "classes_covered"}
    assert {f"val_{k}" for k in keys} <= set(run.history[-1])
    assert {f"test_{k}" for k in keys} <= set(run.final)  # after the last epoch, with best.pt
    fds = [h["val_frechet_distance"] for h in run.history]
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert best["best"] == pytest.approx(min(fds))  # best.pt is kept by validation Fréchet distance
    assert run.final["checkpoint_epoch"] == best["epoch"]
    for e in (1, 2):
        assert (tmp_path / "run" / "samples" / f"epoch_{e:03d}.png").is_file()
    assert main(["eval", str(tmp_path / "run"), "--reference", str(classifier_run.dir), "--n-samples", "400"]) == 0
    result = runs.read_evals(tmp_path / "run")[-1]
    for key in ("frechet_distance", "kid", "class_kl", "min_class_share", "classes_covered", "precision", "recall"):
        assert isinstance(result[key], float), key
    assert 0 <= result["min_class_share"] <= 0.1 and 0 <= result["precision"] <= 1


def test_training_the_reference_leaves_the_callers_random_numbers(tmp_path, monkeypatch, mnist_mini):
    """A run that trains the reference classifier and one that finds it cached (a resumed run)
    must draw the same numbers afterwards: training it neither reads nor moves torch's RNG."""
    from disgen.evaluation import reference
    from disgen.training.trainer import train_reference

    monkeypatch.setenv("DISGEN_HOME", str(tmp_path / "home"))
    data = subset(mnist_mini, 200, 50)
    assert reference.missing(data) is not None
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    train_reference(data)
    assert reference.missing(data) is None  # trained and cached
    assert torch.equal(torch.rand(5), expected)


def test_the_docs_name_the_folders_the_caches_are_in(folder, home):
    """docs/gans.md and docs/transfer.md gave `$DISGEN_HOME/image_folder/` for the decoded images,
    which live in `$DISGEN_HOME/decoded/`: every `$DISGEN_HOME/NAME` the docs give is one disgen
    writes (the decoded images' made here, the reference classifiers' and pretrained weights' by
    their own functions)."""
    from disgen.evaluation.reference import cached_dir
    from disgen.models.weights import weights_dir

    load_dataset(str(folder), image_shape=(3, 64, 64))
    written = {p.name for p in home.iterdir()}
    written |= {cached_dir(load_dataset("mnist-mini")).parent.name, weights_dir().name}
    root = Path(__file__).resolve().parents[1]
    named = {
        m
        for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]
        for m in re.findall(r"\$DISGEN_HOME/([\w-]+)", doc.read_text())
    }
    assert "decoded" in written and named and named <= written, (named, written)
