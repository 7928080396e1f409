"""``--time-budget`` under a real competing load: does a budget run end on time when the machine
gets busy part-way?

For each budget and seed, three runs of ``disgen train cnn-classifier --time-budget B`` (mnist-mini),
each a subprocess with the torch threads it takes by default:

- **quiet**: nothing else of this benchmark runs;
- **loaded**: once its first training epoch starts and a fifth of the budget has passed, a
  competing load starts (``--load`` busy processes, one per core by default) and runs to its end;
- **fixed steps, loaded**: the quiet run's own config.json rerun (``--config``, the same steps) under
  the same load: what a budget whose steps were fixed from a quiet start does once the load comes.

A budget run's training seconds are its own count (run.json's ``time_budget.seconds``: its steps,
and the timing that chose its network), the fixed-steps run's what its epochs took (``seconds`` in
metrics.jsonl); evaluation is excluded from both. The wall seconds from the first epoch's start to
the last epoch's end include the evaluation after each epoch.

    python benchmarks/bench_budget_load.py [--budgets 15 30] [--seeds 0 1 2] [--load 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_average, save, stats, table  # noqa: E402

BUSY = "while True:\n    pass\n"
LOAD_AFTER = 0.2  # the load starts this share of the budget into training


def train(args: list[str], load: int, budget: float) -> dict:
    """Run ``disgen train`` ARGS; with ``load`` > 0 start that many busy processes LOAD_AFTER of
    the budget after its first epoch starts. Returns its wall seconds of training (first epoch's
    start to the end of its last epoch's line) and the time the load started."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "disgen", "train", *args, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    busy: list[subprocess.Popen] = []
    started = last = None
    lines = []

    def start_load() -> None:
        time.sleep(LOAD_AFTER * budget)
        if proc.poll() is None:
            busy.extend(subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(load))

    try:
        for line in proc.stderr:
            lines.append(line)
            now = time.perf_counter()
            if line.startswith("validation split:") and started is None:  # training starts next
                started = now
                if load:
                    threading.Thread(target=start_load, daemon=True).start()
            if line.startswith("epoch "):
                last = now
        out = proc.stdout.read()
        if proc.wait():
            raise SystemExit(f"disgen train {' '.join(args)} failed:\n{''.join(lines)[-3000:]}")
    finally:
        for b in busy:
            b.kill()
            b.wait()
    return {"result": json.loads(out.strip().splitlines()[-1]), "wall_seconds": (last or 0) - (started or 0)}


def measure(run_dir: Path, wall: float, result: dict, budget: float | None) -> dict:
    from disgen import runs

    history = runs.read_metrics(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    info = json.loads((run_dir / "run.json").read_text())
    counted = info.get("time_budget", {}).get("seconds")  # a budget run's own count, its timing included
    out = {
        "train_seconds": counted if counted is not None else sum(r["seconds"] for r in history),
        "wall_seconds": wall,
        "steps": config["max_steps"],
        "epochs": len(history),
        "plans": len(config.get("budget_plan") or []),
        "test_accuracy": result.get("test_accuracy"),
        "val_accuracy": result.get("val_accuracy"),
    }
    if budget is not None:
        out["of_budget"] = out["train_seconds"] / budget
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budgets", type=float, nargs="+", default=[15.0, 30.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy processes of the competing load")
    p.add_argument("--name", default="budget_load")
    args = p.parse_args()
    cells, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="disgen-budget-load-") as tmp:
        for budget in args.budgets:
            per: dict[str, list[dict]] = {"quiet": [], "loaded": [], "fixed steps, loaded": []}
            for seed in args.seeds:
                base = ["cnn-classifier", "--seed", str(seed)]
                for mode in per:
                    d = Path(tmp) / f"{budget:g}-{seed}-{mode.replace(' ', '').replace(',', '-')}"
                    if mode == "fixed steps, loaded":
                        quiet = Path(tmp) / f"{budget:g}-{seed}-quiet"
                        run_args = ["cnn-classifier", "--config", str(quiet / "config.json"), "--run-dir", str(d)]
                    else:
                        run_args = [*base, "--time-budget", f"{budget:g}", "--run-dir", str(d)]
                    done = train(run_args, 0 if mode == "quiet" else args.load, budget)
                    r = measure(d, done["wall_seconds"], done["result"], budget)
                    per[mode].append(r)
                    print(
                        f"{budget:g} s seed {seed} {mode}: {r['train_seconds']:.1f} s of training "
                        f"({r['of_budget']:.2f} of the budget), {r['steps']} steps, test {r['test_accuracy']:.4f}",
                        flush=True,
                    )
            for mode, runs_ in per.items():
                cell = {
                    k: stats([r[k] for r in runs_]) for k in ("train_seconds", "of_budget", "steps", "test_accuracy")
                }
                cells[f"{budget:g}/{mode}"] = {"budget": budget, "mode": mode, **cell, "runs": runs_}
                rows.append(
                    [
                        f"{budget:g}",
                        mode,
                        f"{cell['train_seconds']['mean']:.1f} ± {cell['train_seconds']['std']:.1f}",
                        f"{min(cell['of_budget']['values']):.2f}-{max(cell['of_budget']['values']):.2f}",
                        f"{cell['steps']['mean']:.0f}",
                        f"{cell['test_accuracy']['mean']:.2%} ± {cell['test_accuracy']['std']:.2%}",
                    ]
                )
    print(table(rows, ["budget s", "run", "training s", "of the budget", "steps", "test accuracy"]))
    save(
        args.name,
        {
            "seeds": args.seeds,
            "load": args.load,
            "load_after": LOAD_AFTER,
            "load_average_end": load_average(),
            "cells": cells,
        },
    )


if __name__ == "__main__":
    main()
