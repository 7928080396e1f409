"""The command line: real short runs in tmp_path through ``disgen.cli.main`` (and once through
``python -m disgen``), the files each command writes, and one-line errors for bad input."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_disgen
from PIL import Image

import disgen
from disgen import runs
from disgen.cli import main
from disgen.data.idx import write_idx
from disgen.models import get_model, list_models


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def read_csv(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


# ---- train ------------------------------------------------------------------------------------


def test_train_on_idx_directory(capsys, tmp_path, idx_dir):
    run_dir = tmp_path / "run"
    code, out, err = cli(
        capsys,
        "train",
        "mlp-classifier",
        "--dataset",
        idx_dir,
        "--epochs",
        "1",
        "--run-dir",
        run_dir,
        "--lr",
        "0.002",
        "--hidden",
        "64,32",
        "--no-progress",
    )
    assert code == 0, err
    result = json.loads(out)
    record, final = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert result == {
        "run_dir": str(run_dir),
        "epochs": 1,
        "val_accuracy": record["val_accuracy"],
        "val_loss": record["val_loss"],
        "checkpoint": "best",
        "checkpoint_epoch": 1,
        "test_accuracy": final["test_accuracy"],
        "test_loss": final["test_loss"],
    }
    cfg = json.loads((run_dir / "config.json").read_text())
    assert (cfg["dataset"], cfg["epochs"], cfg["lr"]) == (str(idx_dir), 1, 0.002)
    assert tuple(disgen.load(run_dir).nets["model"].fc.weight.shape) == (10, 32)  # --hidden 64,32
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert f"run directory: {run_dir}" in err
    # The same directory again, without --resume: refused, nothing touched.
    code, out, err = cli(
        capsys, "train", "mlp-classifier", "--dataset", idx_dir, "--epochs", "1", "--run-dir", run_dir, "--no-progress"
    )
    assert code == 2 and "already holds a training run" in err and out == ""


def test_model_options_are_saved_typed(capsys, tmp_path, idx_dir):
    run_dir = tmp_path / "run"
    code, _, err = cli(
        capsys,
        "train",
        "mlp-classifier",
        "--dataset",
        idx_dir,
        "--epochs",
        "1",
        "--run-dir",
        run_dir,
        "--hidden",
        "64,32",
        "--dropout",
        "0.5",
        "--no-progress",
    )
    assert code == 0, err
    model_args = json.loads((run_dir / "config.json").read_text())["model_args"]
    assert (model_args["hidden"], model_args["dropout"]) == ([64, 32], 0.5)


def test_train_in_a_subprocess(tmp_path, idx_dir):
    run_dir = tmp_path / "ae"
    proc = run_disgen(
        "train",
        "mlp-autoencoder",
        "--dataset",
        str(idx_dir),
        "--epochs",
        "1",
        "--run-dir",
        str(run_dir),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["epochs"] == 1 and result["run_dir"] == str(run_dir)
    assert 0 < result["test_mse"] < 0.5
    assert result["test_mse"] == json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["test_mse"]
    assert (run_dir / "images" / "reconstructions_after.png").is_file()


# ---- eval ---------------------------------------------------------------------------------


def test_eval_classifier_writes_eval_json(capsys, classifier_run, idx_dir):
    d = classifier_run.dir
    expected = disgen.load(d).evaluate()
    code, out, err = cli(capsys, "eval", d)
    assert code == 0, err
    best = classifier_run.final["checkpoint_epoch"]
    written = runs.read_evals(d)[-1]
    assert written == json.loads(out)
    assert written == {
        "dataset": "mnist-mini",
        "split": "test",
        "checkpoint": "best",
        "checkpoint_epoch": best,
        **expected,
    }
    assert written["accuracy"] == classifier_run.final["test_accuracy"] > 0.85
    assert {"accuracy", "loss"} <= set(expected)

    code, out, err = cli(capsys, "eval", d, "--dataset", idx_dir, "--checkpoint", "last")
    assert code == 0, err
    written = runs.read_evals(d)[-1]
    assert written == {
        "dataset": str(idx_dir),
        "split": "test",
        "checkpoint": "last",
        "checkpoint_epoch": 5,
        **disgen.load(d, "last").evaluate(str(idx_dir)),
    }
    keys = [(e["dataset"], e["split"], e["checkpoint"]) for e in runs.read_evals(d)]
    assert len(keys) == len(set(keys))  # one result per dataset, split and checkpoint
    assert {("mnist-mini", "test", "best"), (str(idx_dir), "test", "last")} <= set(keys)


def test_eval_best_checkpoint_is_not_the_last(capsys, tmp_path, idx_dir):
    """A run whose best epoch was its first (as one that overfits): best.pt is epoch 1's, last.pt
    epoch 3's, so --checkpoint best must give other numbers than the default."""
    d = tmp_path / "run"
    base = ["train", "mlp-classifier", "--dataset", idx_dir, "--no-progress", "--run-dir", d]
    assert cli(capsys, *base, "--epochs", "1")[0] == 0
    first = (d / "checkpoints" / "last.pt").read_bytes()
    assert cli(capsys, *base, "--epochs", "3", "--resume")[0] == 0
    (d / "checkpoints" / "best.pt").write_bytes(first)
    results = {}
    for which in ("best", "last"):
        code, out, err = cli(capsys, "eval", d, "--checkpoint", which)
        assert code == 0, err
        results[which] = [e for e in runs.read_evals(d) if e["checkpoint"] == which and e["split"] == "test"][-1]
        assert results[which] == json.loads(out)
        assert results[which] == {
            "dataset": str(idx_dir),
            "split": "test",
            "checkpoint": which,
            "checkpoint_epoch": 1 if which == "best" else 3,
            **disgen.load(d, which).evaluate(),
        }
    assert results["best"]["accuracy"] != results["last"]["accuracy"]
    assert results["best"]["loss"] > results["last"]["loss"]  # epoch 1 against epoch 3


def test_eval_autoencoder_reports_mse(capsys, autoencoder_run):
    d = autoencoder_run.dir
    code, out, err = cli(capsys, "eval", d)
    assert code == 0, err
    written = runs.read_evals(d)[-1]
    assert {"dataset", "split", "checkpoint", "mse"} <= set(written)
    assert written["mse"] == disgen.load(d).evaluate()["mse"]
    assert 0 < written["mse"] < 0.2


# ---- predict ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory, classifier_run, mnist_mini):
    """Test digits the classifier gets right with confidence, saved as PNGs of several kinds.

    Returns (folder, [(path, true label)]) with 28x28 greys, a dark-on-light 100x100 RGB and an
    RGBA drawing (black ink, transparent page)."""
    images, labels = mnist_mini.test.images[:200], mnist_mini.test.labels[:200]
    probs = classifier_run.predict(images)
    confident = [i for i in range(200) if probs[i].argmax() == labels[i] and probs[i].max() > 0.95]
    picks = confident[:7]
    folder = tmp_path_factory.mktemp("digits")
    files = []
    for n, i in enumerate(picks):
        grey = images[i, 0].numpy()
        label = int(labels[i])
        if n == 5:  # dark ink on a light page, larger, in colour
            big = Image.fromarray(255 - grey).resize((100, 100), Image.BILINEAR).convert("RGB")
            path = folder / f"d{n}_rgb_dark_on_light.png"
            big.save(path)
        elif n == 6:  # black ink whose alpha is the stroke, on a transparent page
            rgba = np.zeros((28, 28, 4), dtype=np.uint8)
            rgba[..., 3] = grey
            path = folder / f"d{n}_rgba.png"
            Image.fromarray(rgba, "RGBA").save(path)
        else:
            path = folder / f"d{n}_grey.png"
            Image.fromarray(grey).save(path)
        files.append((path, label, i))
    return folder, files


def check_csv(text: str, n: int) -> tuple[list[str], list[str], torch.Tensor]:
    header, rows = read_csv(text)
    assert header == ["input", "label"] + [str(i) for i in range(10)]  # a column per class, by name
    assert len(rows) == n
    probs = torch.tensor([[float(v) for v in r[2:]] for r in rows], dtype=torch.float64)
    assert torch.allclose(probs.sum(1), torch.ones(n, dtype=torch.float64), atol=1e-5)
    assert ((probs >= 0) & (probs <= 1)).all()
    assert [r[1] for r in rows] == [str(int(p.argmax())) for p in probs]
    return [r[0] for r in rows], [r[1] for r in rows], probs


def test_predict_image_files(capsys, classifier_run, digit_files, mnist_mini):
    _, files = digit_files
    code, out, err = cli(capsys, "predict", classifier_run.dir, *[f for f, _, _ in files])
    assert code == 0, err
    names, labels, probs = check_csv(out, len(files))
    assert names == [str(f) for f, _, _ in files]
    truth = [str(label) for _, label, _ in files]
    right = sum(a == b for a, b in zip(labels, truth))
    assert right >= len(files) - 1, (labels, truth)
    # The RGB and RGBA drawings are read as the digit they show.
    assert labels[5:] == truth[5:]
    # 28x28 greys pass through unchanged: the same probabilities as the API on the raw digits.
    raw = classifier_run.predict(mnist_mini.test.images[[i for _, _, i in files[:5]]])
    assert torch.allclose(probs[:5], raw.double(), atol=1e-6)


def test_predict_folder_to_csv_file(capsys, tmp_path, classifier_run, digit_files):
    folder, files = digit_files
    out_csv = tmp_path / "preds.csv"
    code, out, err = cli(capsys, "predict", classifier_run.dir, folder, "--out", out_csv)
    assert code == 0, err
    assert out == "" and f"wrote {len(files)} predictions to {out_csv}" in err
    names, labels, _ = check_csv(out_csv.read_text(), len(files))
    assert names == sorted(str(f) for f, _, _ in files)
    one = tmp_path / "one.csv"
    code, out, err = cli(capsys, "predict", classifier_run.dir, files[0][0], "--out", one)
    assert code == 0 and f"wrote 1 prediction to {one}" in err


def test_predict_idx_file(capsys, tmp_path, classifier_run, mnist_mini):
    images, labels = mnist_mini.test.images[:40], mnist_mini.test.labels[:40]
    path = write_idx(tmp_path / "some-images-idx3-ubyte", images[:, 0])
    code, out, err = cli(capsys, "predict", classifier_run.dir, path)
    assert code == 0, err
    names, predicted, probs = check_csv(out, 40)
    assert names == [str(i) for i in range(40)]
    assert torch.allclose(probs, classifier_run.predict(images).double(), atol=1e-6)
    accuracy = np.mean([p == str(int(t)) for p, t in zip(predicted, labels)])
    assert accuracy >= 0.8


# ---- reconstruct --------------------------------------------------------------------------------


def test_reconstruct_writes_grid(capsys, tmp_path, autoencoder_run, mnist_mini):
    images = mnist_mini.test.images[:7]
    path = write_idx(tmp_path / "x-idx3-ubyte", images[:, 0])
    grid = tmp_path / "out" / "grid.png"
    code, out, err = cli(capsys, "reconstruct", autoencoder_run.dir, path, "--out", grid)
    assert code == 0, err
    assert f"reconstructions of 7 images to {grid}" in err
    with Image.open(grid) as im:
        assert im.format == "PNG"
        # a row of 7 originals, a row of reconstructions, 28-px digits drawn at 56 px as the other grids
        assert im.size == (7 * 58 + 2, 2 * 58 + 2)
        pixels = np.asarray(im.convert("L"))
    # Top-left tile is the first original, exactly (each pixel 2x2); the tile below is its reconstruction.
    assert np.array_equal(pixels[2:58:2, 2:58:2], images[0, 0].numpy())
    assert np.array_equal(pixels[3:58:2, 3:58:2], images[0, 0].numpy())
    recon = (autoencoder_run.reconstruct(images[:1])[0, 0] * 255).round().to(torch.uint8).numpy()
    assert np.abs(pixels[60:116:2, 2:58:2].astype(int) - recon.astype(int)).max() <= 1


def test_reconstruct_of_many_images_draws_the_first_hundred_and_says_so(capsys, tmp_path, autoencoder_run, mnist_mini):
    """`reconstruct RUN t10k-images...gz --out x.png` wrote a 582x11,602 PNG without a word."""
    path = write_idx(tmp_path / "x-idx3-ubyte", mnist_mini.test.images[:250, 0])
    code, out, err = cli(capsys, "reconstruct", autoencoder_run.dir, path, "--out", tmp_path / "g.png")
    assert code == 0, err
    assert "wrote originals and reconstructions of the first 100 of 250 images to" in err
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (10 * 58 + 2, 20 * 58 + 2)  # 10 rows of originals, each with its reconstructions
    with pytest.raises(SystemExit):
        main(["reconstruct", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--out GRID.png the PNG to write: rows of originals, each followed by its reconstructions" in text
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "--out FILE.csv the file to write the predictions to (default: standard output)" in " ".join(
        capsys.readouterr().out.split()
    )
    guide = (Path(__file__).resolve().parents[1] / "docs" / "guide.md").read_text()  # it showed [--out predictions.csv]
    assert (
        "disgen predict RUN_DIR INPUT... [--out FILE.csv]  # classifiers, semi-supervised AAEs; the CSV to stdout"
        in guide
    )


def test_reconstruct_refuses_a_classifier(capsys, tmp_path, classifier_run, digit_files):
    _, files = digit_files
    code, out, err = cli(capsys, "reconstruct", classifier_run.dir, files[0][0], "--out", tmp_path / "g.png")
    assert code == 2 and "is not an autoencoder" in err
    assert not (tmp_path / "g.png").exists()


# ---- listings ------------------------------------------------------------------------------------


def test_models_lists_every_model_and_preset(capsys):
    code, out, err = cli(capsys, "models")
    assert code == 0
    lines = out.splitlines()
    for name in list_models():
        spec = get_model(name)
        (i,) = [i for i, line in enumerate(lines) if line.split()[0] == name]
        assert f"[{spec.objective}]" in lines[i]
        shown = [line.split()[1] for line in lines[i + 1 : i + 1 + len(spec.presets)]]
        assert [line.split()[0] for line in lines[i + 1 : i + 1 + len(spec.presets)]] == ["--preset"] * len(
            spec.presets
        )
        assert shown == list(spec.presets)
    # Every preset's settings start in one column (budget-short pushed its line out of line).
    starts = {len(line) - len(line.split(None, 2)[2]) for line in lines if line.startswith("    --preset ")}
    assert len(starts) == 1, starts


def test_datasets_lists_mnist_mini(capsys):
    code, out, _ = cli(capsys, "datasets")
    assert code == 0
    assert any(line.split()[0] == "mnist-mini" for line in out.splitlines())


# ---- errors --------------------------------------------------------------------------------------


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("disgen: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


TRAIN_ERRORS = {
    "unknown-dataset": (["--dataset", "nope"], ["unknown dataset 'nope'", "mnist-mini"]),
    "negative-epochs": (["--epochs", "-3"], ["--epochs must be at least 1 (got -3)"]),
    "zero-batch": (["--batch-size", "0"], ["--batch-size must be at least 1 (got 0)"]),
    "not-a-number": (["--epochs", "abc"], ["bad value 'abc' for epochs"]),
    "unknown-preset": (["--preset", "bogus"], ["no preset 'bogus'", "seed", "default"]),
    "bad-optimizer": (["--optimizer", "bogus"], ["--optimizer 'bogus'", "adam, adamw, sgd"]),
    "bad-schedule": (["--lr-schedule", "linear"], ["--lr-schedule 'linear'", "onecycle"]),
    "bad-lr": (["--lr", "0"], ["--lr must be positive"]),
    "missing-config-file": (["--config", "/nonexistent/cfg.json"], ["/nonexistent/cfg.json"]),
    "bad-model-option": (["--act", "swishy"], ["mlp-classifier --act 'swishy': choose one of sigmoid, relu"]),
}


@pytest.mark.parametrize("case", sorted(TRAIN_ERRORS))
def test_train_bad_input_is_one_line_error(capsys, tmp_path, case):
    flags, words = TRAIN_ERRORS[case]
    run_dir = tmp_path / "run"
    code, out, err = cli(
        capsys, "train", "mlp-classifier", "--epochs", "1", "--run-dir", run_dir, "--no-progress", *flags
    )
    assert_one_line_error(code, err, *words)
    assert out == ""
    assert not (run_dir / "checkpoints" / "last.pt").exists()


def test_unknown_model_is_one_error_listing_the_models(capsys):
    code, _, err = cli(capsys, "train", "no-such-model")
    assert_one_line_error(code, err, "unknown model 'no-such-model'", "mlp-classifier")
    assert "did you mean" not in err  # nothing is near it


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "cnn-clasifier"], "unknown model 'cnn-clasifier': did you mean cnn-classifier?"),
        (["trian", "mlp-classifier"], "unknown command 'trian': did you mean train?"),
        (["sampel", "RUN"], "unknown command 'sampel': did you mean sample?"),
    ],
)
def test_misspelt_names_get_a_did_you_mean(capsys, args, words):
    code, _, err = cli(capsys, *args)
    assert_one_line_error(code, err, words)


def test_eval_missing_run_dir(capsys, tmp_path):
    code, _, err = cli(capsys, "eval", tmp_path / "nowhere")
    assert_one_line_error(code, err, str(tmp_path / "nowhere"), "not a disgen run directory")


def test_predict_non_image_file(capsys, tmp_path, classifier_run):
    notes = tmp_path / "notes.png"
    notes.write_text("this is not a picture\n")
    code, out, err = cli(capsys, "predict", classifier_run.dir, notes)
    assert_one_line_error(code, err, "cannot read image", str(notes))
    assert out == ""


def test_predict_missing_input(capsys, tmp_path, classifier_run):
    code, _, err = cli(capsys, "predict", classifier_run.dir, tmp_path / "gone.png")
    assert_one_line_error(code, err, str(tmp_path / "gone.png"), "does not exist")


def test_predict_on_autoencoder_is_refused(capsys, autoencoder_run, digit_files):
    _, files = digit_files
    code, _, err = cli(capsys, "predict", autoencoder_run.dir, files[0][0])
    assert_one_line_error(code, err, "does not classify")


def test_model_option_help_names_the_default_presets_value(capsys):
    """`disgen train aae --help`: an option the default preset sets shows both defaults."""
    with pytest.raises(SystemExit):
        main(["train", "aae", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--consistency CONSISTENCY semi-supervised mode: weight of a consistency term on the unlabelled "
        "batch; 0: the paper's AAE; default 0.0; the default preset: 1.0" in text
    )
    assert "figures); default 10; the default preset: 5" in text  # --z-dim
    assert "them; default (1000, 1000) " in text and "(1000, 1000); the default" not in text  # --hidden: kept


def test_resume_of_a_folder_with_no_run_is_an_error_naming_the_nearest_runs(capsys, tmp_path, idx_dir, monkeypatch):
    """A mistyped --run-dir with --resume trained a fresh run and exited 0; now it is refused,
    naming the folder and the run directories nearest in name, and nothing is written. The
    working directory's runs/ is searched too: here it holds none (the demo's runs/demo-... in a
    checkout must not change the result)."""
    monkeypatch.chdir(tmp_path)
    base = ["train", "mlp-classifier", "--dataset", idx_dir, "--epochs", "1", "--no-progress"]
    assert cli(capsys, *base, "--run-dir", tmp_path / "mlp-run-1")[0] == 0
    (tmp_path / "other").mkdir()  # a folder that is no run is not offered
    typo = tmp_path / "mlp-rnu-1"
    code, out, err = cli(capsys, *base, "--run-dir", typo, "--resume")
    assert_one_line_error(
        code,
        err,
        f"--resume: {typo} holds no run",
        f"nearest run directories: {tmp_path / 'mlp-run-1'}.",
        "--resume auto",
    )
    assert "other" not in err and out == "" and not typo.exists()


def test_tests_run_in_an_empty_working_directory_not_the_checkout():
    """conftest moves every test into an empty folder: `make demo` then `make test` (the README's
    order) once failed because a test found the demo's runs/ in the checkout."""
    here = Path.cwd().resolve()
    checkout = Path(__file__).resolve().parents[1]
    assert here != checkout and checkout not in here.parents
    # A path given in the environment relative to where `make test` ran (.ci/run's wheels) is read
    # from there, not from this folder.
    paths = {k: v for k, v in os.environ.items() if k.startswith("DISGEN_") and "/" in v}
    assert all(os.path.isabs(v) for v in paths.values()), paths


def test_resume_auto_starts_a_run_then_continues_it(capsys, tmp_path, idx_dir):
    d = tmp_path / "run"
    base = ["train", "mlp-classifier", "--dataset", idx_dir, "--no-progress", "--run-dir", d, "--resume", "auto"]
    code, out, err = cli(capsys, *base, "--epochs", "1")
    assert code == 0, err
    assert [r["epoch"] for r in runs.read_metrics(d)] == [1]
    code, out, err = cli(capsys, *base, "--epochs", "2")
    assert code == 0, err
    assert f"resuming {d} after epoch 1" in err
    assert [r["epoch"] for r in runs.read_metrics(d)] == [1, 2]
    code, _, err = cli(capsys, "train", "mlp-classifier", "--resume", "--no-progress")
    assert_one_line_error(code, err, "--resume needs --run-dir")


def test_eval_on_a_dataset_with_other_classes_warns(capsys, tmp_path, classifier_run, idx_dir):
    """A digit classifier scored on a dataset whose classes are others (cat, dog): a warning naming
    both, and the result kept beside the run's own in eval.json; a dataset of the same classes: none."""
    d = tmp_path / "run"
    shutil.copytree(classifier_run.dir, d)
    pets = tmp_path / "pets"
    for k, name in enumerate(("cat", "dog")):
        (pets / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((28, 28), 40 * k + i, dtype=np.uint8)).save(pets / name / f"{i}.png")
    code, out, err = cli(capsys, "eval", d, "--dataset", pets)
    assert code == 0, err
    assert (
        f"disgen: warning: {pets}'s classes (cat, dog) differ from those the run was trained on "
        "(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"
    ) in err
    assert {e["dataset"] for e in runs.read_evals(d)} >= {"mnist-mini", str(pets)}
    code, out, err = cli(capsys, "eval", d, "--dataset", idx_dir)
    assert code == 0 and "warning" not in err
