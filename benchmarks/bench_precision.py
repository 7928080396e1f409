"""Quality under bfloat16: the same runs in ``--precision fp32`` and ``--precision bf16``, side by
side, over seeds. Each run is a ``disgen train`` subprocess (two at a time, one thread each); the
final epoch's test metrics are compared.

    python benchmarks/bench_precision.py [--seeds 0 1 2] [--jobs 2] [--cases cnn aae dcgan28]

Cases (what bf16 must not change beyond seed-to-seed noise):
  cnn      cnn-classifier --preset fast on Fashion-MNIST (7 epochs): test accuracy
  aae      semi-supervised aae on mnist-mini with --labels 100 (20 epochs): test accuracy
  dcgan28  dcgan28 default preset on mnist-mini (10 epochs): Fréchet distance, min_class_share
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import save, summary, table  # noqa: E402

CASES = {
    "cnn": (["cnn-classifier", "--preset", "fast", "--dataset", "fashion-mnist"], ["test_accuracy"]),
    "aae": (["aae", "--dataset", "mnist-mini", "--labels", "100", "--epochs", "20"], ["test_accuracy"]),
    "dcgan28": (
        ["dcgan28", "--dataset", "mnist-mini", "--epochs", "10"],
        ["test_frechet_distance", "test_min_class_share"],
    ),
}


def train(args: list[str], run_dir: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "disgen", "train", *args, "--run-dir", str(run_dir), "--no-progress", "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"disgen train {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = ap.parse_args()
    jobs = [(case, p, s) for case in args.cases for s in args.seeds for p in ("fp32", "bf16")]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        futures = {
            job: pool.submit(
                train,
                CASES[job[0]][0] + ["--precision", job[1], "--seed", str(job[2])],
                Path(tmp) / "-".join(map(str, job)),
            )
            for job in jobs
        }
        results = {job: f.result() for job, f in futures.items()}
    rows, payload = [], {}
    for case in args.cases:
        for metric in CASES[case][1]:
            values = {p: [results[(case, p, s)][metric] for s in args.seeds] for p in ("fp32", "bf16")}
            payload[f"{case} {metric}"] = values
            rows.append(
                [case, metric.removeprefix("test_")]
                + [f"{summary(values[p])[0]:.4f} ± {summary(values[p])[1]:.4f}" for p in ("fp32", "bf16")]
            )
    print(f"final test metrics, mean ± std over seeds {args.seeds}")
    print(table(rows, ["case", "metric", "fp32", "bf16"]))
    print(f"saved {save('precision_quality', {'seeds': args.seeds, 'results': payload})}")


if __name__ == "__main__":
    main()
