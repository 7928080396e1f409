"""Data-parallel training under torchrun: real processes on the CPU with the gloo backend.

Two processes with a global batch of B must take the same steps as one process with batch B
(gradients averaged by share of the batch), write the run directory once, and resume exactly.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SUBPROCESS_ENV, run_disgen

from disgen import runs
from disgen.errors import DisgenError
from disgen.training import distributed

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
COMMON = ["--device", "cpu", "--no-progress"]


def torchrun(*args: str, nproc: int = 2, launcher: list[str] | None = None, timeout: float = 180, wait: bool = True):
    cmd = TORCHRUN + (launcher or ["--standalone", f"--nproc_per_node={nproc}"]) + ["-m", "disgen", *args]
    if not wait:
        return subprocess.Popen(cmd, env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return {f"{net}.{k}": v for net, sd in state["nets"].items() for k, v in sd.items()}


def metrics(run_dir: Path) -> list[dict]:
    return runs.read_metrics(run_dir)  # the epoch records (the final test record apart)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, idx_dir) -> Path:
    run = tmp_path_factory.mktemp("ddp") / "two"
    done = torchrun(
        "train",
        "mlp-classifier",
        "--preset",
        "seed",
        "--dataset",
        str(idx_dir),
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--run-dir",
        str(run),
        *COMMON,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1])["epochs"] == 3  # printed once, by rank 0
    assert len(done.stdout.strip().splitlines()) == 1
    return run


def test_two_processes_match_one_process_with_the_same_global_batch(two_process_run, tmp_path, idx_dir):
    one = tmp_path / "one"
    done = run_disgen(
        "train",
        "mlp-classifier",
        "--preset",
        "seed",
        "--dataset",
        str(idx_dir),
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--run-dir",
        str(one),
        *COMMON,
    )
    assert done.returncode == 0, done.stderr
    a, b = weights(one), weights(two_process_run)
    assert a.keys() == b.keys()
    for k in a:  # 30 steps: only the order of float sums differs
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-4, msg=k)
    ma, mb = metrics(one), metrics(two_process_run)
    assert len(mb) == 3  # one line per epoch: only rank 0 writes
    for ra, rb in zip(ma, mb):
        assert abs(ra["train_loss"] - rb["train_loss"]) < 1e-3  # averaged over both processes
    fa, fb = runs.read_final(one), runs.read_final(two_process_run)  # the test split, once, by rank 0
    assert abs(fa["test_accuracy"] - fb["test_accuracy"]) <= 0.011  # at most one of 100 test digits
    info = json.loads((two_process_run / "run.json").read_text())
    assert info["processes"] == 2 and info["precision"] == "fp32"


@pytest.mark.slow
def test_a_two_process_run_resumes_to_the_same_weights(two_process_run, tmp_path, idx_dir):
    run = tmp_path / "resumed"
    args = [
        "train",
        "mlp-classifier",
        "--preset",
        "seed",
        "--dataset",
        str(idx_dir),
        "--batch-size",
        "32",
        "--run-dir",
        str(run),
        *COMMON,
    ]
    torchrun(*args, "--epochs", "1")
    torchrun(*args, "--epochs", "3", "--resume")
    a, b = weights(run), weights(two_process_run)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [m["epoch"] for m in metrics(run)] == [1, 2, 3]


@pytest.mark.parametrize(
    "model,extra",
    [
        pytest.param("gan2d", ["--dataset", "gaussian2d", "--epochs", "2"], marks=pytest.mark.slow),
        pytest.param("aae", ["--labels", "100", "--epochs", "2", "--batch-size", "50"], marks=pytest.mark.slow),
    ],
)
def test_multi_phase_games_train_across_processes(model, extra, tmp_path, idx_dir):
    """The GAN's and AAE's phases (parts frozen, several optimizers) stay in step across processes:
    the trainer checks at the end that every process holds the same weights."""
    if model == "aae":
        extra = extra + ["--dataset", str(idx_dir)]
    run = tmp_path / model
    done = torchrun("train", model, "--run-dir", str(run), *extra, *COMMON)
    final = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(v == v and abs(v) < 1e6 for k, v in final.items() if k.startswith("test_"))  # finite
    assert all(torch.isfinite(w.float()).all() for w in weights(run).values())
    if model == "aae":
        assert final["test_accuracy"] > 0.2  # 100 labels, 2 epochs on 270 digits: above 10% chance


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # 10 s on 2 cores: four processes
def test_two_nodes_with_a_rendezvous_match_one_node(two_process_run, tmp_path, idx_dir):
    """Two torchrun launchers ("nodes") meeting at a c10d rendezvous on 127.0.0.1, one process each."""
    run = tmp_path / "nodes"
    launcher = [
        "--nnodes=2",
        "--nproc_per_node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{free_port()}",
        "--rdzv-id=disgen-test",
    ]
    args = [
        "train",
        "mlp-classifier",
        "--preset",
        "seed",
        "--dataset",
        str(idx_dir),
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--run-dir",
        str(run),
        *COMMON,
    ]
    nodes = [torchrun(*args, launcher=launcher, wait=False) for _ in range(2)]
    try:
        errs = [node.communicate(timeout=300)[1] for node in nodes]
    except subprocess.TimeoutExpired:
        for node in nodes:
            node.kill()
        errs = [node.communicate()[1] for node in nodes]
        pytest.fail("the two nodes did not finish in 300 s:\n" + "\n---\n".join(e[-2000:] for e in errs))
    for node, err in zip(nodes, errs):
        assert node.returncode == 0, err[-3000:]
    a, b = weights(run), weights(two_process_run)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_outside_torchrun_there_is_one_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.world() == distributed.World(0, 1, 0)
    assert distributed.is_main() and not distributed.enabled()
    batch = (torch.arange(5), torch.arange(5))
    assert distributed.shard(batch) == (batch, 1.0)


def test_shards_split_a_global_batch_in_rank_order(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    x = torch.arange(7)
    parts = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        (part,), share = distributed.shard((x,))
        parts.append(part)
        assert share == len(part) / 7
    assert torch.equal(torch.cat(parts), x) and [len(p) for p in parts] == [4, 3]


def test_bad_torchrun_variables_are_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(DisgenError, match="torchrun"):
        distributed.world()
