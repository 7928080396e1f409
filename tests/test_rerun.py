"""A run's config.json: ``disgen train MODEL --config RUN_DIR/config.json`` reruns it as it is, into
a new run directory (the README's command, run as written), and ``--resume`` changes only the
options a resume may change, refusing the rest before anything is written."""

from __future__ import annotations

import json

import pytest
from conftest import subset

from disgen import runs
from disgen.cli import main
from disgen.config import load_config_file
from disgen.errors import DisgenError
from disgen.models import list_models, resolve


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def epochs_of(run_dir) -> list[dict]:
    """metrics.jsonl without the seconds each part took."""
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in runs.read_metrics(run_dir)]


@pytest.mark.parametrize("model", list_models())
def test_every_models_config_json_reads_back_as_the_same_config(tmp_path, model):
    """A run's config.json holds the model's name and the run's own directory: read back with
    --config, the name is checked and dropped, the directory (which holds a run) dropped, and the
    rest resolves to the same options."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = resolve(model, {"run_dir": str(run_dir)})
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
    again = resolve(model, {}, str(run_dir / "config.json"))
    assert again.run_dir is None
    assert {**again.to_dict(), "run_dir": cfg.run_dir} == cfg.to_dict()
    other = next(m for m in list_models() if m != model)
    wrong = f"is a config of '{model}', not '{other}': train it with `disgen train {model}"
    with pytest.raises(DisgenError, match=wrong):
        resolve(other, {}, str(run_dir / "config.json"))


def test_a_config_files_run_dir_that_holds_no_run_is_kept(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"run_dir": str(tmp_path / "new"), "epochs": 2}))
    assert load_config_file(tmp_path / "c.json", "mlp-classifier") == {"run_dir": str(tmp_path / "new"), "epochs": 2}


def test_the_readmes_rerun_of_a_time_budget_run_is_exact_into_a_new_run_directory(
    capsys, tmp_path, monkeypatch, idx_dir
):
    """README: "`disgen train MODEL --config RUN_DIR/config.json` reruns the same steps exactly".
    Run as written, from a working directory of its own: a new run directory under runs/, the same
    steps and metrics, and the first run untouched."""
    monkeypatch.chdir(tmp_path)
    first = tmp_path / "first"
    base = ["train", "mlp-classifier", "--no-progress"]
    code, out, err = cli(capsys, *base, "--dataset", idx_dir, "--time-budget", "1", "--run-dir", first)
    assert code == 0, err
    before = (first / "metrics.jsonl").read_text()
    code, out, err = cli(capsys, *base, "--config", first / "config.json")
    assert code == 0, err
    second = tmp_path / json.loads(out)["run_dir"]
    assert second.parent == tmp_path / "runs" and second.name.startswith("mlp-classifier-tiny-")
    assert "time budget" not in err  # the steps are the first run's: nothing is timed
    assert epochs_of(second) == epochs_of(first)
    saved, again = (json.loads((d / "config.json").read_text()) for d in (first, second))
    assert {**again, "run_dir": None} == {**saved, "run_dir": None}
    assert (first / "metrics.jsonl").read_text() == before


@pytest.fixture(scope="module")
def data(mnist_mini):
    return subset(mnist_mini, 300, 100)
