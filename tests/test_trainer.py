"""The Trainer: exact resume (in process and after a real SIGKILL), run-directory contents,
checkpoint safety, learning-rate schedules, seeding, and quality bounds on mnist-mini."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import SUBPROCESS_ENV, stop_after_epoch, subset
from PIL import Image

import disgen
from disgen import runs
from disgen.cli import main
from disgen.config import TrainConfig
from disgen.errors import DisgenError
from disgen.models import get_model, resolve
from disgen.objectives.optim import lr_factor
from disgen.runs import checkpoint
from disgen.training.trainer import Trainer

TIMING = {"seconds", "eval_seconds"}


def metrics(run_dir) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in runs.read_metrics(Path(run_dir))]


def last_state(run_dir) -> dict:
    return checkpoint.load(Path(run_dir) / "checkpoints" / "last.pt")


def assert_equal_tree(a, b, where: str = "") -> None:
    """Exact equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_equal_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_training(a_dir, b_dir) -> None:
    """Same metrics (timings aside), weights, optimizer, schedule and RNG state."""
    assert metrics(a_dir) == metrics(b_dir)
    a, b = last_state(a_dir), last_state(b_dir)
    for key in ("epoch", "best", "nets", "opts", "scheds", "rng"):
        assert_equal_tree(a[key], b[key], key)


# ---- (a) resume ---------------------------------------------------------------------------


def test_resume_extends_a_run_exactly(tmp_path, tiny_data, mlp_reference):
    b = tmp_path / "B"
    disgen.train("mlp-classifier", preset="seed", dataset_obj=tiny_data, epochs=2, progress=False, run_dir=str(b))
    assert [r["epoch"] for r in metrics(b)] == [1, 2]
    run = disgen.train("mlp-classifier", dataset_obj=tiny_data, run_dir=str(b), epochs=3, resume=True, progress=False)
    assert [r["epoch"] for r in run.history] == [1, 2, 3]
    assert_same_training(mlp_reference, b)
    assert runs.read_config(b).epochs == 3


def test_resume_after_interruption_restores_all_state(tmp_path, tiny_data, monkeypatch):
    """cnn-classifier default: augmentation, dropout, batch norm and a one-cycle schedule
    (narrower than the preset's network, which changes none of that, to keep the test fast)."""
    a, b = tmp_path / "A", tmp_path / "B"
    options = dict(
        preset="default", dataset_obj=tiny_data, epochs=3, progress=False, model_args={"widths": (8, 16, 32)}
    )
    disgen.train("cnn-classifier", run_dir=str(a), **options)
    with monkeypatch.context() as m:
        stop_after_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            disgen.train("cnn-classifier", run_dir=str(b), **options)
    assert last_state(b)["epoch"] == 2
    disgen.train("cnn-classifier", dataset_obj=tiny_data, run_dir=str(b), resume=True, progress=False)
    assert [r["epoch"] for r in metrics(b)] == [1, 2, 3]
    assert_same_training(a, b)
    cfg = runs.read_config(b)
    assert (cfg.augment, cfg.lr_schedule) == ("affine", "onecycle")  # the resume kept the preset


def test_resume_auto_without_checkpoint_starts_from_scratch(tmp_path, tiny_data, mlp_reference):
    """resume="auto" on a folder with no run trains it from the start; resume=True is an error there."""
    with pytest.raises(DisgenError, match="holds no run"):
        disgen.train(
            "mlp-classifier",
            preset="seed",
            dataset_obj=tiny_data,
            epochs=3,
            progress=False,
            run_dir=str(tmp_path / "B"),
            resume=True,
        )
    run = disgen.train(
        "mlp-classifier",
        preset="seed",
        dataset_obj=tiny_data,
        epochs=3,
        progress=False,
        run_dir=str(tmp_path / "B"),
        resume="auto",
    )
    assert len(run.history) == 3
    assert_same_training(mlp_reference, tmp_path / "B")


def test_kill_between_checkpoint_and_metrics_keeps_every_epoch(tmp_path, tiny_data, monkeypatch):
    b = tmp_path / "B"
    original = runs.append_metrics

    def append_metrics(run_dir, record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt("killed after last.pt of epoch 2 was written")
        original(run_dir, record)

    with monkeypatch.context() as m:
        m.setattr(runs, "append_metrics", append_metrics)
        with pytest.raises(KeyboardInterrupt):
            disgen.train(
                "mlp-classifier", preset="seed", dataset_obj=tiny_data, epochs=3, progress=False, run_dir=str(b)
            )
    disgen.train("mlp-classifier", dataset_obj=tiny_data, run_dir=str(b), resume=True, progress=False)
    assert [r["epoch"] for r in metrics(b)] == [1, 2, 3]


def cli_train(run_dir: Path, dataset: Path, *extra: str) -> list[str]:
    # Augmentation, dropout and a one-cycle schedule so all RNG and schedule state must resume;
    # small batches and 10 epochs, so the run is still going when the test kills it.
    return [
        "train",
        "mlp-classifier",
        "--dataset",
        str(dataset),
        "--epochs",
        "10",
        "--batch-size",
        "10",
        "--augment",
        "affine",
        "--dropout",
        "0.2",
        "--lr-schedule",
        "onecycle",
        "--no-progress",
        "--run-dir",
        str(run_dir),
        *extra,
    ]


# slow: the kill-and-resume runs of every model (test_hardening, -m slow) cover it too
@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_cli_run(tmp_path, idx_dir):
    a, b = tmp_path / "A", tmp_path / "B"
    python = [sys.executable, "-m", "disgen"]
    killed = subprocess.Popen(
        python + cli_train(b, idx_dir), env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        # Wait for epoch 1's checkpoint and metrics line, then kill without warning.
        while not ((b / "checkpoints" / "last.pt").exists() and runs.read_metrics(b)):
            assert killed.poll() is None, killed.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.005)
        killed.send_signal(signal.SIGKILL)
    finally:
        killed.wait(30)
        killed.stderr.close()
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    stopped_at = last_state(b)["epoch"]
    assert 1 <= stopped_at < 10
    resumed = subprocess.Popen(
        python + cli_train(b, idx_dir, "--resume"),
        env=SUBPROCESS_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Meanwhile the uninterrupted run, through the same CLI code in this process (one thread, as
    # the subprocesses: the same arithmetic, so the same bits).
    assert main(cli_train(a, idx_dir)) == 0
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert f"resuming {b} after epoch {stopped_at}" in err
    assert [r["epoch"] for r in metrics(b)] == list(range(1, 11))
    assert_same_training(a, b)
    assert sorted(p.name for p in (b / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    final = runs.read_final(a)
    assert final["checkpoint"] == "best" and runs.read_final(b)["test_accuracy"] == final["test_accuracy"]
    assert json.loads(out.splitlines()[-1])["test_accuracy"] == final["test_accuracy"]


# ---- (b) the run directory ----------------------------------------------------------------


RUN_FIXTURES = {
    "classifier_run": ("classify", ["loss", "accuracy"], ["accuracy", "loss"]),
    "autoencoder_run": ("reconstruct", ["mse"], ["mse"]),
}


@pytest.mark.parametrize("fixture", sorted(RUN_FIXTURES))
def test_run_directory_contents(request, fixture):
    run: disgen.Run = request.getfixturevalue(fixture)
    objective, train_keys, test_keys = RUN_FIXTURES[fixture]
    d = run.dir
    cfg = runs.read_config(d)
    as_json = json.loads(json.dumps(run.config.to_dict()))  # tuples -> lists, as in the file
    assert json.loads((d / "config.json").read_text()) == as_json
    assert json.loads(json.dumps(cfg.to_dict())) == as_json and cfg.run_dir == str(d)
    again = resolve(cfg.model, {k: v for k, v in cfg.to_dict().items() if k != "model"})
    assert json.loads(json.dumps(again.to_dict())) == as_json
    info = json.loads((d / "run.json").read_text())
    assert info["data"] == {"name": "mnist-mini", "image_shape": [1, 28, 28], "classes": [str(i) for i in range(10)]}
    assert info["device"] == "cpu" and info["disgen"] == disgen.__version__

    lines = (d / "metrics.jsonl").read_text().splitlines()
    *records, final = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == list(range(1, cfg.epochs + 1))
    assert records == run.history
    for r in records:
        expected = {f"train_{k}" for k in train_keys} | {f"val_{k}" for k in test_keys} | {"seconds"}
        assert expected <= set(r), sorted(r)
        assert not any(k.startswith("test_") for k in r)  # the test split only once, at the end
        assert all(math.isfinite(r[k]) for k in expected)
        assert r["seconds"] > 0
    assert final["final"] is True and final["epoch"] == cfg.epochs and final == run.final
    assert {f"test_{k}" for k in test_keys} <= set(final)

    last = checkpoint.load(d / "checkpoints" / "last.pt")
    best = checkpoint.load(d / "checkpoints" / "best.pt")
    assert last["epoch"] == cfg.epochs and last["model"] == cfg.model
    key, mode = {"classify": ("val_accuracy", "max"), "reconstruct": ("val_mse", "min")}[objective]
    values = [r[key] for r in records]
    target = max(values) if mode == "max" else min(values)
    assert best["epoch"] == values.index(target) + 1 and best["best"] == pytest.approx(target)
    assert last["best"] == pytest.approx(target)
    assert final["checkpoint"] == "best" and final["checkpoint_epoch"] == best["epoch"]
    assert ("mnist-mini", "test", "best") in [(e["dataset"], e["split"], e["checkpoint"]) for e in runs.read_evals(d)]

    names = {"train_batch.png", "curves.png"} | (
        {"predictions_before.png", "predictions_after.png"}
        if objective == "classify"
        else {"reconstructions_before.png", "reconstructions_after.png"}
    )
    present = {p.name for p in (d / "images").iterdir()}
    assert names <= present, sorted(names - present)
    for name in names:
        with Image.open(d / "images" / name) as im:
            assert im.format == "PNG" and min(im.size) > 50
            assert im.convert("L").getextrema()[0] < im.convert("L").getextrema()[1]  # not blank
    with Image.open(d / "images" / "train_batch.png") as im:
        assert im.size == (10 * 30 + 2, 10 * 30 + 2)  # 10x10 digits of 28 px, 2 px padding


def test_loaded_run_matches_trained_run(classifier_run, mnist_mini):
    loaded = disgen.load(classifier_run.dir, "last")
    x = mnist_mini.test.images[:50]
    assert torch.equal(loaded.predict(x), classifier_run.predict(x))  # the trained run holds the last weights
    best = disgen.load(classifier_run.dir)  # auto: best.pt, which the final test record measured
    assert best.checkpoint == "best" and best.epoch == classifier_run.final["checkpoint_epoch"]
    assert best.evaluate()["accuracy"] == classifier_run.final["test_accuracy"]
    assert best.evaluate(split="val")["accuracy"] == classifier_run.history[best.epoch - 1]["val_accuracy"]


# ---- (c) refusing to overwrite --------------------------------------------------------------


def test_refuses_to_overwrite_a_run(tmp_path, tiny_data):
    d = tmp_path / "run"
    disgen.train("mlp-classifier", dataset_obj=tiny_data, epochs=1, progress=False, run_dir=str(d))
    before = {p: p.read_bytes() for p in [d / "config.json", d / "metrics.jsonl", d / "checkpoints" / "last.pt"]}
    with pytest.raises(DisgenError, match="already holds a training run") as err:
        disgen.train("mlp-classifier", dataset_obj=tiny_data, epochs=2, lr=0.5, progress=False, run_dir=str(d))
    assert "--resume" in str(err.value) and str(d) in str(err.value)
    assert {p: p.read_bytes() for p in before} == before


# ---- (d) atomic checkpoints -----------------------------------------------------------------


def failing_save(exc: BaseException):
    def save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise exc

    return save


@pytest.mark.parametrize(
    "exc,expected",
    [
        (OSError(28, "No space left on device"), DisgenError),
        (RuntimeError("writer crashed"), RuntimeError),
        (KeyboardInterrupt(), KeyboardInterrupt),
    ],
)
def test_failed_checkpoint_write_keeps_previous(tmp_path, monkeypatch, exc, expected):
    path = tmp_path / "checkpoints" / "last.pt"
    old = {"model": "m", "epoch": 1, "nets": {"model": {"w": torch.arange(5.0)}}}
    checkpoint.save(path, old)
    monkeypatch.setattr(torch, "save", failing_save(exc))
    with pytest.raises(expected) as err:
        checkpoint.save(path, {**old, "epoch": 2})
    if expected is DisgenError:
        assert str(path) in str(err.value) and "No space left" in str(err.value)
    monkeypatch.undo()
    state = checkpoint.load(path, validate=False)  # a few values, not a whole run's state
    assert state["epoch"] == 1 and torch.equal(state["nets"]["model"]["w"], torch.arange(5.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_failed_checkpoint_during_training_then_resume(tmp_path, tiny_data, monkeypatch, mlp_reference):
    d = tmp_path / "B"
    options = dict(preset="seed", dataset_obj=tiny_data, epochs=3, progress=False, run_dir=str(d))
    with monkeypatch.context() as m:
        stop_after_epoch(m, 1)
        with pytest.raises(KeyboardInterrupt):
            disgen.train("mlp-classifier", **options)
    with monkeypatch.context() as m:
        m.setattr(torch, "save", failing_save(OSError(28, "No space left on device")))
        with pytest.raises(DisgenError, match="could not write checkpoint"):
            disgen.train("mlp-classifier", resume=True, **options)
    assert last_state(d)["epoch"] == 1
    assert [r["epoch"] for r in runs.read_metrics(d)] == [1]
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == ["last.pt"]  # seed preset: no best.pt
    disgen.train("mlp-classifier", resume=True, **options)
    assert_same_training(mlp_reference, d)


# ---- (e) loading untrusted or broken checkpoints -------------------------------------------


class Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_refuses_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save(
        {
            "format": checkpoint.FORMAT,
            "version": checkpoint.VERSION,
            "nets": {"model": {"w": torch.zeros(2)}},
            "x": Payload(marker),
        },
        path,
    )
    with pytest.raises(DisgenError, match="cannot be loaded safely") as err:
        checkpoint.load(path)
    assert str(path) in str(err.value)
    assert not marker.exists()
    # The payload is real: an unsafe load would have run it.
    torch.load(path, weights_only=False)["x"].close()
    assert marker.exists()


def test_load_refuses_plain_pickle_payload(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    with pytest.raises(DisgenError):
        checkpoint.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("cut", ["half", "empty", "garbage"])
def test_load_refuses_truncated_or_garbage(tmp_path, cut):
    good = tmp_path / "good.pt"
    checkpoint.save(good, {"nets": {"model": {"w": torch.randn(100, 100)}}})
    data = good.read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes({"half": data[: len(data) // 2], "empty": b"", "garbage": b"not a checkpoint"}[cut])
    with pytest.raises(DisgenError, match="truncated, corrupt") as err:
        checkpoint.load(bad)
    assert str(bad) in str(err.value)


def test_load_refuses_foreign_or_future_checkpoints(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(DisgenError, match="is not a disgen checkpoint"):
        checkpoint.load(foreign)
    future = tmp_path / "future.pt"
    torch.save({"format": checkpoint.FORMAT, "version": checkpoint.VERSION + 1}, future)
    with pytest.raises(DisgenError, match=f"format version {checkpoint.VERSION + 1}"):
        checkpoint.load(future)
    with pytest.raises(DisgenError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")


def nets_of(model: str, **model_args) -> dict:
    spec = get_model(model)
    return spec.build(spec.model_config(model_args), (1, 28, 28), 10)


def test_check_compatible_lists_mismatches():
    state = {"model": "mlp-classifier", "nets": {k: m.state_dict() for k, m in nets_of("mlp-classifier").items()}}
    cfg = TrainConfig(model="mlp-autoencoder")
    with pytest.raises(DisgenError, match="does not fit this model") as err:
        runs.check_compatible(state, cfg, nets_of("mlp-autoencoder"))
    msg = str(err.value)
    assert "model 'mlp-classifier' != 'mlp-autoencoder'" in msg
    assert "model.body.1.weight unexpected in the checkpoint" in msg
    assert "model.decoder.2.weight missing from the checkpoint" in msg
    assert re.search(r"; and \d+ more$", msg)  # 17 problems: the first 10, then a count

    cfg = TrainConfig(model="mlp-classifier")
    with pytest.raises(DisgenError) as err:
        runs.check_compatible(state, cfg, nets_of("mlp-classifier", hidden=(64, 50)))
    assert "model.body.1.weight shape (100, 784) != (64, 784)" in str(err.value)
    assert "model 'mlp-classifier'" not in str(err.value)
    runs.check_compatible(state, cfg, nets_of("mlp-classifier"))  # a fitting one passes


def test_load_run_with_mismatched_config_is_refused(tmp_path, classifier_run):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(classifier_run.dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_args"]["hidden"] = [64, 32]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DisgenError, match=r"shape \(100, 784\) != \(64, 784\)"):
        disgen.load(d)


# ---- (f) learning-rate schedules -------------------------------------------------------------


def test_lr_factor_step():
    f = lr_factor(TrainConfig(epochs=10, lr_schedule="step", lr_period=3, lr_decay=0.5), 5)
    assert [f(it) for it in (0, 14, 15, 29, 30, 45)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]


def test_lr_factor_cosine():
    f = lr_factor(TrainConfig(epochs=2, lr_schedule="cosine"), 5)  # 10 iterations
    assert f(0) == 1.0 and f(10) == pytest.approx(0.0, abs=1e-12) and f(25) == f(10)
    assert f(5) == pytest.approx(0.5)
    assert f(2) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))


def test_lr_factor_onecycle():
    f = lr_factor(TrainConfig(epochs=4, lr_schedule="onecycle"), 25)  # 100 iterations, 25 warm-up
    assert f(0) == pytest.approx(0.04)
    assert f(12) == pytest.approx(0.04 + 0.96 * 12 / 25)
    assert f(25) == pytest.approx(1.0)
    assert f(50) == pytest.approx(0.75)  # a third of the way down the cosine
    assert f(100) == pytest.approx(0.0, abs=1e-12)
    rising = [f(i) for i in range(26)]
    falling = [f(i) for i in range(25, 101)]
    assert rising == sorted(rising) and falling == sorted(falling, reverse=True)


def test_lr_factor_none():
    f = lr_factor(TrainConfig(epochs=3), 7)
    assert {f(i) for i in range(0, 30)} == {1.0}


@pytest.mark.parametrize("schedule", ["step", "cosine", "onecycle"])
def test_trainer_applies_schedule(tmp_path, tiny_data, schedule):
    cfg = resolve(
        "mlp-classifier",
        dict(epochs=2, lr=0.01, lr_schedule=schedule, lr_period=1, lr_decay=0.3, batch_size=64, progress=False),
    )
    trainer = Trainer(cfg, tmp_path / "r", tiny_data, log=lambda msg: None)
    steps = len(trainer.loader)
    assert steps == 5  # 300 images in batches of 64
    seen = []
    step = trainer.objective.step

    def spy(nets, opts, batch):
        seen.append(opts["model"].param_groups[0]["lr"])
        return step(nets, opts, batch)

    trainer.objective = dataclasses.replace(trainer.objective, step=spy)
    trainer.fit()
    f = lr_factor(cfg, steps)
    assert seen == pytest.approx([0.01 * f(i) for i in range(2 * steps)])
    assert len(set(seen)) > 1


# ---- (g) seeding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,options",
    [
        ("mlp-classifier", {}),
        ("cnn-classifier", {"model_args": {"widths": (4, 8, 8)}}),  # default preset: augment, dropout
    ],
)
def test_same_seed_same_run_other_seed_differs(tmp_path, tiny_data, model, options):
    def weights(seed: int, name: str) -> dict:
        run = disgen.train(
            model, dataset_obj=tiny_data, epochs=1, seed=seed, progress=False, run_dir=str(tmp_path / name), **options
        )
        return {k: v.clone() for k, v in run.nets["model"].state_dict().items()}, run.history

    (a, ha), (b, hb), (c, _) = weights(0, "a"), weights(0, "b"), weights(1, "c")
    assert_equal_tree(a, b)
    assert [{k: v for k, v in r.items() if k not in TIMING} for r in ha] == [
        {k: v for k, v in r.items() if k not in TIMING} for r in hb
    ]
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


# ---- (h) quality ----------------------------------------------------------------------------


@pytest.mark.slow  # 12 s on 2 cores
def test_cnn_classifier_learns_mnist_mini(tmp_path, mnist_mini):
    # 1000 training digits, all 1000 test digits. Batch 16 (not the preset's 64) so 3 epochs are
    # ~190 steps: batch norm's running statistics need ~100 steps to forget their initial values.
    run = disgen.train(
        "cnn-classifier",
        dataset_obj=subset(mnist_mini, 1000, 1000),
        epochs=3,
        batch_size=16,
        progress=False,
        run_dir=str(tmp_path / "cnn"),
    )
    acc = [r["val_accuracy"] for r in run.history]
    assert run.final["test_accuracy"] > 0.90, (acc, run.final)
    assert (
        disgen.load(run.dir, "best").evaluate(subset(mnist_mini, 1000, 1000))["accuracy"] == run.final["test_accuracy"]
    )


def test_mlp_autoencoder_seed_reduces_mse(tmp_path, mnist_mini):
    cfg = resolve("mlp-autoencoder", dict(preset="seed", epochs=3, progress=False))
    trainer = Trainer(cfg, tmp_path / "ae", mnist_mini, log=lambda msg: None)
    assert trainer.val_x is None  # the seed preset trains on the whole training split, as seed 001
    before = trainer.objective.evaluate(trainer.nets, trainer.test_x, trainer.test_y)["mse"]
    history = trainer.fit()
    assert not (tmp_path / "ae" / "checkpoints" / "best.pt").exists()
    mse = [r["train_mse"] for r in history]
    test = trainer.final["test_mse"]
    assert trainer.final["checkpoint"] == "last"
    assert before > 0.25  # saturated sigmoids from U(-1, 1) output ~0.5 everywhere
    assert mse == sorted(mse, reverse=True)
    assert test < 0.1 and test < before / 3, (before, mse, test)


def test_mlp_autoencoder_default_preset_is_the_candidate_chosen_on_validation():
    """The preset is the candidate that benchmarks/bench_autoencoder_preset.py chose on mnist-mini's
    validation split (its results file keeps every candidate's figures)."""
    root = Path(__file__).resolve().parents[1]
    results = json.loads((root / "benchmarks" / "results" / "autoencoder_preset.json").read_text())
    chosen = results["results"][results["chosen"]]["options"]
    cfg = resolve("mlp-autoencoder", {})
    assert (cfg.batch_size, cfg.epochs, cfg.lr) == (chosen["batch_size"], chosen["epochs"], chosen["lr"])
    assert {k: list(v) for k, v in cfg.model_args.items() if k in ("encoder", "decoder")} == chosen["model_args"]
    before = results["results"]["before: 100-50, batch 100, 10 epochs"]["val_mse"]["mean"]
    assert results["results"][results["chosen"]]["val_mse"]["mean"] < before / 3


@pytest.mark.slow  # 25 s on one core: the whole default preset
def test_mlp_autoencoder_default_preset_reconstructs_mnist_mini_well(tmp_path):
    """`disgen train mlp-autoencoder` (default preset, mnist-mini) ended at test MSE 0.044 with
    blurry reconstructions; the preset chosen on validation reaches about 0.013."""
    run = disgen.train("mlp-autoencoder", progress=False, run_dir=str(tmp_path))
    assert run.final["checkpoint"] == "best" and run.final["test_mse"] < 0.016


def test_the_trainer_trains_and_disgen_train_lays_out_the_rest(tmp_path, home, mnist_mini):
    """Building a Trainer builds the networks and batches and nothing else: no budget fitted (a
    --time-budget config keeps its plan empty and steps unfixed) and no reference classifier
    trained (the cache stays empty); ``disgen.train`` does both, in its own steps, before fit."""
    from disgen.evaluation import reference
    from disgen.training import budget

    data = subset(mnist_mini, 64, 32)
    cfg = resolve("dcgan28", {"time_budget": 2.0, "progress": False, "batch_size": 16})
    trainer = Trainer(cfg, tmp_path / "r", data, log=lambda msg: None)
    assert trainer.deadline is None and cfg.budget_plan is None and cfg.max_steps is None
    assert trainer.scheds == {} and trainer.eval_kw == {}
    assert reference.missing(trainer.data) is not None and not (home / "reference").exists()
    trainer.deadline = budget.fit(trainer)
    assert isinstance(trainer.deadline, budget.Deadline) and cfg.budget_plan == [[0, budget.MAX_STEPS]]


def test_a_short_budget_preset_must_exist():
    from disgen.models.registry import register_model

    with pytest.raises(ValueError, match="short_budget 'tiny' needs the presets 'budget' and it"):
        register_model("x-short", objective="classify", config=object, presets={"default": {}}, short_budget="tiny")(
            lambda cfg, image_shape, classes: {}
        )
