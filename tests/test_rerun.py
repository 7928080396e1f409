"""A run's config.json: ``disgen train MODEL --config RUN_DIR/config.json`` reruns it as it is, into
a new run directory (the README's command, run as written), and ``--resume`` changes only the
options a resume may change, refusing the rest before anything is written."""

from __future__ import annotations

import json
import shutil

import pytest

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


def one_line_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("disgen: error: "), err
    return lines[0]


def files_of(run_dir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != "train.lock"}


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory, idx_dir):
    d = tmp_path_factory.mktemp("resume") / "run"
    assert main(["train", "mlp-classifier", "--dataset", str(idx_dir), "--epochs", "2", "--run-dir", str(d)]) == 0
    return d


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--hidden", "64"], "--hidden 64 (the run's: 100,50)"),
        (["--optimizer", "sgd"], "--optimizer sgd (the run's: adam)"),
        (["--time-budget", "3"], "--time-budget 3 (the run's: none)"),
        (["--batch-size", "10", "--seed", "4"], "--batch-size 10 (the run's: 100), --seed 4 (the run's: 0)"),
        (["--epochs", "1"], "--epochs 1: "),
    ],
)
def test_a_resume_refuses_options_it_may_not_change_before_writing_anything(capsys, tmp_path, two_epochs, flags, named):
    """`--resume --hidden 64` wrote the new sizes into config.json and left a run that nothing could
    load; `--resume --epochs 1` on a 2-epoch run rewrote config.json silently. Each is now one
    error, the run directory is left byte for byte, and the run still resumes and evaluates."""
    d = tmp_path / "run"
    shutil.copytree(two_epochs, d)
    before = files_of(d)
    line = one_line_error(*cli(capsys, "train", "mlp-classifier", "--resume", "--run-dir", d, *flags)[::2])
    assert named in line and "nothing was written" in line
    if flags[0] != "--epochs":
        assert "A resume may change only --epochs (to more), --lr and how it runs (--device, " in line
        assert f"start a new run: `disgen train mlp-classifier --config {d / 'config.json'}` with them" in line
    else:
        assert "has completed 2 epochs, and a resume only adds epochs: give --epochs 3 or more" in line
    assert files_of(d) == before
    assert cli(capsys, "train", "mlp-classifier", "--resume", "--run-dir", d, "--no-progress")[0] == 0
    assert cli(capsys, "eval", d)[0] == 0


def test_a_resume_may_add_epochs_and_change_the_lr_and_says_which_in_help(capsys, tmp_path, two_epochs):
    d = tmp_path / "run"
    shutil.copytree(two_epochs, d)
    code, out, err = cli(capsys, "train", "mlp-classifier", "--resume", "--run-dir", d, "--epochs", "3", "--lr", "5e-4")
    assert code == 0, err
    saved = json.loads((d / "config.json").read_text())
    assert (saved["epochs"], saved["lr"]) == (3, 5e-4) and len(runs.read_metrics(d)) == 3
    with pytest.raises(SystemExit):
        main(["train", "mlp-classifier", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "may change only --epochs (to more; not for a --time-budget or --max-steps run), --lr and how it runs" in text
    )


def test_a_budget_runs_resume_keeps_its_steps(capsys, tmp_path, idx_dir):
    """A --time-budget run's steps are fixed in config.json: --epochs cannot stretch them on a resume."""
    d = tmp_path / "run"
    base = ["train", "mlp-classifier", "--run-dir", d, "--no-progress"]
    assert cli(capsys, *base, "--dataset", idx_dir, "--max-steps", "3", "--epochs", "1")[0] == 0
    before = files_of(d)
    line = one_line_error(*cli(capsys, *base, "--resume", "--epochs", "4")[::2])
    assert (
        "--epochs 4 (the run's: 1) cannot change on a resume (a --time-budget or --max-steps run: its steps decide"
        in line
    )
    assert files_of(d) == before
