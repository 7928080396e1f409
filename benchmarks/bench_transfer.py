"""resnet-transfer: (1) the synthetic Kaggle pipeline of tests/test_kaggle.py (4 drawn "breeds",
97 train / 24 valid images, resnet18 from random weights, 32-pixel crops) over several seeds and
training set-ups; (2) ResNet-34 training steps per second at 224 pixels, frozen backbone vs all.

    python benchmarks/bench_transfer.py [--seeds 0 1 2] [--steps 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from common import save, summary, table, timed  # noqa: E402
from test_kaggle import make_competition  # noqa: E402

import disgen  # noqa: E402
from disgen.data.kaggle import organize  # noqa: E402
from disgen.models import (
    get_model,  # noqa: E402
    resolve,
)
from disgen.objectives import get_objective  # noqa: E402

BASE = dict(
    epochs=8, batch_size=16, optimizer="adam", lr=0.002, lr_schedule="step", lr_period=5, lr_decay=0.1, progress=False
)
SETUPS = {  # name -> (TrainConfig overrides, model options)
    "all, no augment (the test)": (dict(augment="none"), dict(train_backbone="all", backbone_lr_scale=1.0)),
    "all, imagenet augment": (dict(augment="imagenet"), dict(train_backbone="all", backbone_lr_scale=1.0)),
    "frozen random backbone": (dict(augment="none"), dict(train_backbone="none")),
}


def pipeline(seeds: list[int], root: Path) -> tuple[list[list[str]], dict]:
    comp, _ = make_competition(root / "comp")
    organize(comp, root / "org", 0.2)
    rows, raw = [], {}
    for k, (name, (train_opts, model_opts)) in enumerate(SETUPS.items()):
        acc, loss, secs = [], [], []
        for seed in seeds:
            start = time.perf_counter()
            run = disgen.train(
                "resnet-transfer",
                dataset=str(root / "org"),
                seed=seed,
                run_dir=str(root / f"setup{k}-{seed}"),
                **BASE,
                **train_opts,
                model_args=dict(arch="resnet18", image_size=32, pretrained=False, **model_opts),
            )
            secs.append(time.perf_counter() - start)
            acc.append(run.history[-1]["val_accuracy"])  # valid/ is the validation split (no test split)
            loss.append(run.history[-1]["val_log_loss"])
            print(f"{name} seed {seed}: acc {acc[-1]:.3f} log loss {loss[-1]:.3f} {secs[-1]:.0f} s", file=sys.stderr)
        raw[name] = {"accuracy": acc, "log_loss": loss, "seconds": secs}
        (ma, sa), (ml, sl) = summary(acc), summary(loss)
        rows.append(
            [
                name,
                len(seeds),
                f"{ma:.3f} ± {sa:.3f}",
                f"{min(acc):.3f}",
                f"{ml:.3f} ± {sl:.3f}",
                f"{statistics.mean(secs):.0f}",
            ]
        )
    return rows, raw


def step_speed(steps: int, batch: int = 16) -> tuple[list[list[str]], dict]:
    spec, objective = get_model("resnet-transfer"), get_objective("transfer")
    rows, raw = [], {}
    for mode in ("none", "last", "all"):
        cfg = resolve("resnet-transfer", {"model_args": {"pretrained": False, "train_backbone": mode}})
        model_cfg = spec.model_config(cfg.model_args)
        nets = spec.build(model_cfg, model_cfg.data_shape(), 120)
        opts = objective.optimizers(nets, cfg, model_cfg)
        x, y = torch.rand(batch, 3, 224, 224), torch.randint(0, 120, (batch,))
        nets["model"].train()
        objective.step(nets, opts, (x, y))  # warm-up
        times = timed(lambda: objective.step(nets, opts, (x, y)), steps)
        mean, sd = summary(times)
        raw[mode] = times
        rows.append([mode, steps, batch, f"{mean:.2f} ± {sd:.2f}", f"{batch / mean:.1f}"])
    return rows, raw


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rows, raw = pipeline(args.seeds, Path(tmp))
    print(table(rows, ["set-up", "n", "valid accuracy", "min", "valid log loss", "s/run"]))
    speed_rows, speed = step_speed(args.steps)
    print()
    print(table(speed_rows, ["train_backbone", "steps", "batch", "s/step", "images/s"]))
    save(
        "transfer",
        {"seeds": args.seeds, "pipeline": raw, "resnet34_224_step_seconds": speed, "threads": torch.get_num_threads()},
    )


if __name__ == "__main__":
    main()
