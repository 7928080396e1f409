"""What the user made is never deleted or overwritten, and the user's folders are read as the user
meant: export folders (hidden files, a file name as --out, another run's export, a full disk),
--run-dir (a folder of other files, inside the dataset), kaggle-organize's names, eval on a
read-only run, image folders (one level of classes, a summary, the same image in two classes) and
predict (the model's kind first, unreadable images skipped, class names as columns made safe for
spreadsheets, a labels IDX file). Faults are counted as in test_hardening.py."""

from __future__ import annotations

import csv
import io
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SUBPROCESS_ENV, cli_error, run_disgen
from PIL import Image
from test_hardening import can_mount_tmpfs

from disgen.cli import main
from disgen.data.idx import write_idx

needs_tmpfs = pytest.mark.skipif(not can_mount_tmpfs(), reason="cannot mount a private tmpfs here")


def tree(folder: Path) -> dict:
    """Every file under ``folder`` (hidden ones too) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def digit_pngs(folder: Path, images: torch.Tensor, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for image, name in zip(images, names):
        Image.fromarray(image[0].numpy()).save(folder / name)


# ---- export folders -------------------------------------------------------------------------------


@pytest.mark.parametrize("hidden", [".draft.tmp", ".notes", ".disgen-export.json"])
def test_export_never_deletes_a_hidden_file_of_the_users(tmp_path, classifier_run, capsys, hidden, reliability):
    """``export --out U`` deleted U/.draft.tmp (a name like its own temporary files) before refusing
    U as no export folder. Now U is refused first, and nothing in it is touched."""
    mine = tmp_path / "U"
    mine.mkdir()
    (mine / hidden).write_text("the user's draft")
    before = tree(mine)
    code, err = cli_error(capsys, "export", classifier_run.dir, "--format", "safetensors", "--out", mine)
    assert code == 2 and f"--out {mine} is not a disgen export folder" in err and hidden in err, err
    assert tree(mine) == before
    reliability.record(
        "inputs",
        "export --out a folder holding only a hidden file of the user's (.draft.tmp, .notes, a damaged manifest)",
        "refused before anything was touched; the file intact",
    )


@pytest.mark.parametrize("name", ["model.onnx", "net.pt", "weights.safetensors"])
def test_export_out_named_like_a_file_is_refused(tmp_path, classifier_run, capsys, name, reliability):
    code, err = cli_error(capsys, "export", classifier_run.dir, "--format", "onnx", "--out", tmp_path / name)
    assert code == 2 and f"--out {tmp_path / name} names a file, but an export writes a folder" in err, err
    assert list(tmp_path.iterdir()) == []
    reliability.record(
        "inputs", "export --out model.onnx (a file's name)", "one clear error naming a folder to give; nothing made"
    )


def test_export_into_another_runs_export_needs_force(tmp_path, classifier_run, autoencoder_run, capsys, reliability):
    """An earlier export of another run in --out was replaced without a word; now it is refused,
    naming that run, unless --force (and an export of the same run replaces its own, as before)."""
    out = tmp_path / "out"
    assert main(["export", str(classifier_run.dir), "--format", "safetensors", "--out", str(out)]) == 0
    before = tree(out)
    code, err = cli_error(capsys, "export", autoencoder_run.dir, "--format", "safetensors", "--out", out)
    assert code == 2 and f"--out {out} holds an export of another run ({classifier_run.dir}" in err, err
    assert "add --force to replace it" in err and tree(out) == before
    assert main(["export", str(classifier_run.dir), "--format", "torchscript", "--out", str(out)]) == 0  # its own
    assert main(["export", str(autoencoder_run.dir), "--format", "safetensors", "--out", str(out), "--force"]) == 0
    manifest = json.loads((out / "disgen-export.json").read_text())
    assert manifest["run_dir"] == str(autoencoder_run.dir) and manifest["complete"]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "disgen-export.json", "model.safetensors"]
    reliability.record(
        "inputs",
        "export --out into an earlier export of another run",
        "refused naming that run, nothing touched; replaced with --force",
    )


@needs_tmpfs
def test_export_onto_a_full_disk_names_the_file_and_leaves_nothing(tmp_path, classifier_run, reliability):
    """The disk fills up while the weights are written: one error naming the file, and the folder
    the export made is gone (it left a partial file and a manifest)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = mnt / "export"
    q = shlex.quote
    command = [sys.executable, "-m", "disgen", "export", str(classifier_run.dir), "--format", "safetensors"]
    script = (
        f"mount -t tmpfs -o size=64k disgen-test {q(str(mnt))} && "
        f"{' '.join(map(q, command))} --out {q(str(out))}; code=$?; ls -a {q(str(mnt))}; exit $code"
    )
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=SUBPROCESS_ENV, capture_output=True, text=True)
    line = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert line.startswith(f"disgen: error: could not write {out / 'model.safetensors'}: No space left on device")
    assert done.stdout.split() == [".", ".."]  # the export's folder removed with what it held
    reliability.record(
        "disk",
        "export onto a full disk (64 KiB tmpfs)",
        "one clear error naming the file; the folder it made removed",
    )


@pytest.fixture(scope="module")
def no_val_run(tmp_path_factory, idx_dir) -> Path:
    d = tmp_path_factory.mktemp("noval") / "run"
    args = ["train", "mlp-classifier", "--dataset", str(idx_dir), "--epochs", "1", "--hidden", "8"]
    assert main([*args, "--val-split", "0", "--no-progress", "--run-dir", str(d)]) == 0
    return d


@pytest.mark.parametrize("command", [["export", "--format", "safetensors"], ["eval"]])
def test_checkpoint_best_of_a_run_without_validation_says_why(no_val_run, capsys, command, reliability):
    code, err = cli_error(capsys, command[0], no_val_run, *command[1:], "--checkpoint", "best")
    assert code == 2 and err == (
        f"disgen: error: --checkpoint best: {no_val_run} has no checkpoints/best.pt (it was trained with "
        "--val-split 0: no validation split chose a best epoch); use --checkpoint last"
    )
    assert not (no_val_run / "exports").exists()
    reliability.record(
        "inputs", "--checkpoint best of a --val-split 0 run (export, eval)", "one error saying why there is none"
    )


@needs_tmpfs
def test_eval_of_a_read_only_run_prints_its_result(tmp_path, classifier_run, reliability):
    """``eval`` on a read-only run directory computed, printed nothing and failed on eval.json;
    now the result is printed first and a warning says it was not kept."""
    run = tmp_path / "run"
    shutil.copytree(classifier_run.dir, run)
    (run / "eval.json").unlink(missing_ok=True)
    q = shlex.quote(str(run))
    command = " ".join(map(shlex.quote, [sys.executable, "-m", "disgen", "eval", str(run)]))
    script = f"mount --bind {q} {q} && mount -o remount,ro,bind {q} && {command}"
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=SUBPROCESS_ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["split"] == "test" and result["accuracy"] > 0.85
    assert f"the result above was not kept in eval.json: could not write {run / 'eval.json'}" in done.stderr
    assert not (run / "eval.json").exists()
    reliability.record(
        "disk", "eval on a read-only run directory", "the result printed first; a warning that eval.json was not kept"
    )


# ---- run directories --------------------------------------------------------------------------------

USERS = {
    "config.json and images/curves.png": {"config.json": b'{"my": "settings"}', "images/curves.png": b"my plot"},
    "a notes file": {"notes.txt": b"mine"},
    "a run.json of someone else's": {"run.json": b'{"mine": true}', "config.json": b"{}"},
}


@pytest.mark.parametrize("what", list(USERS))
def test_train_into_a_folder_of_the_users_is_refused(tmp_path, idx_dir, capsys, what, reliability):
    """``train --run-dir U`` into a folder holding the user's config.json and images/curves.png
    overwrote both and exited 0; now it is one error, before anything (even the lock) is written."""
    mine = tmp_path / "U"
    for name, data in USERS[what].items():
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        (mine / name).write_bytes(data)
    before = tree(mine)
    code, err = cli_error(capsys, "train", "mlp-classifier", "--dataset", idx_dir, "--epochs", "1", "--run-dir", mine)
    assert code == 2 and f"--run-dir {mine} is a folder of other files (" in err, err
    assert "not a disgen run directory; nothing was written: choose a new or empty folder" in err
    assert tree(mine) == before and sorted(p.name for p in mine.iterdir()) == sorted(
        {n.split("/")[0] for n in USERS[what]}
    )
    reliability.record(
        "inputs",
        "train --run-dir into a folder of the user's (config.json and images/curves.png, notes, a foreign run.json)",
        "one clear error; nothing written or overwritten",
    )


def test_a_run_dir_inside_the_image_folder_is_refused(tmp_path, mnist_mini, capsys, reliability, monkeypatch):
    """A run directory inside the folder trained on turned the run's pictures into a class on the
    next run. It is refused: given as --run-dir, and as the default runs/ of a command started
    inside the folder."""
    monkeypatch.setenv("DISGEN_HOME", str(tmp_path / "home"))
    data = tmp_path / "digits"
    for k in range(2):
        digit_pngs(data / f"c{k}", mnist_mini.train.images[k * 10 : k * 10 + 10], [f"{i}.png" for i in range(10)])
    code, err = cli_error(capsys, "train", "mlp-classifier", "--dataset", data, "--run-dir", data / "c0" / "run")
    assert code == 2 and f"is inside the dataset's folder {data}" in err, err
    done = run_disgen("train", "mlp-classifier", "--dataset", ".", "--epochs", "1", cwd=data, env=home_env(tmp_path))
    assert done.returncode == 2 and "is inside the dataset's folder ." in done.stderr, done.stderr
    assert sorted(p.name for p in data.iterdir()) == ["c0", "c1"] and len(list(data.rglob("*"))) == 22
    reliability.record(
        "inputs",
        "--run-dir inside the image folder trained on (given, and the default runs/ from inside it)",
        "one clear error; nothing written into the dataset",
    )


# ---- kaggle-organize: names checked before anything is written -----------------------------------


@pytest.mark.parametrize("breed", ["b" * 300, "é" * 130])
def test_kaggle_names_too_long_for_a_file_system_are_refused_first(tmp_path, capsys, breed, reliability):
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "test").mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8)).save(data / "train" / f"id{i}.jpg")
    Image.new("RGB", (8, 8)).save(data / "test" / "t0.jpg")
    (data / "labels.csv").write_text(f"id,breed\nid0,{breed}\nid1,{breed}\nid2,short\nid3,short\n", encoding="utf-8")
    code, err = cli_error(capsys, "kaggle-organize", data, "--out", tmp_path / "out")
    assert code == 2 and "labels.csv line 2: breed" in err and "at most 255 bytes" in err, err
    assert not (tmp_path / "out").exists()
    reliability.record(
        "inputs",
        "kaggle-organize with a breed of 300 characters (or 260 bytes of UTF-8)",
        "one clear error naming the line, before anything is written",
    )


# ---- image folders: one level of classes, a summary, the same image in two classes ---------------


def test_an_image_folder_is_one_level_of_classes_with_a_summary(tmp_path, mnist_mini, capsys, reliability, monkeypatch):
    """``--dataset /tmp`` decoded everything under it, 57 classes named like a/b/images. Now the
    classes are the folder's subfolders; deeper images are left out with a warning saying where
    to point --dataset, and a folder with nothing but deeper images is one error saying so. A
    summary names the images and classes."""
    home, x = tmp_path / "home", mnist_mini.train.images
    monkeypatch.setenv("DISGEN_HOME", str(home))
    root = tmp_path / "dogs"
    digit_pngs(root / "train" / "beagle", x[:12], [f"{i}.png" for i in range(12)])
    digit_pngs(root / "train" / "collie", x[12:24], [f"{i}.png" for i in range(12)])
    code, err = cli_error(capsys, "train", "mlp-classifier", "--dataset", root, "--epochs", "1")
    assert code == 2 and err == (
        f"disgen: error: folder {root} holds no images in it or its class folders: a dataset folder holds one "
        f"level of class folders (PATH/CLASS/image), and {root / 'train' / 'beagle' / '0.png'} is deeper: to "
        "train on those images, point --dataset at the folder whose subfolders are their classes, e.g. "
        f"{root / 'train'}"
    )
    digit_pngs(root / "train" / "stray", x[24:34], [f"{i}.png" for i in range(10)])
    (root / "train" / "stray" / "deeper").mkdir()
    shutil.copy(root / "train" / "beagle" / "0.png", root / "train" / "stray" / "deeper" / "x.png")
    done = run_disgen(
        "train", "mlp-classifier", "--dataset", str(root / "train"), "--epochs", "1", "--hidden", "8", "--no-progress",
        "--run-dir", str(tmp_path / "run"), env={**SUBPROCESS_ENV, "DISGEN_HOME": str(home)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{root / 'train'}: 34 images, 3 classes: beagle, collie, stray" in done.stderr
    assert f"warning: left out images below {root / 'train'}'s class folders" in done.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["data"]["classes"] == ["beagle", "collie", "stray"]
    reliability.record(
        "inputs",
        "--dataset a folder whose images are two or more levels down (dogs/train/beagle)",
        "one clear error naming the folder to point at; images below the class folders left out with a warning",
        2,
    )


def home_env(tmp_path: Path) -> dict:
    return {**SUBPROCESS_ENV, "DISGEN_HOME": str(tmp_path / "home")}


def test_the_same_image_in_two_classes_is_named(tmp_path, mnist_mini, capsys, reliability):
    """dogs/train/beagle and dogs/train_valid/beagle hold the same files: trained as two classes,
    the same images had two labels and crossed the splits. Such copies are named in a warning."""
    from disgen.data.image_folder import load_image_folder

    root, x = tmp_path / "pets", mnist_mini.train.images
    digit_pngs(root / "cat", x[:10], [f"{i}.png" for i in range(10)])
    digit_pngs(root / "dog", x[10:20], [f"{i}.png" for i in range(10)])
    shutil.copy(root / "cat" / "3.png", root / "dog" / "copy.png")
    (root / "dog" / "link.png").hardlink_to(root / "cat" / "4.png")
    data = load_image_folder(root, (1, 28, 28), cache=False)
    err = capsys.readouterr().err
    assert f"warning: {root}: 2 image(s) are the same file in more than one class (" in err, err
    assert "cat/3.png = dog/copy.png" in err and "cat/4.png = dog/link.png" in err
    assert f"{root}: 22 images, 2 classes: cat, dog" in err and len(data.train) + len(data.test) == 22
    reliability.record("inputs", "the same image (a copy, a hard link) in two class folders", "named in one warning")


# ---- predict: the model's kind first, unreadable images skipped, safe class columns --------------


@pytest.fixture(scope="module")
def gan2d_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("gan2d") / "run"
    assert main(["train", "gan2d", "--epochs", "1", "--no-progress", "--run-dir", str(d)]) == 0
    return d


@pytest.mark.parametrize("command", ["predict", "reconstruct"])
def test_predict_on_a_run_of_another_kind_says_so_before_reading(gan2d_run, tmp_path, capsys, command, reliability):
    """predict and reconstruct on a gan2d run given a PNG ended in a traceback (the PNG was read
    for 2-D points first); now the run's kind is checked before any input is read."""
    png = tmp_path / "x.png"
    Image.new("L", (28, 28)).save(png)
    out = ["--out", tmp_path / "out.png"] if command == "reconstruct" else []
    code, err = cli_error(capsys, command, gan2d_run, png, *out)
    words = "gan2d does not classify" if command == "predict" else "gan2d is not an autoencoder"
    assert code == 2 and err.startswith(f"disgen: error: {words}"), err
    reliability.record(
        "inputs", "predict and reconstruct on a gan2d run given a PNG", "one clear error naming what the run does"
    )


def test_predict_on_a_folder_skips_unreadable_images_and_names_them(tmp_path, classifier_run, mnist_mini, reliability):
    folder = tmp_path / "in"
    digit_pngs(folder, mnist_mini.test.images[:3], ["a.png", "b.png", "c.png"])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (folder / "empty.jpg").write_bytes(b"")
    done = run_disgen("predict", str(classifier_run.dir), str(folder))
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert [Path(r[0]).name for r in rows[1:]] == ["a.png", "b.png", "c.png"]
    assert [int(r[1]) for r in rows[1:]] == mnist_mini.test.labels[:3].tolist()
    assert (
        f"warning: skipped 2 input(s) that could not be read: {folder / 'broken.png'}, {folder / 'empty.jpg'}"
        in done.stderr
    )
    reliability.record(
        "inputs",
        "predict on a folder holding unreadable images (a broken PNG, an empty JPEG)",
        "the readable ones predicted; the others skipped and named in one warning",
    )


@pytest.fixture(scope="module")
def hostile_class_run(tmp_path_factory, mnist_mini) -> Path:
    """A classifier of a folder whose classes are named ``=1+1``, ``@SUM(A1)`` and ``cat``."""
    root = tmp_path_factory.mktemp("hostile")
    data, x, y = root / "data", mnist_mini.train.images, mnist_mini.train.labels
    for name, digit in (("=1+1", 0), ("@SUM(A1)", 1), ("cat", 2)):
        picked = x[y == digit][:30]
        digit_pngs(data / name, picked, [f"{i}.png" for i in range(len(picked))])
    args = ["train", "mlp-classifier", "--dataset", str(data), "--epochs", "3", "--no-progress"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISGEN_HOME", str(root / "home"))
        assert main([*args, "--run-dir", str(root / "run")]) == 0
    return root / "run"


def test_predict_csv_names_columns_by_class_and_quotes_formulas(hostile_class_run, mnist_mini, tmp_path, reliability):
    """The CSV's probability columns were p0, p1, ... and a class named =1+1 was written as is (a
    formula in a spreadsheet). Columns are now the class names, and a cell that would start a
    formula (= + - @) gets a leading quote, as OWASP advises."""
    x, y = mnist_mini.test.images, mnist_mini.test.labels
    digit_pngs(tmp_path / "in", x[y == 0][:1], ["=HYPERLINK(1).png"])
    done = run_disgen("predict", str(hostile_class_run), str(tmp_path / "in" / "=HYPERLINK(1).png"))
    assert done.returncode == 0, done.stderr
    header, row = list(csv.reader(io.StringIO(done.stdout)))
    assert header == ["input", "label", "'=1+1", "'@SUM(A1)", "cat"]
    assert row[1] == "'=1+1" and row[0] == str(tmp_path / "in" / "=HYPERLINK(1).png")
    assert abs(sum(map(float, row[2:])) - 1) < 1e-5 and float(row[2]) == max(map(float, row[2:]))
    reliability.record(
        "inputs",
        "predict CSV with classes named =1+1 and @SUM(A1) (formula injection)",
        "columns named by class; formula-like cells quoted",
    )


def test_a_labels_idx_file_given_to_predict_says_what_it_is(tmp_path, classifier_run, mnist_mini, capsys, reliability):
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    write_idx(labels, mnist_mini.test.labels[:50].to(torch.uint8))
    code, err = cli_error(capsys, "predict", classifier_run.dir, labels)
    assert code == 2 and err == (
        f"disgen: error: IDX file {labels} holds 50 single values (labels, not images): pass the images file "
        "(e.g. t10k-images-idx3-ubyte, whose header declares N x H x W)"
    )
    reliability.record("inputs", "predict given a labels IDX file", "one clear error saying it holds labels")
