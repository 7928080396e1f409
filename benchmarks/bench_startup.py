"""Start-up time of the commands that need no tensors (issue 18: target under 0.5 s), each a fresh
``python -m disgen ...`` process, against the plain baselines measured in the same run: an empty
Python and ``import torch`` (what every command paid before the catalog and lazy imports).

    python benchmarks/bench_startup.py [--repeats 7]

The commands run interleaved, each round starting at another one (common.rotated), so a busy
spell of the machine falls on all of them alike. Saves benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import rotated, save, stats, summary, table, warn_if_busy

PYTHON = [sys.executable]
CASES = {
    "python (empty)": PYTHON + ["-c", "pass"],
    "import torch": PYTHON + ["-c", "import torch"],
    "disgen --help": PYTHON + ["-m", "disgen", "--help"],
    "disgen models": PYTHON + ["-m", "disgen", "models"],
    "disgen datasets": PYTHON + ["-m", "disgen", "datasets"],
    "disgen train cnn-classifier --help": PYTHON + ["-m", "disgen", "train", "cnn-classifier", "--help"],
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def once(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    warn_if_busy()
    names = list(CASES)
    for name in names:  # one warm-up each: the file cache, not the first run, is measured
        once(CASES[name])
    seconds = {name: [] for name in names}
    for r in range(args.repeats):
        for name in rotated(names, r):
            seconds[name].append(once(CASES[name]))
    torch_mean = summary(seconds["import torch"])[0]
    rows = []
    for name in names:
        mean, std = summary(seconds[name])
        rows.append([name, f"{mean:.3f}", f"{std:.3f}", f"{min(seconds[name]):.3f}", f"{mean / torch_mean:.2f}"])
    print(table(rows, ["command", "mean s", "std s", "min s", "x import torch"]))
    path = save(
        "startup",
        {"repeats": args.repeats, "target_seconds": 0.5, "seconds": {name: stats(v) for name, v in seconds.items()}},
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
