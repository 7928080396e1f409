"""``--time-budget``: a deadline. The run plans its steps and schedule from the time its own steps
take, plans again as that changes, stops when its seconds are spent, and writes the steps it took
(max_steps, epochs, budget_plan) into config.json, so a rerun of that config or a resume is exact."""

from __future__ import annotations

import json
import math
import re

import pytest
from conftest import stop_after_epoch, subset

import disgen
from disgen.errors import DisgenError
from disgen.models import get_model, resolve
from disgen.objectives.optim import plan_progress, schedule_at
from disgen.training import budget
from disgen.training.trainer import Trainer


def history(run) -> list[dict]:
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in run.history]


@pytest.fixture(scope="module")
def data(mnist_mini):
    return subset(mnist_mini, 600, 200)


class LoadedMachine:
    """A fake clock that only the training steps move: each step of the run costs ``fast``
    seconds until ``slow_from`` seconds have passed, then ``slow`` (another job took the cores).
    ``taken`` counts the steps, ``seconds`` what they cost: the run's real training time, as a
    clock on the wall would have shown it."""

    def __init__(self, monkeypatch, fast: float, slow: float, slow_from: float, stall: tuple[float, float] = (0, 0)):
        self.now, self.taken = 0.0, 0
        self.fast, self.slow, self.slow_from = fast, slow, slow_from
        stall_at, stall_seconds = stall  # the first step after stall_at takes stall_seconds more
        original = Trainer.take_step

        def take_step(trainer, batch):
            nonlocal stall_at
            out = original(trainer, batch)
            self.now += self.fast if self.now < self.slow_from else self.slow
            if stall_seconds and self.now >= stall_at:
                self.now, stall_at = self.now + stall_seconds, float("inf")
            self.taken += 1
            return out

        monkeypatch.setattr(Trainer, "take_step", take_step)
        monkeypatch.setattr(budget, "clock", lambda: self.now)


def test_a_budget_run_under_a_competing_load_ends_on_time_and_reruns_exactly(tmp_path, data, monkeypatch):
    """Under load, `--time-budget 30` trained 53.8 s: the steps were fixed by timing the first
    ones. Here the machine gets 4x slower a fifth of the way in: the run plans again, ends within
    10% of its budget with its schedule run to the end, and its config.json reruns the same steps."""
    opts = dict(batch_size=50, lr_schedule="onecycle", progress=False, dataset_obj=data)
    with monkeypatch.context() as m:
        machine = LoadedMachine(m, fast=0.01, slow=0.04, slow_from=0.6)
        run = disgen.train("mlp-classifier", time_budget=3.0, run_dir=str(tmp_path / "budget"), **opts)
    assert 0.9 * 3.0 <= machine.now <= 1.1 * 3.0  # a step runs 0.04 s: the run ends within one of its budget
    saved = json.loads((tmp_path / "budget" / "config.json").read_text())
    assert saved["max_steps"] == machine.taken
    assert saved["epochs"] == len(run.history) == math.ceil(machine.taken / 11)  # 540 images in batches of 50
    # Timed fast at first (3 s / 10 ms = 300 steps), planned again as the steps slowed: the steps
    # that fit at 0.04 s after 0.6 s at 0.01 s are 60 + 60 = 120.
    plan = saved["budget_plan"]
    assert plan[0][0] == 0 and len(plan) >= 3 and max(p[1] for p in plan) > 200 and plan[-1][1] <= 130
    assert abs(machine.taken - 120) <= 3
    assert run.history[-1]["lr"] < 0.05 * saved["lr"]  # the schedule was compressed to end by the deadline
    timing = json.loads((tmp_path / "budget" / "run.json").read_text())["time_budget"]
    assert timing["steps"] == machine.taken and timing["seconds"] == pytest.approx(machine.now)
    again = disgen.train(
        "mlp-classifier", config_file=str(tmp_path / "budget" / "config.json"), run_dir=str(tmp_path / "again"), **opts
    )
    assert history(again) == history(run)


def test_a_budget_that_holds_few_steps_says_so(tmp_path, data, monkeypatch, capsys):
    """`--time-budget 2` timed 3 steps in 9.6 s, trained 1 step, and said nothing."""
    LoadedMachine(monkeypatch, fast=0.5, slow=0.5, slow_from=0)
    disgen.train("mlp-classifier", time_budget=2.0, dataset_obj=data, progress=False, run_dir=str(tmp_path))
    err = capsys.readouterr().err
    assert "time budget 2 s: training until 2 s of training steps are spent (evaluation is timed apart)" in err
    assert "time budget 2 s: 2.0 s of training, 4 steps (0.67 epochs, 500.0 ms a step at the end, planned 2 " in err
    assert "warning: 2 s held only 4 steps of mlp-classifier here (0.5 s a step; one epoch is 6 steps)" in err
    assert "1 steps" not in err and json.loads((tmp_path / "config.json").read_text())["max_steps"] == 4


def test_a_budget_of_a_few_slow_steps_ends_within_half_a_step_of_it(tmp_path, data, monkeypatch):
    """1.7 s a step on a 10 s budget (a busy machine): the steps left are rounded, not floored, so
    the run takes 6 steps (10.2 s) rather than stopping at 5 (8.5 s, 15% short)."""
    machine = LoadedMachine(monkeypatch, fast=1.7, slow=1.7, slow_from=0)
    disgen.train("mlp-classifier", time_budget=10.0, dataset_obj=data, progress=False, run_dir=str(tmp_path))
    assert machine.taken == 6 and abs(machine.now - 10.0) <= 0.85


def test_one_stalled_step_does_not_end_a_budget_early(tmp_path, data, monkeypatch):
    """A step that another job held up for 1.5 s, 2 s before the end: planned from the mean of the
    steps since the last plan (two, one of them the stalled one), the run stopped at 97% of its
    budget; from the median of the last steps, it runs to the end."""
    machine = LoadedMachine(monkeypatch, fast=0.1, slow=0.1, slow_from=0, stall=(8.0, 1.5))
    disgen.train("mlp-classifier", time_budget=10.0, dataset_obj=data, progress=False, run_dir=str(tmp_path))
    assert abs(machine.now - 10.0) <= 0.05 + 1e-9, machine.now


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


def test_a_budget_run_killed_mid_way_resumes_with_the_seconds_it_has_left(tmp_path, data, monkeypatch):
    opts = dict(batch_size=50, lr_schedule="cosine", progress=False, dataset_obj=data, run_dir=str(tmp_path))
    machine = LoadedMachine(monkeypatch, fast=0.01, slow=0.01, slow_from=0)
    with monkeypatch.context() as m:
        stop_after_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            disgen.train("mlp-classifier", time_budget=1.0, **opts)
    cut_plan = [k for k in json.loads((tmp_path / "config.json").read_text())["budget_plan"]]
    assert machine.taken == 22 and cut_plan == [[0, 10**9]]  # config.json of the start: no plan yet
    disgen.train("mlp-classifier", resume=True, **opts)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["max_steps"] == machine.taken and 0.9 <= machine.now <= 1.1  # 100 steps of 0.01 s in all
    assert saved["budget_plan"][1] == [5, 100]  # planned at the first timing, kept across the resume


def test_the_plan_spreads_the_progress_left_over_the_steps_planned():
    assert plan_progress(50, [[0, 100]]) == 0.5
    assert plan_progress(150, [[0, 100]]) == 1.0
    plan = [[0, 100], [50, 60]]  # half way, the budget left holds only 10 more steps
    assert [plan_progress(s, plan) for s in (25, 50, 55, 60, 70)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert plan_progress(60, [[0, 100], [50, 150]]) == pytest.approx(0.55)  # slower: the pace slows, no jump
    assert schedule_at("onecycle", 0.0) == 0.04 and schedule_at("onecycle", 0.25) == 1.0
    assert schedule_at("cosine", 0.5) == pytest.approx(0.5) and schedule_at("onecycle", 1.0) == 0.0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"time_budget": 0}, "--time-budget takes seconds of training, a positive number up to 9,676,800 (16 weeks)"),
        ({"time_budget": -5}, "(got -5)"),
        ({"time_budget": float("inf")}, "(got inf)"),
        ({"time_budget": float("nan")}, "(got nan)"),
        ({"time_budget": 1e308}, "(got 1e+308)"),
        ({"time_budget": 1e12}, "(got 1e+12)"),
        ({"max_steps": 10**12}, "--max-steps must be in 1..1,000,000,000 (got 1,000,000,000,000)"),
        ({"epochs": 10**9}, "--epochs must be in 1..1,000,000 (got 1,000,000,000)"),
        ({"budget_plan": [[5, 10]]}, "budget_plan [[5, 10]] is not a plan a --time-budget run writes"),
        ({"budget_plan": [[0, 10], [0, 5]]}, "is not a plan a --time-budget run writes"),
        ({"budget_plan": [[0, 10**15]]}, "is not a plan a --time-budget run writes"),
        ({"time_budget": 10, "epochs": 3}, "--time-budget 10 with --epochs 3: a budget run trains until its seconds"),
    ],
)
def test_budgets_and_steps_beyond_what_can_run_are_refused(tmp_path, options, message):
    """`--time-budget 1e308` ended in an OverflowError traceback; 1e12 wrote epochs of 20 digits."""
    with pytest.raises(DisgenError, match=re.escape(message)):
        disgen.train("mlp-classifier", dataset="mnist-mini", run_dir=str(tmp_path / "r"), **options)
    assert not (tmp_path / "r").exists()


def test_the_eta_counts_the_steps_the_epoch_will_take(tmp_path, data, monkeypatch, capsys):
    """`step 13/57 ... ETA 35 s` where 22 steps ran: the progress line's total ignored the step cap."""
    monkeypatch.setenv("DISGEN_PROGRESS_SECONDS", "1e-9")
    disgen.train("mlp-classifier", max_steps=13, epochs=2, batch_size=50, dataset_obj=data, run_dir=str(tmp_path))
    err = capsys.readouterr().err
    assert (
        "epoch 1/2 step 10/11 (91%)" in err
        and "epoch 2/2 step 1/2 (50%)" in err
        and "/11" not in err.split("epoch 2/2")[1]
    )


def test_a_budget_run_takes_the_models_budget_preset_unless_one_is_named():
    from disgen.models import list_models

    budget_models = [m for m in list_models() if "budget" in get_model(m).presets]
    assert "cnn-classifier" in budget_models
    for model in list_models():
        cfg = resolve(model, {"time_budget": 30.0})
        assert cfg.preset == ("budget" if model in budget_models else "default")
        assert resolve(model, {}).preset == "default"
        if "seed" in get_model(model).presets:  # a model with a source document
            assert resolve(model, {"time_budget": 30.0, "preset": "seed"}).preset == "seed"
    want = get_model("cnn-classifier").presets["budget"]
    cfg = resolve("cnn-classifier", {"time_budget": 30.0})
    assert (cfg.batch_size, cfg.lr, cfg.augment) == (want["batch_size"], want["lr"], want.get("augment", "none"))


def test_a_budget_under_one_epoch_takes_the_narrower_network_and_a_rerun_is_identical(tmp_path, mnist_mini):
    """cnn-classifier with a budget that holds under one epoch of its default network trains the
    ``budget-short`` preset's narrower one and learning rate, recorded in config.json (a learning
    rate the user gave is kept), and a rerun of that config.json draws the same; the timing that
    chose it takes at most a tenth of the budget; a budget of many epochs keeps the budget
    preset's own network."""
    spec = get_model("cnn-classifier")
    preset = spec.presets[spec.short_budget]
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
        config_file=str(tmp_path / "short" / "config.json"),
        dataset_obj=many,
        run_dir=str(tmp_path / "told"),
        progress=False,
    )
    assert history(run) == history(again)
    disgen.train("cnn-classifier", time_budget=0.6, lr=0.02, dataset_obj=many, run_dir=str(tmp_path / "lr"), **opts)
    saved = json.loads((tmp_path / "lr" / "config.json").read_text())
    assert saved["model_args"] == narrow and saved["lr"] == 0.02
    few = subset(mnist_mini, 120, 100)  # 4 steps an epoch: a budget of 3 s holds many
    disgen.train("cnn-classifier", time_budget=3.0, dataset_obj=few, run_dir=str(tmp_path / "long"), **opts)
    long = json.loads((tmp_path / "long" / "config.json").read_text())
    assert long["model_args"] == {"pool_first": True} and long["lr"] == 0.01


def test_timing_for_the_narrower_network_stops_at_a_tenth_of_the_budget(tmp_path, mnist_mini, monkeypatch):
    """Under load, 11.4 of a 30 s budget went on timing. Here each step costs 0.3 s of a 4 s
    budget: the timing stops at the first step past a tenth of it (two steps, 0.6 s), not after
    the five it takes on a quiet machine."""
    clock = [0.0]
    original = Trainer.take_step

    def take_step(trainer, batch):
        clock[0] += 0.3
        return original(trainer, batch)

    monkeypatch.setattr(Trainer, "take_step", take_step)
    monkeypatch.setattr(budget, "clock", lambda: clock[0])
    cfg = resolve("cnn-classifier", dict(epochs=1, batch_size=32, progress=False))
    trainer = Trainer(cfg, tmp_path / "r", subset(mnist_mini, 400, 100))
    timing = budget.time_steps(trainer, 4.0)
    assert timing == {"step_seconds": pytest.approx(0.3), "steps_timed": 2, "timing_seconds": pytest.approx(0.6)}
