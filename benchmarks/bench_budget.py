"""The best classifier in the time you have: ``disgen train cnn-classifier --time-budget B`` against
the MNIST CNN of pytorch/examples (``mnist/main.py``), written out plainly here, at equal training
time.

The example, as its script has it: conv 1->32 3x3, conv 32->64 3x3, max-pool 2, dropout 0.25,
linear 9216->128, dropout 0.5, linear 128->10; Adadelta lr 1.0, StepLR gamma 0.7 per epoch, batch
64, inputs normalised with MNIST's mean 0.1307 and std 0.3081. It trains epoch after epoch until the
budget is spent (checked after every step), is evaluated on the validation split after each epoch,
and the best epoch's weights are the ones tested. disgen gets the same budget through
``--time-budget`` (its step timing counts against it) and chooses ``best.pt`` on the same
validation split. Both count training time only: evaluation is timed apart. Both train on the same
images (disgen's stratified validation split held out of the training split), in one process,
alternating which goes first, for every seed.

    python benchmarks/bench_budget.py                                  # 15, 30, 60, 120 s; 3 seeds
    python benchmarks/bench_budget.py --budgets 5 --seeds 0 --datasets mnist-mini --name budget_quick

The ``budget`` preset's settings were chosen with ``--candidates``, which trains each candidate at
the same budgets and compares them on the validation split alone (see docs/speed.md).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import (  # noqa: E402
    RESULTS,
    load_data,
    provenance,
    rotated,
    save,
    stats,
    table,
    warn_if_busy,
)


class ExampleNet(nn.Module):
    """pytorch/examples mnist/main.py's Net."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = self.dropout2(F.relu(self.fc1(torch.flatten(self.dropout1(x), 1))))
        return F.log_softmax(self.fc2(x), dim=1)


def normalised(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255 - 0.1307) / 0.3081


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        right = sum(int((net(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum()) for i in range(0, len(x), 1000))
    return right / len(x)


def run_example(data, budget: float, seed: int) -> dict:
    """The example trained for ``budget`` seconds of training; test accuracy of its best epoch on validation."""
    torch.manual_seed(seed)
    net = ExampleNet()
    opt = torch.optim.Adadelta(net.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    x, y = normalised(data.train.images), data.train.labels
    vx, vy = normalised(data.val.images), data.val.labels
    spent, best, best_state, epochs, steps = 0.0, -1.0, None, 0, 0
    while spent < budget:
        net.train()
        order = torch.randperm(len(x))
        start = time.perf_counter()
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            F.nll_loss(net(x[idx]), y[idx]).backward()
            opt.step()
            steps += 1
            if spent + time.perf_counter() - start >= budget:
                break
        spent += time.perf_counter() - start
        sched.step()
        epochs += 1
        val = accuracy(net, vx, vy)
        if val > best:
            best, best_state = val, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    test = accuracy(net, normalised(data.test.images), data.test.labels)
    return {"test_accuracy": test, "val_accuracy": best, "train_seconds": spent, "epochs": epochs, "steps": steps}


def run_disgen(data, budget: float, seed: int, preset: str | None, overrides: dict | None = None) -> dict:
    """``disgen train cnn-classifier --time-budget B`` (the preset it picks, or ``preset``)."""
    import disgen

    with tempfile.TemporaryDirectory() as tmp:
        run = disgen.train(
            "cnn-classifier",
            preset=preset,
            **(overrides or {}),
            time_budget=budget,
            seed=seed,
            dataset_obj=data,
            val_split=0.1,
            run_dir=str(Path(tmp) / "run"),
            progress=False,
        )
    spent, final = sum(r["seconds"] for r in run.history), run.final or {}  # no final record: no test split
    return {
        **({"test_accuracy": final["test_accuracy"]} if "test_accuracy" in final else {}),
        "val_accuracy": final.get("val_accuracy", max(r.get("val_accuracy", 0) for r in run.history)),
        "train_seconds": spent,
        "epochs": run.config.epochs,
        "steps": run.config.max_steps,
        "preset": run.config.preset,
        "model_args": run.config.model_args,  # {} for the preset's own network
        "eval_seconds": sum(r.get("eval_seconds", 0) for r in run.history),
    }


def merged(args, cells: dict) -> dict:
    """The cells to save: this run's, each stamped with the commit and command that measured it,
    and with ``--update`` the results file's other cells as they were (stamped with theirs)."""
    stamp = provenance()
    cells = {k: {**v, **stamp} for k, v in cells.items()}
    path = RESULTS / f"{args.name}.json"
    if not args.update or not path.is_file():
        return cells
    old = json.loads(path.read_text())
    kept = {k: {**{m: old.get(m) for m in stamp}, **v} for k, v in old["cells"].items()}
    return {**kept, **cells}


def select(args, candidates: dict[str, dict]) -> None:
    """Candidate settings for the ``budget`` preset, compared by validation accuracy alone (the best
    validation epoch, what picks best.pt): the runs are given no test split at all."""
    from disgen.data import splits

    out, rows = {}, []
    for name in args.datasets:
        data = dataclasses.replace(splits.with_validation(load_data(name), 0.1), test=None)  # never tested
        for budget in args.budgets:
            per: dict[str, list[dict]] = {c: [] for c in candidates}
            for k, seed in enumerate(args.seeds):
                for c in rotated(list(candidates), k):
                    over = dict(candidates[c])
                    res = run_disgen(data, budget, seed, over.pop("preset", None), over)
                    per[c].append(res)
                    print(f"{name} {budget:g} s seed {seed} {c}: val {res['val_accuracy']:.4f}", flush=True)
            for c, runs in per.items():
                v = stats([r["val_accuracy"] for r in runs])
                out[f"{data.name}/{budget:g}/{c}"] = {"settings": candidates[c], "val_accuracy": v, "runs": runs}
                rows.append([data.name, f"{budget:g}", c, f"{v['mean']:.2%} ± {v['std']:.2%}"])
            save(args.name, {"seeds": args.seeds, "candidates": candidates, "cells": out})
    print(table(rows, ["dataset", "budget s", "candidate", "validation accuracy"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", type=float, nargs="+", default=[15, 30, 60, 120])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--datasets", nargs="+", default=["mnist-mini", "fashion-mnist"])
    p.add_argument("--preset", default=None, help="disgen's preset (default: the one --time-budget picks)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--name", default="budget")
    p.add_argument(
        "--update",
        action="store_true",
        help="replace only the cells this run measures in --name's results file, keeping the others, "
        "each cell with its own commit and command",
    )
    p.add_argument(
        "--candidates",
        nargs="+",
        metavar="NAME=JSON",
        help='compare settings on validation alone, e.g. fast=\'{"preset": "fast"}\' (writes --name)',
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warn_if_busy()
    if args.candidates:
        return select(args, {c.split("=", 1)[0]: json.loads(c.split("=", 1)[1]) for c in args.candidates})
    from disgen.data import splits

    out, rows = {}, []
    for name in args.datasets:
        data = splits.with_validation(load_data(name), 0.1)
        for budget in args.budgets:
            per: dict[str, list[dict]] = {"disgen": [], "example": []}
            for k, seed in enumerate(args.seeds):
                for side in rotated(["disgen", "example"], k):
                    res = (
                        run_disgen(data, budget, seed, args.preset)
                        if side == "disgen"
                        else run_example(data, budget, seed)
                    )
                    per[side].append(res)
                    print(f"{name} {budget:g} s seed {seed} {side}: test {res['test_accuracy']:.4f}", flush=True)
            cell = {
                side: {"test_accuracy": stats([r["test_accuracy"] for r in v]), "runs": v} for side, v in per.items()
            }
            out[f"{data.name}/{budget:g}"] = {"dataset": data.name, "budget": budget, **cell}
            d, e = cell["disgen"]["test_accuracy"], cell["example"]["test_accuracy"]
            rows.append(
                [
                    data.name,
                    f"{budget:g}",
                    f"{d['mean']:.2%} ± {d['std']:.2%}",
                    f"{e['mean']:.2%} ± {e['std']:.2%}",
                    f"{(d['mean'] - e['mean']) * 100:+.2f}",
                ]
            )
            save(args.name, {"preset": args.preset, "seeds": args.seeds, "cells": merged(args, out)})
    print(table(rows, ["dataset", "budget s", "disgen test", "example test", "points"]))


if __name__ == "__main__":
    main()
