"""``--labels N``: the seeded class-balanced subset, stored in the run directory, shared by the
semi-supervised AAE and its classifier baseline."""

from __future__ import annotations

import json

import pytest
import torch

import disgen
from disgen.data import splits
from disgen.data.labels import LabelledLoader, labelled_indices, read_labels
from disgen.data.loader import TensorLoader
from disgen.errors import DisgenError
from disgen.models import resolve
from disgen.training.trainer import Trainer


def test_subset_is_class_balanced_seeded_and_sorted(tiny_data):
    labels = tiny_data.train.labels
    idx = labelled_indices(labels, 50, 10, seed=3)
    assert len(idx) == 50 and len(set(idx.tolist())) == 50
    assert torch.equal(idx, idx.sort().values)
    assert labels[idx].bincount(minlength=10).tolist() == [5] * 10
    assert torch.equal(idx, labelled_indices(labels, 50, 10, seed=3))
    assert not torch.equal(idx, labelled_indices(labels, 50, 10, seed=4))


@pytest.mark.parametrize(
    "n,match",
    [
        (15, "--labels 15: must be a positive multiple of the 10 classes"),
        (-10, "--labels -10: must be a positive multiple"),
        (10_000, r"--labels 10000 needs 1000 images of class \d, but the training split has \d+"),
    ],
)
def test_bad_counts_are_refused(tiny_data, n, match):
    with pytest.raises(DisgenError, match=match):
        labelled_indices(tiny_data.train.labels, n, 10, seed=0)


def test_negative_labels_refused_by_config():
    with pytest.raises(DisgenError, match="--labels must be >= 0"):
        resolve("mlp-classifier", {"labels": -1})


def test_classifier_trains_on_the_same_subset_as_the_aae(tmp_path, tiny_data):
    run = disgen.train(
        "mlp-classifier",
        dataset_obj=tiny_data,
        labels=30,
        seed=5,
        epochs=1,
        progress=False,
        run_dir=str(tmp_path / "mlp"),
    )
    trainer = Trainer(resolve("aae", {"labels": 30, "seed": 5}), tmp_path / "aae", tiny_data)
    idx = read_labels(run.dir)
    assert torch.equal(idx, trainer.label_idx)
    saved = json.loads((run.dir / "labels.json").read_text())
    assert (saved["dataset"], saved["seed"], saved["n"]) == ("mnist-mini", 5, 30)
    # The classifier's loader holds only the subset; the AAE's every image plus the subset.
    clf = Trainer(resolve("mlp-classifier", {"labels": 30, "seed": 5}), tmp_path / "x", tiny_data)
    assert len(clf.loader.images) == 30
    train_part = splits.with_validation(tiny_data, 0.1).train  # the subset is of the training part
    assert torch.equal(clf.train_y.cpu(), train_part.labels[idx])
    assert isinstance(trainer.loader, LabelledLoader) and len(trainer.loader.main.images) == len(train_part)
    assert torch.equal(trainer.loader.labelled.labels.cpu(), train_part.labels[idx])


def test_labels_refused_for_models_without_labels(tmp_path, tiny_data):
    with pytest.raises(DisgenError, match="--labels applies to classifiers and aae, not mlp-autoencoder"):
        Trainer(resolve("mlp-autoencoder", {"labels": 30}), tmp_path / "ae", tiny_data)


def test_read_labels_of_a_run_without_them(tmp_path):
    with pytest.raises(DisgenError, match="labels.json does not exist"):
        read_labels(tmp_path)


def test_labelled_loader_cycles_and_restarts_each_epoch():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    lx, ly = torch.arange(100.0, 104.0)[:, None], torch.arange(4)
    loader = LabelledLoader(TensorLoader(x, y, 2, generator=gen), TensorLoader(lx, ly, 3, generator=gen))
    batches = list(loader)
    assert len(batches) == len(loader) == 5
    assert [len(b[2]) for b in batches] == [3, 1, 3, 1, 3]  # 4 labelled images in batches of 3, cycling
    assert sorted(torch.cat([b[3] for b in batches[:2]]).tolist()) == [0, 1, 2, 3]
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))
    state = gen.get_state()
    again = list(loader)
    gen.set_state(state)
    assert all(torch.equal(a, b) for p, q in zip(again, list(loader)) for a, b in zip(p, q))
