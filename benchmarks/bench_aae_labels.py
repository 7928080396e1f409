"""Semi-supervised AAE against its same-architecture supervised baseline on the same labelled
subset (``--labels N``, seeded), over several seeds: test accuracy at the last epoch, mean and
spread, epochs and CPU minutes of each run (process CPU time, so other load on the machine does
not inflate it much).

    python benchmarks/bench_aae_labels.py --dataset mnist-mini --labels 100 --epochs 20 --seeds 0 1 2
    python benchmarks/bench_aae_labels.py --dataset fashion-mnist --labels 1000 --epochs 5

The AAE is the ``default`` preset, with ``--aae KEY=VALUE ...`` changing its model options (e.g.
``--aae consistency=0``: the paper's AAE without the consistency term). The baseline is
``mlp-classifier --act relu --init default --hidden H --dropout P``: the AAE's encoder body and y
head, the same optimizer, lr, betas and lr schedule, trained on the labelled subset only, for
``--baseline-epochs`` passes over it.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import save, summary, table  # noqa: E402

import disgen  # noqa: E402
from disgen.config import resolve  # noqa: E402


def cpu_minutes(fn):
    start = time.process_time()
    out = fn()
    return out, (time.process_time() - start) / 60


def aae_options(args) -> dict:
    """``--aae KEY=VALUE`` pairs as model options (numbers parsed; the config checks the rest)."""
    out = {}
    for pair in args.aae:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--aae {pair!r}: give KEY=VALUE, e.g. consistency=0")
        try:
            out[key.replace("-", "_")] = float(value) if "." in value or "e" in value else int(value)
        except ValueError:
            out[key.replace("-", "_")] = value
    return out


def run_seed(args, baseline_opts: dict, seed: int, stamp: str) -> tuple[dict, dict]:
    """The AAE and its baseline on the labelled subset of ``seed``: (aae result, baseline result)."""
    common = dict(dataset=args.dataset, labels=args.labels, seed=seed, progress=False)
    run, minutes = cpu_minutes(lambda: disgen.train(
        "aae", epochs=args.epochs, run_dir=f"{args.out}/{stamp}-aae-s{seed}", model_args=aae_options(args),
        **common))
    aae = {"seed": seed, "accuracy": run.history[-1]["test_accuracy"], "epochs": args.epochs,
           "cpu_minutes": minutes, "per_epoch": [h["test_accuracy"] for h in run.history]}
    run, minutes = cpu_minutes(lambda: disgen.train(
        "mlp-classifier", epochs=args.baseline_epochs, run_dir=f"{args.out}/{stamp}-mlp-s{seed}",
        **common, **baseline_opts))
    baseline = {"seed": seed, "accuracy": run.history[-1]["test_accuracy"], "epochs": args.baseline_epochs,
                "cpu_minutes": minutes}
    print(f"seed {seed}: aae {aae['accuracy']:.4f}, baseline {baseline['accuracy']:.4f}",
          file=sys.stderr, flush=True)
    return aae, baseline


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist-mini")
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--epochs", type=int, default=20, help="AAE epochs (passes over all images)")
    p.add_argument("--baseline-epochs", type=int, default=300, help="passes over the labelled subset")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="/tmp/bench-aae", help="folder for the run directories")
    p.add_argument("--aae", nargs="*", default=[], metavar="KEY=VALUE",
                   help="AAE model options over the default preset, e.g. consistency=0")
    p.add_argument("--name", help="results file name under benchmarks/results/ "
                                   "(default aae_DATASET_LABELS)")
    p.add_argument("--parallel", action="store_true", help="run the seeds in parallel processes")
    args = p.parse_args()
    aae_cfg = resolve("aae", {})
    m = aae_cfg.model_args
    baseline_opts = dict(model_args=dict(hidden=m["hidden"], act="relu", init="default",
                                         dropout=m.get("dropout", 0.0)),
                         lr=aae_cfg.lr, betas=aae_cfg.betas, optimizer=aae_cfg.optimizer,
                         lr_schedule=aae_cfg.lr_schedule, batch_size=aae_cfg.batch_size)
    rows, results = [], {"aae": [], "baseline": []}
    stamp = time.strftime("%H%M%S")
    jobs = [(args, baseline_opts, seed, stamp) for seed in args.seeds]
    if args.parallel:  # one process per seed, at the same time (each on its own core if there are enough)
        with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
            outcomes = list(pool.map(run_seed, *zip(*jobs)))
    else:
        outcomes = [run_seed(*job) for job in jobs]
    for aae, baseline in outcomes:
        results["aae"].append(aae)
        results["baseline"].append(baseline)
    for name, rs in results.items():
        mean, sd = summary([r["accuracy"] for r in rs])
        cpu, _ = summary([r["cpu_minutes"] for r in rs])
        rows.append([name, len(rs), f"{mean:.4f}", f"{sd:.4f}", rs[0]["epochs"], f"{cpu:.1f}"])
    print(table(rows, ["model", "n", "accuracy", "sd", "epochs", "cpu_min/run"]))
    path = save(args.name or f"aae_{args.dataset}_{args.labels}", {"args": vars(args), "results": results})
    print(f"saved {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
