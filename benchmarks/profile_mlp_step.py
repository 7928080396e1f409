"""Where the mlp-classifier seed step's time goes (batch 100, fp32, CPU): the Trainer's epoch per
step against leaner variants of it, interleaved in one process, median (min) over rounds; then a
torch.profiler table of one Trainer epoch.

    python benchmarks/profile_mlp_step.py [--threads 2] [--rounds 9] [--steps 200] [--profile]

Variants patch the step or the optimizer in this process only (src/ is unchanged):
  trainer              Trainer.train_epoch as it is
  trainer+lean step    classify.step without the per-step accuracy (loss only)
  loop floor           the Trainer's batches + forward + cross-entropy + Adam, nothing else
  step floor           the same on one fixed batch (no gather: compute and autograd only)
  plain                the tutorial loop of bench_speed.py (per-sample Dataset + DataLoader)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from bench_speed import plain_mlp_classifier  # noqa: E402
from common import load_data, make_trainer, rotated, subset, table  # noqa: E402

from disgen.objectives import minimize  # noqa: E402


def lean_step(nets, opts, batch):
    x, y = batch
    loss = F.cross_entropy(nets["model"](x), y)
    minimize(opts, "model", loss)
    return {"loss": loss.detach()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--profile", action="store_true", help="also print a torch.profiler table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = subset(load_data(args.dataset), args.steps * 100)
    trainer = make_trainer("mlp-classifier", data, {"preset": "seed"}, Path("/tmp/disgen-profile"))
    model, opt, loader = trainer.nets["model"], trainer.opts["model"], trainer.loader
    x0, y0 = trainer.train_x[:100].clone(), trainer.train_y[:100].clone()
    original_step = trainer.objective.step
    plain = plain_mlp_classifier(data)

    def with_lean_step():
        trainer.objective.step = lean_step
        try:
            trainer.train_epoch()
        finally:
            trainer.objective.step = original_step

    def loop_floor():
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def step_floor():
        for _ in range(len(loader)):
            loss = F.cross_entropy(model(x0), y0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    variants = {
        "trainer": trainer.train_epoch,
        "trainer+lean step": with_lean_step,
        "loop floor": loop_floor,
        "step floor": step_floor,
        "plain": plain,
    }
    ms = {k: [] for k in variants}
    for fn in variants.values():
        fn()
    names = list(variants)
    for r in range(args.rounds):  # each round starts one variant later: no variant always follows plain
        for k in rotated(names, r):
            start = time.perf_counter()
            variants[k]()
            ms[k].append((time.perf_counter() - start) / len(loader) * 1e3)
    base = statistics.median(ms["trainer"])
    rows = [
        [
            k,
            f"{statistics.median(v):.3f}",
            f"{min(v):.3f}",
            f"{statistics.median(v) - base:+.3f}",
            f"{statistics.median(ms['plain']) / statistics.median(v):.2f}x",
        ]
        for k, v in ms.items()
    ]
    print(f"mlp-classifier seed step, batch 100, {args.threads} threads, {len(loader)} steps x {args.rounds} rounds")
    print(table(rows, ["variant", "ms/step median", "min", "vs trainer", "plain / variant"]))
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.train_epoch()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
