"""Hardening: SIGKILL at random moments of every objective's training, then --resume, ends in the
same bits as an uninterrupted run; damaged checkpoints are detected by their digest and the run
falls back to a good one; a really full disk (a small tmpfs) and a diverging loss stop the run with
one clear error and the last checkpoint intact; crafted pickles are refused; --deterministic.

Every fault tried is counted by the ``reliability`` fixture, into the file that DISGEN_RELIABILITY
names (``python benchmarks/bench_reliability.py`` sets it and saves the counts for docs/reliability.md's
table); a plain test run writes nothing.
"""

from __future__ import annotations

import os
import random
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SUBPROCESS_ENV, cli_error, last_line, run_disgen
from PIL import Image
from test_trainer import Payload, assert_same_training, last_state, metrics  # noqa: F401  (metrics: used by other modules)

import disgen
from disgen import files, runs
from disgen.cli import main
from disgen.errors import DisgenError
from disgen.models import get_model, list_models
from disgen.runs import checkpoint

ROOT = Path(__file__).resolve().parents[1]
# ---- crash safety: SIGKILL at random moments, then --resume -------------------------------------

# One run per registered model on tiny data, with state that must all come back on resume:
# dropout, augmentation, schedules, batch norm, a GAN's two optimizers and weight average, the
# labelled loader of the semi-supervised aae. Data: "idx" (digits), "rgb" (a folder of colour
# pictures in two classes), or None (the model's own default, gaussian2d for gan2d).
MODEL_RUNS = {
    "mlp-classifier": (
        "idx",
        ["--batch-size", "10", "--augment", "affine", "--dropout", "0.2", "--lr-schedule", "onecycle"],
    ),
    "mlp-autoencoder": ("idx", ["--batch-size", "10"]),
    "cnn-classifier": ("idx", ["--batch-size", "20", "--widths", "4,8,8"]),  # affine, one-cycle, batch norm
    "gan2d": (None, []),  # gaussian2d, cosine schedule, D at its own lr
    "dcgan28": ("idx", ["--batch-size", "20", "--g-width", "8", "--d-width", "8", "--latent-dim", "8", "--ema", "0.9"]),
    "dcgan64": ("rgb", ["--batch-size", "10", "--width", "4", "--latent-dim", "8"]),
    "aae": ("idx", ["--batch-size", "10", "--labels", "100", "--hidden", "64", "--d-hidden", "32", "--z-dim", "4"]),
    "resnet-transfer": (
        "rgb",
        [
            "--batch-size",
            "10",
            "--no-pretrained",
            "--arch",
            "resnet18",
            "--image-size",
            "32",
            "--train-backbone",
            "last",
        ],
    ),  # imagenet augmentation, step schedule
}
EPOCHS = 3
KILL_FAULTS = {
    "checkpoint-half-written": "SIGKILL half-way through writing a checkpoint",
    "checkpoint-before-rename": "SIGKILL after a checkpoint is written, before its rename",
    "checkpoint-after-rename": "SIGKILL right after a checkpoint's rename",
    "timed": "SIGKILL at a random moment of training (seeded delay)",
}


@pytest.fixture(scope="module")
def rgb_dir(tmp_path_factory) -> Path:
    """60 noisy 40x40 colour pictures in two classes (red, blue): a folder dataset."""
    root = tmp_path_factory.mktemp("rgb") / "pictures"
    rng = np.random.default_rng(0)
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (root / name).mkdir(parents=True)
        for i in range(30):
            pixels = (rng.integers(0, 60, (40, 40, 3)) + np.array(colour)).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_every_registered_model_is_killed_and_resumed():
    """The kill tests run every registered model: MODEL_RUNS only names smaller options for some."""
    assert set(MODEL_RUNS) <= set(list_models())
    assert run_of("mlp-classifier") == MODEL_RUNS["mlp-classifier"]
    shapes = {m: get_model(m).data_shape(get_model(m).model_config()) for m in list_models()}
    for m in set(list_models()) - set(MODEL_RUNS):
        assert run_of(m) == ("rgb" if (shapes[m] or (1,))[0] == 3 else "idx", ["--batch-size", "10"])


def run_of(model: str) -> tuple[str | None, list[str]]:
    """(data kind, flags) of ``model``'s hardening run: MODEL_RUNS', else its defaults on the data it takes."""
    if model in MODEL_RUNS:
        return MODEL_RUNS[model]
    spec = get_model(model)
    shape = spec.data_shape(spec.model_config()) or (1, 28, 28)
    return ("rgb" if shape[0] == 3 else "idx"), ["--batch-size", "10"]


def train_args(model: str, run_dir: Path, data: dict[str, Path]) -> list[str]:
    kind, flags = run_of(model)
    dataset = ["--dataset", str(data[kind])] if kind else []
    return ["train", model, *dataset, "--epochs", str(EPOCHS), *flags, "--no-progress", "--run-dir", str(run_dir)]


class Forked:
    """``disgen ARGS`` in a forked copy of this process: a real process that SIGKILL stops anywhere,
    without a second of importing torch again per run. Its stderr comes back through a pipe."""

    def __init__(self, args: list[str], fault: str | None = None):
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 70
            try:
                os.close(read)
                os.dup2(write, 2)
                sys.stderr = open(2, "w", buffering=1, closefd=False)
                sys.stdout = open(os.devnull, "w")
                os.environ.pop(files.FAULT_ENV, None)
                if fault:
                    os.environ[files.FAULT_ENV] = fault
                code = main(args)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(write)
        self.fd, self.err = read, b""
        self.deadline = time.monotonic() + 120  # a hung child is killed, so the test fails, not hangs

    def read(self, stop: bytes | None) -> None:
        """Collect stderr until ``stop`` appears in it or the child exits."""
        while stop is None or stop not in self.err:
            if not select.select([self.fd], [], [], 0.05)[0]:
                if time.monotonic() > self.deadline:
                    os.kill(self.pid, signal.SIGKILL)
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return
            self.err += chunk

    def wait(self) -> tuple[int, str]:
        """Exit code (-9 if killed) and stderr."""
        self.read(None)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1]), self.err.decode(errors="replace")

    def kill_after(self, delay: float) -> None:
        """SIGKILL ``delay`` seconds after training starts (the first log line comes once data,
        networks and checkpoint are loaded); nothing if it has finished."""
        self.read(b"\n")
        time.sleep(delay)
        os.kill(self.pid, signal.SIGKILL)  # unwaited, a finished child stays a zombie: never another process


def where_killed(run_dir: Path, kind: str) -> str:
    """Where a timed kill landed, from what it left: a metrics line newer than the checkpoints, or
    a best.pt newer than last.pt, means it stopped while an epoch's checkpoints were written."""
    if kind != "timed":
        return "killed there"
    saved = {p.name: checkpoint.load(p)["epoch"] for p in (run_dir / "checkpoints").glob("*.pt")}
    epoch = max(saved.values(), default=0)
    if len(runs.read_metrics(run_dir)) > epoch or saved.get("last.pt", epoch) < epoch:
        return "killed while an epoch's checkpoints were written"
    return "killed mid-epoch (training, evaluation or pictures)"


def check_checkpoints(run_dir: Path) -> int:
    """Every checkpoint on disk loads and matches its digest; returns the stray temp files."""
    for path in sorted((run_dir / "checkpoints").glob("*.pt")):
        checkpoint.load(path)
    return len(list((run_dir / "checkpoints").glob(".*.tmp")))


def kill_and_resume(model: str, kills: int, tmp_path: Path, data: dict[str, Path], reliability) -> None:
    """``kills`` attempts, alternately a DISGEN_FAULT kill inside a checkpoint write and a timed
    kill during training, each resuming the last; then a resume to the end, compared bit for bit
    with an uninterrupted run in this process."""
    rng = random.Random(f"{model}-{kills}")
    first_point = list_models().index(model)  # the models share out the fault points
    ref, run = tmp_path / "uninterrupted", tmp_path / "killed"
    assert main(train_args(model, ref, data)) == 0
    epoch_s = sum(r["seconds"] + r["eval_seconds"] for r in runs.read_metrics(ref)) / EPOCHS
    args = train_args(model, run, data) + ["--resume", "auto"]
    tried = []
    for k in range(kills):
        if k % 2 == 0:
            kind = files.FAULT_POINTS[(first_point + k // 2) % len(files.FAULT_POINTS)]
            proc = Forked(args, f"{kind}:{rng.randint(1, EPOCHS)}")
        else:
            kind = "timed"
            proc = Forked(args)
            proc.kill_after(rng.uniform(0.0, 1.5) * epoch_s)
        code, err = proc.wait()
        assert code in (0, -signal.SIGKILL), err
        temps = check_checkpoints(run)
        tried.append((kind, where_killed(run, kind) if code else "ran to its end first", temps))
    code, err = Forked(args).wait()
    assert code == 0, err
    same = "final state DIFFERENT"
    try:
        assert_same_training(ref, run)
        same = "final state bit-identical"
    finally:
        for kind, what, temps in tried:
            stray = ", its temp file removed on resume" if temps else ""
            reliability.record("crash", KILL_FAULTS[kind], f"{what}{stray}; checkpoints verified; {same}")
    # The uninterrupted run's checkpoints: best.pt and last.pt, or last.pt alone where the objective
    # chooses no best epoch on so few validation images (an image GAN below 256, docs/gans.md).
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted(
        p.name for p in (ref / "checkpoints").iterdir()
    )
    assert [r["epoch"] for r in metrics(run)] == list(range(1, EPOCHS + 1))


@pytest.fixture
def kill_data(idx_dir, rgb_dir, tmp_path, monkeypatch) -> dict[str, Path]:
    """The datasets of the hardening runs; decoded images and GANs' reference classifiers cached apart."""
    monkeypatch.setenv("DISGEN_HOME", str(tmp_path / "home"))
    return {"idx": idx_dir, "rgb": rgb_dir}


HEAVY = {"aae", "dcgan28", "dcgan64", "gan2d", "resnet-transfer", "vae"}  # 10-40 s a kill-and-resume on 2 cores


def by_weight(models):
    """``models`` as parameters, the heavy ones marked slow (``pytest -m slow``; .ci/run runs them)."""
    return [pytest.param(m, marks=pytest.mark.slow) if m in HEAVY else m for m in models]


@pytest.mark.parametrize("model", by_weight(list_models()))
def test_sigkill_at_random_moments_then_resume_is_exact(model, tmp_path, kill_data, reliability):
    kill_and_resume(model, 2, tmp_path, kill_data, reliability)


@pytest.mark.slow
@pytest.mark.parametrize("model", list_models())
def test_sigkill_many_times_then_resume_is_exact(model, tmp_path, kill_data, reliability):
    kill_and_resume(model, 8, tmp_path, kill_data, reliability)


# ---- one process per run directory; SIGTERM as Ctrl-C ---------------------------------------------


def popen_disgen(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "disgen", *map(str, args)],
        env=SUBPROCESS_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"exited before {what}: {proc.stderr.read()}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.01)


@pytest.mark.slow  # 22 s on 2 cores
def test_a_second_train_on_a_run_dir_stops_at_once_naming_the_first(tmp_path, idx_dir, reliability):
    """Two real ``disgen train`` processes on one --run-dir: the second stops with one error naming
    the directory and the first's pid, writing nothing; the first trains on, its files intact.
    Then SIGTERM stops the first as Ctrl-C does: exit 143, the --resume command named, last.pt
    intact, and the resumed run ends in the bits of one never interrupted."""
    d, ref = tmp_path / "run", tmp_path / "ref"
    base = [
        "train",
        "mlp-classifier",
        "--dataset",
        idx_dir,
        "--batch-size",
        "10",
        "--lr-schedule",
        "none",
        "--no-progress",
    ]
    first = popen_disgen(*base, "--epochs", "1000", "--run-dir", d)
    try:
        wait_for(lambda: runs.read_metrics(d) and (d / "checkpoints" / "last.pt").exists(), first, "epoch 1")
        before = (d / "config.json").read_bytes(), (d / "run.json").read_bytes()
        for extra in ([], ["--resume"]):
            second = run_disgen(*map(str, [*base, "--epochs", "1000", "--run-dir", d, *extra]))
            line = last_line(second.stderr)
            assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
            assert line.startswith(f"disgen: error: run directory {d} is in use: process {first.pid} (")
            assert "-m disgen train mlp-classifier" in line and f"{d / 'train.lock'}" in line
        assert ((d / "config.json").read_bytes(), (d / "run.json").read_bytes()) == before
        assert first.poll() is None
        first.send_signal(signal.SIGTERM)
        code, err = first.wait(60), first.stderr.read()
    finally:
        first.kill()
        first.wait()
        first.stderr.close()
    assert code == 128 + signal.SIGTERM, err
    assert last_line(err) == (
        f"disgen: interrupted by SIGTERM; the last checkpoint, {d / 'checkpoints' / 'last.pt'}, "
        f"is intact: continue with `disgen train mlp-classifier --run-dir {d} --resume`"
    )
    check_checkpoints(d)
    stopped = checkpoint.load(d / "checkpoints" / "last.pt")["epoch"]
    assert [r["epoch"] for r in runs.read_metrics(d)][:stopped] == list(range(1, stopped + 1))
    assert main([*map(str, base), "--epochs", str(stopped + 1), "--run-dir", str(d), "--resume"]) == 0
    assert main([*map(str, base), "--epochs", str(stopped + 1), "--run-dir", str(ref)]) == 0
    assert_same_training(ref, d)
    reliability.record(
        "crash",
        "a second disgen train on a run directory in use (with and without --resume)",
        "stopped at once with one error naming the directory and the first process's pid; nothing written",
        2,
    )
    reliability.record(
        "crash",
        "SIGTERM during training",
        "exit 143 with the --resume command; last.pt intact; resumed to bit-identical final state",
    )


def test_a_run_that_stops_before_writing_leaves_no_lock_behind(tmp_path, capsys):
    """The lock is the first thing a run writes: a run refused later (no such dataset) leaves a
    new --run-dir as it found it, absent, and an empty folder empty. A folder of the user's files
    is refused before even the lock is written (tests/test_user_files.py)."""
    new, empty = tmp_path / "new" / "run", tmp_path / "empty"
    empty.mkdir()
    for d in (new, empty):
        code, err = cli_error(capsys, "train", "mlp-classifier", "--dataset", tmp_path / "nowhere", "--run-dir", d)
        assert code == 2 and "unknown dataset" in err
    assert not (tmp_path / "new").exists()  # the folders it made, removed
    assert sorted(p.name for p in empty.iterdir()) == ["train.lock"]


@pytest.mark.slow  # 13 s on 2 cores
def test_run_dir_lock_is_released_by_a_sigkill(tmp_path, idx_dir, reliability):
    """The lock is the kernel's (flock): a process killed with SIGKILL holds it no longer, and
    --resume goes on at once."""
    d = tmp_path / "run"
    base = ["train", "mlp-classifier", "--dataset", idx_dir, "--no-progress", "--run-dir", d]
    proc = popen_disgen(*base, "--epochs", "1000")
    try:
        wait_for(lambda: (d / "checkpoints" / "last.pt").exists(), proc, "a checkpoint")
        with pytest.raises(DisgenError, match=f"process {proc.pid} .*is training in it"):
            with runs.lock(d):
                pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert (d / "train.lock").read_text().strip() == str(proc.pid)  # a stale pid, no lock
    # The kill may fall between an epoch's best.pt and its last.pt: resume takes the newest.
    saved = [
        checkpoint.load(d / "checkpoints" / n)["epoch"]
        for n in ("last.pt", "best.pt")
        if (d / "checkpoints" / n).exists()
    ]
    epoch = max(saved)
    resumed = run_disgen(*map(str, [*base, "--epochs", epoch + 1, "--resume"]))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {d} after epoch {epoch}" in resumed.stderr
    reliability.record(
        "crash",
        "--resume after a SIGKILL of the process holding the run directory's lock",
        "the kernel had released it; resumed",
    )


# ---- a full disk: a tmpfs that really fills up --------------------------------------------------


@lru_cache(maxsize=1)
def can_mount_tmpfs() -> bool:
    """A private tmpfs needs unshare(1) and user namespaces (root in a container, most Linux)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k probe /mnt"], capture_output=True)
    return probe.returncode == 0


def on_full_disk(seed_run: Path, out: Path, free_kib: int, args: list[str]) -> subprocess.CompletedProcess:
    """Copy ``seed_run`` into a fresh 8 MiB tmpfs, fill it up but ``free_kib``, run ``disgen ARGS``
    (``{run}`` in ARGS is the copy) and copy the run directory back to ``out``."""
    mnt = out.parent / "mnt"
    mnt.mkdir()
    run = mnt / "run"
    q = shlex.quote
    command = " ".join(q(a.format(run=run)) for a in [sys.executable, "-m", "disgen", *args])
    filler = q(str(mnt / "filler"))
    script = (
        f"mount -t tmpfs -o size=8m disgen-test {q(str(mnt))} && "
        f"cp -a {q(str(seed_run))} {q(str(run))} && "
        f"(dd if=/dev/zero of={filler} bs=4k 2>/dev/null; truncate -s -{free_kib}K {filler}) && "
        f"{command}; code=$?; cp -a {q(str(run))} {q(str(out))}; exit $code"
    )
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=120
    )


needs_tmpfs = pytest.mark.skipif(not can_mount_tmpfs(), reason="cannot mount a private tmpfs here")


@needs_tmpfs
def test_disk_full_while_writing_a_checkpoint(tmp_path, idx_dir, mlp_first_two_epochs, mlp_val_reference, reliability):
    out = tmp_path / "out"
    base = ["train", "mlp-classifier", "--dataset", str(idx_dir), "--epochs", "3", "--resume", "--no-progress"]
    # 256 KiB free: config, metrics and run.json fit, a 1 MB checkpoint does not.
    result = on_full_disk(mlp_first_two_epochs, out, 256, [*base, "--run-dir", "{run}"])
    err = last_line(result.stderr)
    assert result.returncode == 2, result.stderr
    assert err.startswith("disgen: error: could not write checkpoint") and "No space left on device" in err
    assert "previous checkpoint is intact" in err
    kept, before = last_state(out), last_state(mlp_first_two_epochs)
    assert kept["epoch"] == 2 and torch.equal(
        kept["nets"]["model"]["body.1.weight"], before["nets"]["model"]["body.1.weight"]
    )
    assert [r["epoch"] for r in metrics(out)] == [1, 2]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    # With space again the same run continues, to the bits of a run that never hit the full disk
    # (the same digits, read from IDX files here).
    assert main([*base, "--run-dir", str(out)]) == 0
    assert_same_training(mlp_val_reference, out)
    reliability.record(
        "disk",
        "disk full (tmpfs) while writing a checkpoint",
        "one clear error; last.pt and best.pt intact; resumed to bit-identical weights",
    )


@pytest.mark.slow
@needs_tmpfs
def test_disk_full_while_writing_images(tmp_path, idx_dir, reliability):
    seed, out = tmp_path / "seed", tmp_path / "out"
    base = ["train", "mlp-classifier", "--dataset", str(idx_dir), "--hidden", "1", "--no-progress"]
    assert main([*base, "--epochs", "1", "--run-dir", str(seed)]) == 0
    for picture in (seed / "images").iterdir():  # so those after training need new space
        picture.unlink()
    # 40 KiB free: the 27 KB checkpoint fits, the pictures after training (50 KB, 70 KB) do not.
    result = on_full_disk(seed, out, 40, [*base, "--epochs", "2", "--resume", "--run-dir", "{run}"])
    err = last_line(result.stderr)
    assert result.returncode == 2, result.stderr
    assert err.startswith(f"disgen: error: could not write images in {tmp_path / 'mnt' / 'run' / 'images'}")
    assert "No space left on device" in err and "last.pt (epoch 2)" in err
    assert last_state(out)["epoch"] == 2 and [r["epoch"] for r in metrics(out)] == [1, 2]
    assert main([*base, "--epochs", "2", "--resume", "--run-dir", str(out)]) == 0  # draws what is missing
    with Image.open(out / "images" / "predictions_after.png") as im:
        im.load()
        assert min(im.size) > 50
    reliability.record(
        "disk",
        "disk full (tmpfs) while writing images",
        "one clear error; the checkpoint of the epoch intact; --resume drew the pictures",
    )


# ---- divergence -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["mlp-classifier", "mlp-autoencoder", "gan2d"])
def test_far_too_high_lr_is_caught_in_the_first_steps(tmp_path, idx_dir, capsys, reliability, model):
    """Adam at lr 1e6. The autoencoder's MSE is bounded (sigmoid outputs) and never explodes: its
    weights do. The suggested command then runs as a fresh run would (checked for one model)."""
    d = tmp_path / "run"
    data = [] if model == "gan2d" else ["--dataset", idx_dir]
    base = ["train", model, *data, "--epochs", "1", "--no-progress", "--run-dir", d]
    code, err = cli_error(capsys, *base, "--lr", "1e6")
    assert code == 2 and err.startswith("disgen: error: the learning rate 1e+06 is likely too high: ")
    assert re.search(
        r"too high: (loss '\w+'|the weights of '\w+') grew from (norm )?[\d.e+-]+ to "
        r"[\d.e+-]+ at epoch 1 step \d+;",
        err,
    )
    step = int(err.split(" at epoch 1 step ")[1].split(";")[0])
    preset_lr = disgen.models.resolve(model).lr
    assert step <= 10 and "no checkpoint was written yet" in err and f"--resume --lr {preset_lr:g}`" in err
    assert not (d / "checkpoints" / "last.pt").exists() and not (d / "metrics.jsonl").exists()
    outcome = f"stopped at step {step} of epoch 1, naming the lr and the preset's lr to use"
    if model == "mlp-classifier":
        assert cli_error(capsys, *base, "--resume", "--lr", f"{preset_lr:g}")[0] == 0  # the suggestion
        ref = tmp_path / "ref"
        assert main([str(a) for a in base[:-1]] + [str(ref)]) == 0
        assert_same_training(ref, d)
        outcome += "; the suggested --resume --lr ran as a fresh run would"
    reliability.record("divergence", "learning rate 1e6, far too high (3 models)", outcome)


def test_nan_mid_run_stops_with_step_and_loss_and_resume_with_lower_lr(tmp_path, idx_dir, capsys, reliability):
    """SGD on the default ReLU MLP at lr 1000 overflows to nan within a few steps of epoch 2."""
    d, ref = tmp_path / "run", tmp_path / "ref"
    base = [
        "train",
        "mlp-classifier",
        "--lr-schedule",
        "none",
        "--dataset",
        str(idx_dir),
        "--optimizer",
        "sgd",
        "--batch-size",
        "10",
        "--lr",
        "0.1",
        "--no-progress",
    ]
    assert main([*base, "--epochs", "1", "--run-dir", str(d)]) == 0
    last = d / "checkpoints" / "last.pt"
    before = last.read_bytes()
    code, err = cli_error(capsys, *base, "--epochs", "2", "--resume", "--lr", "1000", "--run-dir", d)
    assert code == 2 and err.startswith("disgen: error: training diverged: loss 'loss' became ")
    assert " at epoch 2 step " in err and f"the last good checkpoint is {last} (epoch 1)" in err
    assert "--resume --lr 100`" in err
    assert last.read_bytes() == before and [r["epoch"] for r in metrics(d)] == [1]
    assert main([*base, "--epochs", "2", "--resume", "--lr", "0.1", "--run-dir", str(d)]) == 0
    assert main([*base, "--epochs", "2", "--run-dir", str(ref)]) == 0
    assert_same_training(ref, d)
    reliability.record(
        "divergence",
        "loss became nan/inf mid-run (SGD, lr 1000, epoch 2)",
        "stopped naming the loss, epoch and step; last.pt unchanged; --resume --lr 0.1 matched an uninterrupted run",
    )


def test_resume_with_another_lr_changes_the_optimizers(tmp_path, tiny_data, capsys):
    d = tmp_path / "run"
    options = dict(preset="default", dataset_obj=tiny_data, progress=False, run_dir=str(d))
    disgen.train("mlp-classifier", epochs=1, **options)  # cosine schedule from lr 0.002
    disgen.train("mlp-classifier", epochs=2, resume=True, lr=0.0005, **options)
    assert "learning rate changed on resume: model 0.002 -> 0.0005" in capsys.readouterr().err
    state = last_state(d)
    group = state["opts"]["model"]["param_groups"][0]
    assert group["initial_lr"] == 0.0005 and state["scheds"]["model"]["base_lrs"] == [0.0005]
    assert group["lr"] == pytest.approx(metrics(d)[1]["lr"]) and group["lr"] < 0.0005
    assert runs.read_config(d).lr == 0.0005


# ---- determinism ------------------------------------------------------------------------------------


def test_deterministic_runs_are_bit_identical(tmp_path, tiny_data, reliability):
    """cnn-classifier (convolutions, batch norm, dropout, affine augmentation, one-cycle) twice."""
    options = dict(
        dataset_obj=tiny_data, epochs=2, progress=False, deterministic=True, model_args={"widths": (8, 16, 32)}
    )
    for name in ("a", "b"):
        disgen.train("cnn-classifier", run_dir=str(tmp_path / name), **options)
    assert not torch.are_deterministic_algorithms_enabled()  # process-wide switch put back
    assert runs.read_config(tmp_path / "a").deterministic is True
    assert_same_training(tmp_path / "a", tmp_path / "b")
    reliability.record(
        "determinism",
        "--deterministic, the same run twice on CPU",
        "bit-identical weights, optimizer state and metrics",
    )
