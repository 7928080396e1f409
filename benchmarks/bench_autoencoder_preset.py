"""The ``mlp-autoencoder`` default preset, chosen on the validation split of its default dataset:
each candidate trained with ``disgen.train`` on mnist-mini for several seeds, compared by its best
validation MSE (what picks best.pt). The runs are given no test split at all: nothing here reads it.

    python benchmarks/bench_autoencoder_preset.py [--seeds 0 1 2] [--candidates NAME ...]

The rule: the lowest mean validation MSE; a candidate within one standard deviation of it that
trains in less time is taken instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import load_data, save, stats, table  # noqa: E402

WIDE = dict(encoder=(256, 64), decoder=(64, 256))
# name -> the options a run is given over the default preset (the candidates as the preset was before)
CANDIDATES: dict[str, dict] = {
    "before: 100-50, batch 100, 10 epochs": dict(
        model_args=dict(encoder=(100, 50), decoder=(50, 100)), batch_size=100, epochs=10, lr=2e-3
    ),
    "100-50, batch 100, 50 epochs": dict(
        model_args=dict(encoder=(100, 50), decoder=(50, 100)), batch_size=100, epochs=50, lr=2e-3
    ),
    "100-50, batch 32, 50 epochs": dict(
        model_args=dict(encoder=(100, 50), decoder=(50, 100)), batch_size=32, epochs=50, lr=2e-3
    ),
    "256-64, batch 32, 30 epochs, lr 3e-3": dict(model_args=WIDE, batch_size=32, epochs=30, lr=3e-3),
    "256-64, batch 32, 50 epochs": dict(model_args=WIDE, batch_size=32, epochs=50, lr=2e-3),
    "256-64, batch 32, 50 epochs, lr 3e-3": dict(model_args=WIDE, batch_size=32, epochs=50, lr=3e-3),
    "256-64, batch 64, 50 epochs, lr 3e-3": dict(model_args=WIDE, batch_size=64, epochs=50, lr=3e-3),
    "256-64, batch 32, 100 epochs, lr 3e-3": dict(model_args=WIDE, batch_size=32, epochs=100, lr=3e-3),
}


def one(data, options: dict, seed: int) -> dict:
    import disgen

    with tempfile.TemporaryDirectory() as tmp:
        run = disgen.train(
            "mlp-autoencoder",
            dataset_obj=data,
            seed=seed,
            progress=False,
            run_dir=str(Path(tmp) / "run"),
            **options,
        )
    values = [r["val_mse"] for r in run.history]
    return {
        "val_mse": min(values),
        "epoch": values.index(min(values)) + 1,
        "train_seconds": sum(r["seconds"] for r in run.history),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="autoencoder_preset")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from disgen.data import splits

    data = dataclasses.replace(splits.with_validation(load_data("mnist-mini"), 0.1), test=None)  # never tested
    results, rows = {}, []
    for name in args.candidates:
        runs = [one(data, CANDIDATES[name], seed) for seed in args.seeds]
        val, seconds = stats([r["val_mse"] for r in runs]), stats([r["train_seconds"] for r in runs])
        results[name] = {"options": CANDIDATES[name], "val_mse": val, "train_seconds": seconds, "runs": runs}
        rows.append([name, val["n"], f"{val['mean']:.5f} ± {val['std']:.5f}", f"{seconds['mean']:.1f}"])
        print(f"{name}: validation mse {val['mean']:.5f} ± {val['std']:.5f}, {seconds['mean']:.1f} s", flush=True)
    best = min(results, key=lambda n: results[n]["val_mse"]["mean"])
    near = [
        n
        for n in results
        if results[n]["val_mse"]["mean"] <= results[best]["val_mse"]["mean"] + results[best]["val_mse"]["std"]
    ]
    chosen = min(near, key=lambda n: results[n]["train_seconds"]["mean"])
    print(table(rows, ["candidate", "n", "best validation mse", "train s"]))
    print(f"lowest validation mse: {best}; chosen (within one std of it, fastest): {chosen}")
    save(
        args.name,
        {
            "dataset": "mnist-mini",
            "val_split": 0.1,
            "seeds": args.seeds,
            "threads": args.threads,
            "results": results,
            "lowest": best,
            "chosen": chosen,
        },
    )


if __name__ == "__main__":
    main()
