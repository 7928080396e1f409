"""gan2d on seed 003's Gaussian: the test split's ``w2_squared`` to the true Gaussian and the wall
time of the ``seed`` and ``default`` presets over several seeds, alternating presets in one process.

    python benchmarks/bench_gan2d.py [--seeds 0 1 ... 19] [--extra key=value ...]

The test figure is the run's own: evaluated once after training, with best.pt (the best
validation ``w2_squared``) for the default preset and the last weights for the seed preset, which
keeps seed 003's protocol (no validation). One torch thread: a rerun at the same commit, torch
build and CPU gives the same bits; another CPU gives other draws (a GAN amplifies the last bit),
hence 20 seeds and the interval of the median in the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save, stats, table  # noqa: E402

import disgen  # noqa: E402


def one(preset: str, seed: int, root: Path, extra: dict) -> tuple[float, str, float]:
    start = time.perf_counter()
    run = disgen.train(
        "gan2d",
        preset=preset,
        seed=seed,
        progress=False,
        run_dir=str(root / f"{preset}-{seed}"),
        **(extra if preset == "default" else {}),
    )
    return run.final["test_w2_squared"], run.final["checkpoint"], time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(20)))
    p.add_argument("--extra", nargs="*", default=[], help="overrides of the default preset, key=json")
    p.add_argument("--presets", nargs="+", default=["seed", "default"])
    args = p.parse_args()
    extra = {k: json.loads(v) for k, v in (e.split("=", 1) for e in args.extra)}
    torch.set_num_threads(1)
    found: dict[str, dict[str, list]] = {p: {"w2": [], "s": [], "checkpoint": []} for p in args.presets}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for preset in args.presets:
                w2, which, s = one(preset, seed, Path(tmp), extra)
                found[preset]["w2"].append(w2)
                found[preset]["s"].append(s)
                found[preset]["checkpoint"].append(which)
                print(f"{preset:8s} seed {seed}: test w2_squared {w2:.4f} ({which}.pt)  {s:.1f} s", file=sys.stderr)
    results = {
        preset: {
            "w2": stats(r["w2"]),
            "median": statistics.median(r["w2"]),
            "seconds": stats(r["s"]),
            "checkpoint": ", ".join(sorted(set(r["checkpoint"]))),
        }
        for preset, r in found.items()
    }
    rows = [
        [
            preset,
            r["w2"]["n"],
            f"{r['median']:.4f}",
            f"{r['w2']['mean']:.4f} ± {r['w2']['std']:.4f}",
            f"{min(r['w2']['values']):.4f}",
            f"{max(r['w2']['values']):.4f}",
            f"{r['seconds']['mean']:.1f}",
        ]
        for preset, r in results.items()
    ]
    print(table(rows, ["preset", "n", "median w2", "mean ± std", "min w2", "max w2", "mean s"]))
    if not extra:
        save("gan2d", {"seeds": args.seeds, "threads": 1, "results": results})


if __name__ == "__main__":
    main()
