"""The Python API's Run: the same checkpoint rule as every command, a short repr, and the
attribute names of the command line's JSON."""

from __future__ import annotations

import json

import disgen


def test_train_and_load_give_the_run_on_the_checkpoint_every_command_takes(tmp_path, idx_dir):
    """`disgen.train` returned the last epoch's weights while `run.final`, `disgen.load` and every
    command used best.pt: one rule now, auto (best.pt where the run has one)."""
    run = disgen.train("mlp-classifier", dataset=str(idx_dir), epochs=6, lr=0.01, progress=False, run_dir=str(tmp_path))
    assert run.checkpoint == "best" and run.epoch == run.final["checkpoint_epoch"]
    assert run.epoch < 6  # the premise: this run's best validation epoch is not its last
    assert run.evaluate()["accuracy"] == run.final["test_accuracy"]
    loaded = disgen.load(tmp_path)
    assert (loaded.checkpoint, loaded.epoch) == (run.checkpoint, run.epoch)
    assert loaded.evaluate() == run.evaluate()
    assert [r["epoch"] for r in run.history] == [1, 2, 3, 4, 5, 6]


def test_a_runs_repr_is_one_short_line_and_its_directory_is_run_dir(classifier_run):
    text = repr(classifier_run)
    assert text == (
        f"Run({str(classifier_run.run_dir)!r}, model='mlp-classifier', dataset='mnist-mini', checkpoint='best', "
        f"epoch={classifier_run.epoch})"
    )
    assert classifier_run.dir == classifier_run.run_dir  # the older name, kept
    assert json.loads((classifier_run.run_dir / "config.json").read_text())["run_dir"] == str(classifier_run.run_dir)
