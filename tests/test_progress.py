"""Progress where stderr is no terminal: a line every DISGEN_PROGRESS_SECONDS with the epoch,
step/total, rate and ETA (disgen.training.progress)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import SUBPROCESS_ENV

from disgen.errors import DisgenError
from disgen.training.progress import ProgressLines, interval


def test_a_line_each_time_the_interval_passes_with_rate_and_eta():
    now, lines = [0.0], []
    bar = ProgressLines(100, "epoch 2/5", every=10, clock=lambda: now[0], write=lines.append)
    for step in range(1, 100):
        now[0] = step * 0.5  # 2 steps a second
        bar.set_postfix({"loss": "0.25"})
        bar.update(1)
    # 99 steps over 49.5 s: a line at 10, 20, 30 and 40 s (steps 20, 40, 60, 80)
    assert lines == [
        f"epoch 2/5 step {n}/100 ({n}%), 2 steps/s, ETA {t} loss=0.25"
        for n, t in ((20, "40 s"), (40, "30 s"), (60, "20 s"), (80, "10 s"))
    ]


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DISGEN_PROGRESS_SECONDS", "2.5")
    assert interval() == 2.5
    monkeypatch.setenv("DISGEN_PROGRESS_SECONDS", "soon")
    with pytest.raises(DisgenError, match="DISGEN_PROGRESS_SECONDS='soon'"):
        interval()
    monkeypatch.delenv("DISGEN_PROGRESS_SECONDS")
    assert interval() == 10


@pytest.mark.slow  # 13 s on 2 cores
def test_training_with_stderr_a_pipe_prints_progress_lines(tmp_path, idx_dir):
    env = {**SUBPROCESS_ENV, "DISGEN_PROGRESS_SECONDS": "0.001"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "disgen",
            "train",
            "mlp-classifier",
            "--dataset",
            str(idx_dir),
            "--epochs",
            "2",
            "--batch-size",
            "10",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = re.findall(
        r"^epoch (\d)/2 step (\d+)/27 \(\d+%\), [\d.e+]+ steps/s, ETA \d+ s loss=\S+ accuracy=\S+$", done.stderr, re.M
    )
    assert {e for e, _ in lines} == {"1", "2"}, done.stderr[-2000:]
    assert len(lines) >= 10 and all(1 <= int(s) < 27 for _, s in lines)
    quiet = subprocess.run(
        [
            sys.executable,
            "-m",
            "disgen",
            "train",
            "mlp-classifier",
            "--dataset",
            str(idx_dir),
            "--epochs",
            "1",
            "--batch-size",
            "10",
            "--no-progress",
            "--run-dir",
            str(tmp_path / "q"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert quiet.returncode == 0 and " steps/s" not in quiet.stderr
