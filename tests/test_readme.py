"""README.md's tour and Python example, run as written in an empty folder (slow: about four minutes
of training); README's set-up commands are what .ci/run runs (tests/test_layout.py checks that)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from disgen.data import load_dataset

ROOT = Path(__file__).resolve().parent.parent


def block(heading: str, language: str) -> str:
    """The first ```language block after ``heading`` in README.md."""
    text = (ROOT / "README.md").read_text()
    return text[text.index(heading) :].split(f"```{language}\n", 1)[1].split("```", 1)[0]


def environment(tmp_path: Path) -> dict:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "DISGEN_HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": "1",
        "DISGEN_PROGRESS_SECONDS": "1000",
    }


@pytest.mark.slow
def test_the_readmes_tour_runs_as_written(tmp_path):
    digit = load_dataset("mnist-mini").test
    Image.fromarray(digit.images[0, 0].numpy()).save(tmp_path / "my_digit.png")  # a real test digit
    done = subprocess.run(
        ["bash", "-ec", block("## A tour", "bash")],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = tmp_path / "runs"
    evaluated = json.loads((runs / "cnn" / "eval.json").read_text())["results"]
    assert evaluated[-1]["split"] == "test" and evaluated[-1]["accuracy"] > 0.8
    rows = [r for r in csv.reader(io.StringIO(done.stdout)) if r and r[0].endswith("my_digit.png")]
    assert len(rows) == 1 and rows[0][1] == str(int(digit.labels[0]))  # predict read the digit right
    assert (runs / "cnn" / "report.html").stat().st_size > 10_000
    assert (runs / "cnn" / "exports" / "onnx" / "classifier.onnx").is_file()
    for picture in ("reconstruction.png", "samples.png"):
        with Image.open(tmp_path / picture) as im:
            assert im.size[0] >= 28 and im.size[1] >= 28
    config = json.loads((runs / "fast" / "config.json").read_text())
    assert config["time_budget"] == 30 and config["max_steps"] > 0


@pytest.mark.slow
def test_the_readmes_python_example_runs_as_written(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", block("In Python:", "python")],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    classes, metrics = done.stdout.strip().splitlines()[-2:]
    assert classes.startswith("tensor([") and "'accuracy'" in metrics
