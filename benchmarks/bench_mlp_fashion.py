"""Seed 000's MLP classifier for one epoch of Fashion-MNIST: disgen's Trainer against a plain
PyTorch loop written the way tutorials do (a per-sample ``Dataset`` and a ``DataLoader``, batch
100), measured in the same process, alternating, over several repeats.

    python benchmarks/bench_mlp_fashion.py [--repeats 5] [--dataset fashion-mnist]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from common import TutorialDataset, save, summary, table, timed  # noqa: E402

from disgen.config import resolve  # noqa: E402
from disgen.data import load_dataset  # noqa: E402
from disgen.trainer import Trainer  # noqa: E402


def tutorial_epoch(loader, model, opt):
    model.train()
    for x, y in loader:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()


def seed_mlp() -> nn.Module:
    model = nn.Sequential(nn.Linear(784, 100), nn.Sigmoid(), nn.Linear(100, 50), nn.Sigmoid(),
                          nn.Linear(50, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -1, 1)
            nn.init.zeros_(m.bias)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dataset", default="fashion-mnist")
    args = ap.parse_args()
    data = load_dataset(args.dataset)
    n = len(data.train)

    torch.manual_seed(0)
    model = seed_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)  # the seed preset's lr
    loader = DataLoader(TutorialDataset(data.train.images, data.train.labels, flatten=True),
                        batch_size=100, shuffle=True)
    cfg = resolve("mlp-classifier", {"preset": "seed", "progress": False, "device": "cpu"})
    trainer = Trainer(cfg, Path("/tmp/disgen-bench-run"), data)

    tutorial_epoch(loader, model, opt)  # warm-up both
    trainer.train_epoch()
    plain, ours = [], []
    for _ in range(args.repeats):  # alternate so drift hits both equally
        plain += timed(lambda: tutorial_epoch(loader, model, opt), 1)
        ours += timed(trainer.train_epoch, 1)
    rates = {"plain PyTorch (Dataset + DataLoader)": [n / s for s in plain],
             "disgen Trainer": [n / s for s in ours]}
    ratio = [p / o for p, o in zip(plain, ours)]
    rows = [[name, f"{summary(r)[0]:,.0f}", f"{summary(r)[1]:,.0f}"] for name, r in rates.items()]
    rows.append(["ratio disgen / plain", f"{summary(ratio)[0]:.2f}x", f"{summary(ratio)[1]:.2f}"])
    print(f"seed 000 MLP, one epoch of {args.dataset} ({n:,} images), batch 100, n={args.repeats}")
    print(table(rows, ["loop", "samples/s", "std"]))
    path = save("mlp_fashion", {
        "dataset": args.dataset, "repeats": args.repeats,
        "samples_per_s": {k: summary(v)[0] for k, v in rates.items()},
        "ratio_mean": summary(ratio)[0], "ratio_std": summary(ratio)[1],
    })
    print(f"saved {path}")


if __name__ == "__main__":
    main()
