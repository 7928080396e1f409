"""What ``--precision auto`` costs: the same runs in ``--precision fp32`` and ``--precision auto``, side
by side, over seeds, for every model whose ``auto`` is not float32 on this machine. Each run is a
``disgen train`` subprocess (two at a time, one thread each); what is compared is the figure the
run chooses its checkpoint by, on the validation split (the test split is not read), and the
seconds of training.

    python benchmarks/bench_precision.py [--seeds 0 1 2 3 4] [--jobs 2] [--cases cnn aae dcgan28]

Cases, each on the model's default data:
  cnn      cnn-classifier default preset, mnist-mini (30 epochs): best validation accuracy
  aae      semi-supervised aae default preset, mnist-mini, --labels 100 (30 epochs): best validation accuracy
  dcgan28  dcgan28 default preset, mnist-mini (10 of its 30 epochs): best validation Fréchet distance

Each run is saved as it ends (results/precision_auto.json); a rerun skips what the file holds at
this commit.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, load_average, machine, provenance  # noqa: E402

NAME = "precision_auto"
# case -> (disgen train arguments, the validation metric, its better side)
CASES = {
    "cnn": (["cnn-classifier", "--dataset", "mnist-mini"], "val_accuracy", "max"),
    "aae": (["aae", "--dataset", "mnist-mini", "--labels", "100", "--epochs", "30"], "val_accuracy", "max"),
    "dcgan28": (["dcgan28", "--dataset", "mnist-mini", "--epochs", "10"], "val_frechet_distance", "min"),
}


def train(args: list[str], run_dir: Path) -> dict:
    """One run: its per-epoch records, what --precision it trained in, and its training seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "disgen", "train", *args, "--run-dir", str(run_dir), "--no-progress", "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"disgen train {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if not r.get("final")]
    return {
        "epochs": [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in epochs],
        "precision": json.loads((run_dir / "run.json").read_text())["precision"],
        "train_seconds": sum(r.get("seconds", 0) for r in epochs),
        "wall_seconds": time.perf_counter() - start,
    }


def read_results() -> dict:
    path = RESULTS / f"{NAME}.json"
    return json.loads(path.read_text()) if path.is_file() else {"runs": {}}


def save_run(key: str, record: dict) -> None:
    path = RESULTS / f"{NAME}.json"
    with open(RESULTS / f".{NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = read_results()
        results["runs"][key] = record
        results["cases"] = {c: {"args": a, "metric": m, "better": b} for c, (a, m, b) in CASES.items()}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--rerun", action="store_true")
    args = ap.parse_args()
    stamp, held = provenance(), read_results()["runs"]
    jobs = [
        (case, p, s)
        for case in args.cases
        for s in args.seeds
        for p in ("fp32", "auto")
        if args.rerun or held.get(f"{case}/{p}/{s}", {}).get("commit") != stamp["commit"]
    ]

    def one(job: tuple[str, str, int]) -> None:
        case, precision, seed = job
        with tempfile.TemporaryDirectory() as tmp:
            run = train(CASES[case][0] + ["--precision", precision, "--seed", str(seed)], Path(tmp) / "run")
        run.update(stamp, case=case, asked=precision, seed=seed, machine={**machine(), "threads": 1})
        run["load_average"] = load_average()
        save_run(f"{case}/{precision}/{seed}", run)
        print(f"{case} {precision} ({run['precision']}) seed {seed}: {run['train_seconds']:.0f} s", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        for f in [pool.submit(one, job) for job in jobs]:
            f.result()


if __name__ == "__main__":
    main()
