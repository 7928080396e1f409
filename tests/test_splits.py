"""The validation split and measurement discipline (disgen.data.splits, the Trainer): every choice
reads the validation split, and the test split is evaluated once, after the last epoch."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch
from conftest import subset

import disgen
from disgen import runs
from disgen.cli import main
from disgen.data import ImageSplit, TensorDataset, load_dataset, splits
from disgen.data.labels import labelled_indices
from disgen.errors import DisgenError
from disgen.models import get_model, list_models, resolve
from disgen.training.trainer import Trainer, train_reference


@pytest.fixture(autouse=True, scope="module")
def private_cache(tmp_path_factory):
    """A disgen cache of this module's own: the GAN runs' reference classifiers are trained into it."""
    before = os.environ.get("DISGEN_HOME")
    os.environ["DISGEN_HOME"] = str(tmp_path_factory.mktemp("home"))
    yield
    if before is None:
        del os.environ["DISGEN_HOME"]
    else:
        os.environ["DISGEN_HOME"] = before


def random_images(shape: tuple[int, int, int], n_train: int, n_test: int, classes: int = 2) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    split = lambda n: ImageSplit(
        torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8),  # noqa: E731
        torch.arange(n) % classes,
    )
    return TensorDataset(f"random{shape[-1]}", split(n_train), split(n_test), [f"c{i}" for i in range(classes)])


def tiny_run(model: str, tiny_data) -> tuple[TensorDataset, dict]:
    """Data and options for a short run of ``model``: a few steps of each epoch."""
    if model == "gan2d":
        return load_dataset("gaussian2d"), {"batch_size": 250}
    if model == "dcgan64":
        return random_images((3, 64, 64), 40, 10), {"batch_size": 20, "model_args": {"width": 8}}
    if model == "dcgan28":
        return subset(tiny_data, 200, 50), {"batch_size": 50, "model_args": {"g_width": 16, "d_width": 16}}
    if model == "resnet-transfer":
        return random_images((3, 32, 32), 40, 10), {
            "batch_size": 16,
            "model_args": {"arch": "resnet18", "image_size": 32, "pretrained": False},
        }
    return subset(tiny_data, 200, 50), {"batch_size": 50}


@pytest.mark.parametrize("every_epoch", [False, True], ids=["once", "test-every-epoch"])
@pytest.mark.parametrize(
    "model",
    [pytest.param(m, marks=pytest.mark.slow) if m in ("aae", "dcgan28", "dcgan64") else m for m in list_models()],
)
def test_the_test_split_is_evaluated_once_after_the_last_epoch(model, every_epoch, tmp_path, tiny_data):
    data, options = tiny_run(model, tiny_data)
    cfg = resolve(model, {"epochs": 2, "progress": False, "test_every_epoch": every_epoch, **options})
    trainer = Trainer(cfg, tmp_path / "run", data, log=lambda msg: None)
    if trainer.objective.eval_context:  # a GAN's reference classifier, as disgen.train trains it before fit
        train_reference(trainer.data)
    calls: list[tuple[str, int]] = []  # (split, epoch) of every evaluation the Trainer made
    evaluate = trainer.objective.evaluate

    def spy(nets, x, y, **kw):
        split = "test" if x is trainer.test_x else "val" if x is trainer.val_x else "other"
        calls.append((split, trainer.epoch))
        return evaluate(nets, x, y, **kw)

    trainer.objective = dataclasses.replace(trainer.objective, evaluate=spy)
    history = trainer.fit()
    assert trainer.val_x is not None and trainer.test_x is not None
    assert [c for c in calls if c[0] == "val"] == [("val", 1), ("val", 2)]
    tests = [c for c in calls if c[0] == "test"]
    # Once after the last epoch (the final record); with --test-every-epoch also after each epoch.
    assert tests == ([("test", 1), ("test", 2)] if every_epoch else []) + [("test", 2)]
    assert "other" not in {c[0] for c in calls}
    key = trainer.objective.pick({k[4:]: v for k, v in history[-1].items() if k.startswith("val_")})[0]
    assert all(f"val_{key}" in r for r in history)
    assert all(any(k.startswith("test_") for k in r) == every_epoch for r in history)
    final = runs.read_final(trainer.run_dir)
    if not trainer.selects:  # an image GAN's few validation images (under 256): no choice, last.pt tested
        assert len(trainer.val_x) < 256 and model in ("dcgan28", "dcgan64")
        assert final["checkpoint"] == "last" and final["checkpoint_epoch"] == 2 and f"test_{key}" in final
        assert not (trainer.run_dir / "checkpoints" / "best.pt").exists()
        return
    assert final["checkpoint"] == "best" and f"test_{key}" in final
    best = torch.load(trainer.run_dir / "checkpoints" / "best.pt", weights_only=True)
    # The best epoch by the objective's order (its metric, then its tie-break; the first of equals).
    ranks = [trainer.objective.rank({k[4:]: v for k, v in r.items() if k.startswith("val_")}) for r in history]
    assert best["epoch"] == ranks.index(max(ranks)) + 1 == final["checkpoint_epoch"]


def test_split_is_stratified_fixed_and_independent_of_the_seed(mnist_mini):
    a = splits.with_validation(mnist_mini, 0.1)
    assert (len(a.train), len(a.val), len(a.test)) == (3600, 400, 1000)
    assert a.val.labels.bincount(minlength=10).tolist() == [40] * 10  # 400 training digits per class
    seen = {bytes(x.numpy()) for x in a.train.images}
    assert not any(bytes(x.numpy()) in seen for x in a.val.images)  # disjoint
    assert splits.with_validation(mnist_mini, 0.1).extra["split"] == a.extra["split"]  # fixed
    info = a.extra["split"]
    assert info["val_sha256"] == splits.fingerprint(a.val) and len(info["val_indices"]) == 400
    assert torch.equal(mnist_mini.train.images[info["val_indices"]], a.val.images)
    # Another fraction takes other images; the seed of a run plays no part (runs below).
    assert splits.with_validation(mnist_mini, 0.2).extra["split"]["val_sha256"] != info["val_sha256"]
    none = splits.with_validation(mnist_mini, 0)
    assert none.val is None and len(none.train) == 4000 and none.extra["split"]["source"] == "none"


def test_runs_with_different_seeds_share_the_validation_images(tmp_path, tiny_data):
    infos = []
    for seed in (0, 7):
        run = disgen.train(
            "mlp-classifier",
            dataset_obj=tiny_data,
            epochs=1,
            seed=seed,
            progress=False,
            run_dir=str(tmp_path / f"s{seed}"),
        )
        infos.append(json.loads((run.dir / "split.json").read_text()))
    sizes = infos[0]["sizes"]
    expected = sum(round(0.1 * n) for n in tiny_data.train.labels.bincount().tolist())  # per class
    assert infos[0] == infos[1] and sizes == {"train": 300 - expected, "val": expected, "test": 100}


def test_labelled_subset_comes_from_the_training_part_only(tmp_path, tiny_data):
    run = disgen.train(
        "mlp-classifier", dataset_obj=tiny_data, epochs=1, labels=100, progress=False, run_dir=str(tmp_path / "lab")
    )
    val = set(json.loads((run.dir / "split.json").read_text())["val_indices"])
    train_part = [i for i in range(len(tiny_data.train)) if i not in val]  # the carved training split
    chosen = json.loads((run.dir / "labels.json").read_text())["indices"]
    carved = splits.with_validation(tiny_data, 0.1)
    assert chosen == labelled_indices(carved.train.labels, 100, 10, 0).tolist()
    originals = {train_part[i] for i in chosen}  # indices into the full training split
    assert len(originals) == 100 and not originals & val


def test_val_split_zero_trains_on_everything_and_writes_no_best(tmp_path, tiny_data, capsys):
    run_dir = tmp_path / "all"
    run = disgen.train(
        "mlp-classifier", dataset_obj=tiny_data, epochs=2, val_split=0, progress=False, run_dir=str(run_dir)
    )
    err = capsys.readouterr().err
    assert "no validation split (--val-split 0)" in err and "best.pt is not written" in err
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt"]
    assert not any(k.startswith("val_") for r in run.history for k in r)
    assert run.final["checkpoint"] == "last" and run.final["checkpoint_epoch"] == 2
    assert json.loads((run_dir / "split.json").read_text())["sizes"]["train"] == 300
    with pytest.raises(DisgenError, match="no validation split"):
        disgen.load(run_dir).evaluate(tiny_data, split="val")


def test_seed_presets_keep_their_documents_protocol(capsys):
    for model in [m for m in list_models() if "seed" in get_model(m).presets]:  # those with a source document
        preset = get_model(model).presets["seed"]
        # Every seed document except the Kaggle pipeline (train/valid) trained on the whole training split.
        assert preset.get("val_split", 0.1) == (0.1 if model in ("resnet-transfer", "cnn-classifier") else 0), model
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.count("trains on the whole training split") == 6


def test_resume_and_eval_refuse_another_validation_split(tmp_path, tiny_data, capsys):
    run_dir = tmp_path / "run"
    disgen.train("mlp-classifier", dataset_obj=tiny_data, epochs=1, progress=False, run_dir=str(run_dir))
    with pytest.raises(DisgenError, match=r"--val-split 0.2 \(the run's: 0.1\) cannot change on a resume"):
        disgen.train(
            "mlp-classifier",
            dataset_obj=tiny_data,
            epochs=2,
            val_split=0.2,
            progress=False,
            run_dir=str(run_dir),
            resume=True,
        )
    other = subset(tiny_data, 290, 100)  # the training split changed: other validation images
    with pytest.raises(DisgenError, match="validation split .* differs"):
        disgen.train("mlp-classifier", dataset_obj=other, epochs=2, progress=False, run_dir=str(run_dir), resume=True)
    assert runs.read_metrics(run_dir)[-1]["epoch"] == 1  # nothing was overwritten
    # The same split resumes.
    disgen.train("mlp-classifier", dataset_obj=tiny_data, epochs=2, progress=False, run_dir=str(run_dir), resume=True)
    assert [r["epoch"] for r in runs.read_metrics(run_dir)] == [1, 2]


def test_eval_splits_are_kept_side_by_side_in_eval_json(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "mlp-classifier", "--epochs", "2", "--no-progress", "--run-dir", str(run_dir)]) == 0
    after_training = runs.read_evals(run_dir)
    assert [(e["dataset"], e["split"], e["checkpoint"]) for e in after_training] == [("mnist-mini", "test", "best")]
    for split in ("val", "train"):
        assert main(["eval", str(run_dir), "--split", split]) == 0
    assert main(["eval", str(run_dir), "--split", "val", "--checkpoint", "last"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    evals = runs.read_evals(run_dir)
    assert [(e["split"], e["checkpoint"]) for e in evals] == [
        ("test", "best"),
        ("val", "best"),
        ("train", "best"),
        ("val", "last"),
    ]
    history = runs.read_metrics(run_dir)
    best_epoch = evals[0]["checkpoint_epoch"]
    assert evals[1]["accuracy"] == history[best_epoch - 1]["val_accuracy"]  # the same images, the same model
    assert evals[3]["accuracy"] == history[-1]["val_accuracy"]
    assert evals[0]["accuracy"] == runs.read_final(run_dir)["test_accuracy"]
    assert evals[2]["accuracy"] > evals[1]["accuracy"] - 0.2 and printed[-1] == evals[3]
    # The validation and training splits of the run's own dataset are checked against split.json.
    info = json.loads((run_dir / "split.json").read_text())
    (run_dir / "split.json").write_text(json.dumps({**info, "val_sha256": "0" * 64}))
    for split in ("val", "train"):
        assert main(["eval", str(run_dir), "--split", split]) == 2
        assert "cannot evaluate the %s split of" % split in capsys.readouterr().err
    assert main(["eval", str(run_dir)]) == 0  # the test split does not depend on it


def test_test_every_epoch_adds_a_curve_and_changes_nothing_else(tmp_path, tiny_data):
    def train(name: str, every: bool) -> list[dict]:
        run = disgen.train(
            "mlp-classifier",
            dataset_obj=tiny_data,
            epochs=3,
            model_args={"dropout": 0.3},
            augment="affine",
            test_every_epoch=every,
            progress=False,
            run_dir=str(tmp_path / name),
        )
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in run.history], run.final

    (plain, final_a), (curve, final_b) = train("a", False), train("b", True)
    assert all(any(k.startswith("test_") for k in r) for r in curve)
    assert [{k: v for k, v in r.items() if not k.startswith("test_")} for r in curve] == plain
    assert {k: v for k, v in final_a.items() if k != "eval_seconds"} == {
        k: v for k, v in final_b.items() if k != "eval_seconds"
    }


def test_gaussian2d_has_its_own_moment_matched_validation_split():
    data = load_dataset("gaussian2d")
    assert len(data.train) == 1000 and len(data.val) == 1000
    carved = splits.with_validation(data, 0.1)
    assert len(carved.train) == 1000 and carved.extra["split"]["source"] == "dataset"
    mu = data.val.images.double().mean(0)
    assert torch.allclose(mu, torch.tensor([1.0, 2.0], dtype=torch.float64), atol=1e-5)
    assert not torch.equal(data.val.images, data.test.images)


def test_too_few_images_for_a_validation_split_is_a_clear_error():
    one_each = TensorDataset(
        "tiny", ImageSplit(torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.arange(3)), None, ["a", "b", "c"]
    )
    with pytest.raises(DisgenError, match="too few to hold any out; use more images or --val-split 0"):
        splits.with_validation(one_each, 0.1)
    with pytest.raises(DisgenError, match=r"--val-split 1.0: use a fraction in \[0, 1\)"):
        splits.with_validation(one_each, 1.0)
