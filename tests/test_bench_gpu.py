"""benchmarks/bench_gpu.py runs end to end (``--device cpu --quick``) and its results file holds
what it says: every registered model timed or skipped with a reason, positive steps/s, ratios to
fp32 that are the paired quotients of the recorded times, and the agreement check with its
tolerance and a verdict that follows from them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from disgen.models import list_models

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_gpu  # noqa: E402


# The script's run takes about 30 s on 2 busy cores: the tests that read it are in the slow suite.
@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench-gpu") / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--device", "cpu", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training steps/s" in done.stdout and "fp32 against --precision auto" in done.stdout
    return json.loads(out.read_text())


@pytest.mark.slow
def test_every_model_is_timed_or_skipped_with_a_reason(results):
    assert results["device"] == "cpu" and results["quick"] is True
    assert {case["model"] for case in results["models"].values()} == set(list_models())
    assert "dcgan28 --preset seed" in results["models"]
    timed = 0
    for key, case in results["models"].items():
        if case.get("skipped"):
            assert len(case["skipped"]) > 20, key  # a reason, not a flag
            continue
        timed += 1
        assert set(case["configs"]) == set(bench_gpu.CONFIGS)
        assert "skipped" in case["configs"]["auto+cl+compile"]  # --quick leaves compile out
        for name in ("fp32", "auto", "auto+cl"):
            c = case["configs"][name]
            assert "error" not in c, (key, name, c)
            assert c["precision"] in ("fp32", "bf16", "fp16")
            assert c["channels_last"] is (name == "auto+cl")
            assert len(c["seconds"]) == results["settings"]["repeats"]
            assert all(t > 0 for t in c["seconds"])
            steps = results["settings"]["steps"]
            assert c["steps_per_s"]["mean"] > 0
            assert c["steps_per_s"]["values"] == pytest.approx([steps / t for t in c["seconds"]])
        assert case["configs"]["fp32"]["precision"] == "fp32"
    assert timed >= len(list_models()) - 1  # only resnet-transfer may lack its weights here


@pytest.mark.slow
def test_ratios_are_paired_quotients_of_the_times(results):
    for case in results["models"].values():
        if case.get("skipped"):
            continue
        base = case["configs"]["fp32"]["seconds"]
        for name, c in case["configs"].items():
            if "seconds" not in c:
                continue
            expected = [b / t for b, t in zip(base, c["seconds"])]
            assert c["ratio_to_fp32"]["values"] == pytest.approx(expected)
            assert c["ratio_to_fp32"]["mean"] == pytest.approx(sum(expected) / len(expected))
        assert case["configs"]["fp32"]["ratio_to_fp32"]["values"] == pytest.approx([1.0] * len(base))


@pytest.mark.slow
def test_time_to_accuracy_and_agreement_are_recorded(results):
    tta = results["time_to_accuracy"]
    assert tta["target"] == 0.93 and tta["dataset"] == "mnist-mini"
    assert 0 <= tta["test_accuracy"] <= 1
    reached = next((p["train_seconds"] for p in tta["curve"] if p["val_accuracy"] >= 0.93), None)
    assert tta["train_seconds_to_target"] == (pytest.approx(reached) if reached is not None else None)
    assert set(results["agreement"]) == set(bench_gpu.QUICK_AGREE)
    for model, a in results["agreement"].items():
        kind, tol = bench_gpu.TOLERANCES[a["metric"]]
        assert (a["kind"], a["tolerance"]) == (kind, tol)
        assert results["tolerances"][a["metric"]] == {"kind": kind, "tolerance": tol}
        assert a["fp32_precision"] == "fp32"
        allowed = tol if kind == "abs" else tol * abs(a["fp32"])
        assert a["agree"] is (abs(a["auto"] - a["fp32"]) <= allowed), model
    assert results["agreement"]["cnn-classifier"]["metric"] == "accuracy"
    assert results["agreement"]["mlp-autoencoder"]["metric"] == "mse"


def test_agreement_verdict_follows_the_tolerance():
    assert bench_gpu.agrees("accuracy", 0.90, 0.89)["agree"] is True
    assert bench_gpu.agrees("accuracy", 0.90, 0.85)["agree"] is False
    assert bench_gpu.agrees("mse", 0.020, 0.021)["agree"] is True  # 5% of a 10% relative tolerance
    assert bench_gpu.agrees("mse", 0.020, 0.025)["agree"] is False


def test_the_table_shows_gpu_figures_only_from_a_gpu_run():
    from table_defs import TABLES

    timed = {"steps_per_s": {"mean": 812.5, "std": 3.0}, "ratio_to_fp32": {"mean": 1.5}, "precision": "bf16"}
    r = {
        "commit": "abc1234",
        "command": "python benchmarks/bench_gpu.py",
        "wall_seconds": {"mean": 600.0},
        "device": "cuda",
        "device_name": "NVIDIA H100 80GB HBM3",
        "settings": {"repeats": 3, "steps": 50},
        "models": {
            "cnn-classifier": {
                "model": "cnn-classifier",
                "preset": "default",
                "batch": 64,
                "configs": {
                    **dict.fromkeys(("fp32", "auto", "auto+cl"), timed),
                    "auto+cl+compile": {"error": "E: x|y"},
                },
            },
            "resnet-transfer": {"model": "resnet-transfer", "preset": "default", "skipped": "no weights here"},
        },
        "time_to_accuracy": {
            "target": 0.93,
            "dataset": "fashion-mnist",
            "epochs": 30,
            "train_seconds_to_target": 41.3,
            "test_accuracy": 0.9312,
        },
        "agreement": {"dcgan64": {"skipped": "no 64x64 data"}},
    }
    text = TABLES["gpu"](lambda name: r)
    assert "NVIDIA H100 80GB HBM3" in text and "812.5 ± 3.0 (1.50x)" in text and "failed: E: x\\|y" in text
    assert "skipped: no weights here" in text and "**41.3 training s**" in text and "no results yet" not in text
    cpu = TABLES["gpu"](lambda name: {**r, "device": "cpu", "device_name": "AMD EPYC, 1 torch thread(s)"})
    assert "no results yet: run `python benchmarks/bench_gpu.py` on a GPU" in cpu
    assert "812.5" not in cpu and "No GPU figures" in cpu
