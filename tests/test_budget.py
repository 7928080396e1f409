"""``--time-budget``: disgen times its first steps, fixes the steps that fit in config.json, and a
resume or a rerun of that config is exact."""

from __future__ import annotations

import json

import pytest
from conftest import stop_after_epoch, subset

import disgen
from disgen.errors import DisgenError
from disgen.models import get_model
from disgen.training import budget


def history(run) -> list[dict]:
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in run.history]


@pytest.fixture(scope="module")
def data(mnist_mini):
    return subset(mnist_mini, 600, 200)


def test_the_budget_fixes_the_steps_and_a_rerun_with_them_is_identical(tmp_path, data):
    opts = dict(batch_size=50, lr_schedule="onecycle", progress=False, dataset_obj=data)
    run = disgen.train("mlp-classifier", time_budget=2.0, run_dir=str(tmp_path / "budget"), **opts)
    saved = json.loads((tmp_path / "budget" / "config.json").read_text())
    steps_per_epoch = 11  # 540 training images (600 less the validation split) in batches of 50
    assert saved["time_budget"] == 2.0 and saved["max_steps"] >= 1
    assert saved["epochs"] == -(-saved["max_steps"] // steps_per_epoch)
    timing = json.loads((tmp_path / "budget" / "run.json").read_text())
    assert "time_budget" in json.dumps(timing)  # the step time and how long the timing took
    # the timed steps were put back: the same weights as a run told the number of steps outright
    again = disgen.train(
        "mlp-classifier", max_steps=saved["max_steps"], epochs=saved["epochs"], run_dir=str(tmp_path / "steps"), **opts
    )
    assert history(run) == history(again)
    assert sum(r["seconds"] for r in run.history) < 2.0 * 3  # training time, near the budget (a loaded machine)


def test_a_budgeted_run_resumes_exactly_without_timing_again(tmp_path, data, monkeypatch):
    opts = dict(batch_size=50, max_steps=25, time_budget=100.0, progress=False, dataset_obj=data, lr_schedule="cosine")
    whole = disgen.train("mlp-classifier", epochs=3, run_dir=str(tmp_path / "whole"), **opts)
    assert [r["epoch"] for r in whole.history] == [1, 2, 3]  # max_steps given: the budget is not timed again
    with monkeypatch.context() as m:
        stop_after_epoch(m, 1)
        with pytest.raises(KeyboardInterrupt):
            disgen.train("mlp-classifier", epochs=3, run_dir=str(tmp_path / "cut"), **opts)
    monkeypatch.setattr(budget, "time_steps", lambda *a: pytest.fail("a resumed run timed its steps again"))
    resumed = disgen.train("mlp-classifier", resume=True, run_dir=str(tmp_path / "cut"), dataset_obj=data)
    assert history(resumed) == history(whole)


def test_steps_that_fit_and_bad_budgets():
    assert budget.steps_that_fit(10.0, {"timing_seconds": 1.0, "step_seconds": 0.1}) == 90
    assert budget.steps_that_fit(1.0, {"timing_seconds": 2.0, "step_seconds": 0.1}) == 1
    for bad in (0, -5, float("inf")):
        with pytest.raises(DisgenError, match="--time-budget"):
            disgen.train("mlp-classifier", time_budget=bad, dataset="mnist-mini")


def test_a_budget_run_takes_the_models_budget_preset_unless_one_is_named():
    from disgen.models import get_model, list_models, resolve

    budget_models = [m for m in list_models() if "budget" in get_model(m).presets]
    assert "cnn-classifier" in budget_models
    for model in list_models():
        cfg = resolve(model, {"time_budget": 30.0})
        assert cfg.preset == ("budget" if model in budget_models else "default")
        assert resolve(model, {}).preset == "default"
        assert resolve(model, {"time_budget": 30.0, "preset": "seed"}).preset == "seed"
    want = get_model("cnn-classifier").presets["budget"]
    cfg = resolve("cnn-classifier", {"time_budget": 30.0})
    assert (cfg.batch_size, cfg.lr, cfg.augment) == (want["batch_size"], want["lr"], want.get("augment", "none"))


def test_a_budget_under_one_epoch_takes_the_narrower_network_and_a_rerun_is_identical(tmp_path, mnist_mini):
    """cnn-classifier with a budget that holds under one epoch of its default network trains the
    ``budget-short`` preset's narrower one and learning rate, recorded in config.json (a learning
    rate the user gave is kept), and a run told that network, rate and the steps outright draws
    the same; a budget of many epochs keeps the budget preset's own network."""
    preset = get_model("cnn-classifier").presets[budget.SHORT]
    narrow = {k: list(v) if isinstance(v, tuple) else v for k, v in preset["model"].items()}
    opts = dict(batch_size=32, progress=False, augment="none")
    many = subset(mnist_mini, 4000, 100)  # 113 steps an epoch: 0.6 s holds one only under 5 ms a step
    run = disgen.train("cnn-classifier", time_budget=0.6, dataset_obj=many, run_dir=str(tmp_path / "short"), **opts)
    saved = json.loads((tmp_path / "short" / "config.json").read_text())
    assert saved["preset"] == "budget" and saved["model_args"] == narrow
    assert 1 <= saved["max_steps"] < 113 and saved["epochs"] == 1
    assert saved["lr"] == preset["lr"] != get_model("cnn-classifier").presets["budget"]["lr"]
    again = disgen.train(
        "cnn-classifier",
        preset="budget",
        model_args=narrow,
        lr=saved["lr"],
        max_steps=saved["max_steps"],
        epochs=saved["epochs"],
        dataset_obj=many,
        run_dir=str(tmp_path / "told"),
        **opts,
    )
    assert history(run) == history(again)
    disgen.train("cnn-classifier", time_budget=0.6, lr=0.02, dataset_obj=many, run_dir=str(tmp_path / "lr"), **opts)
    saved = json.loads((tmp_path / "lr" / "config.json").read_text())
    assert saved["model_args"] == narrow and saved["lr"] == 0.02
    few = subset(mnist_mini, 120, 100)  # 4 steps an epoch: a budget of 3 s holds many
    disgen.train("cnn-classifier", time_budget=3.0, dataset_obj=few, run_dir=str(tmp_path / "long"), **opts)
    long = json.loads((tmp_path / "long" / "config.json").read_text())
    assert long["model_args"] == {"pool_first": True} and long["lr"] == 0.01
