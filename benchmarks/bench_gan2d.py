"""gan2d on seed 003's Gaussian: final ``w2_squared`` to the true Gaussian and wall time of the
``seed`` and ``default`` presets over several seeds, alternating presets in one process.

    python benchmarks/bench_gan2d.py [--seeds 0 1 2 3 4] [--extra key=value ...]
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
from common import save, table  # noqa: E402

import disgen  # noqa: E402


def one(preset: str, seed: int, root: Path, extra: dict) -> tuple[float, float]:
    start = time.perf_counter()
    run = disgen.train("gan2d", preset=preset, seed=seed, progress=False,
                       run_dir=str(root / f"{preset}-{seed}"), **(extra if preset == "default" else {}))
    return run.history[-1]["test_w2_squared"], time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--extra", nargs="*", default=[], help="overrides of the default preset, key=json")
    p.add_argument("--presets", nargs="+", default=["seed", "default"])
    args = p.parse_args()
    extra = {k: json.loads(v) for k, v in (e.split("=", 1) for e in args.extra)}
    torch.set_num_threads(1)
    results: dict[str, dict[str, list[float]]] = {p: {"w2": [], "s": []} for p in args.presets}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for preset in args.presets:
                w2, s = one(preset, seed, Path(tmp), extra)
                results[preset]["w2"].append(w2)
                results[preset]["s"].append(s)
                print(f"{preset:8s} seed {seed}: w2_squared {w2:.4f}  {s:.1f} s", file=sys.stderr)
    rows = [[preset, len(r["w2"]), f"{statistics.median(r['w2']):.4f}", f"{min(r['w2']):.4f}",
             f"{max(r['w2']):.4f}", f"{statistics.median(r['s']):.1f}"] for preset, r in results.items()]
    print(table(rows, ["preset", "n", "median w2", "min w2", "max w2", "median s"]))
    if not extra:
        save("gan2d", {"seeds": args.seeds, "results": results})


if __name__ == "__main__":
    main()
