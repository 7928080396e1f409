"""Compare generator runs at an equal training wall-clock budget, from their metrics.jsonl alone.

For each run, the last epoch whose cumulative training seconds (the ``seconds`` column: the
optimisation loop, without the per-epoch evaluation) fit in the budget is reported with its
per-epoch test metrics (2,000 generated samples against the test split, in the reference
classifier's feature space). The budget defaults to the smallest total over the runs.

    python benchmarks/gan_equal_time.py RUN_DIR [RUN_DIR ...] [--budget SECONDS] [--name NAME]

Run the compared trainings at the same time (same load on a shared machine), e.g.
    disgen train dcgan28 --preset seed    --epochs 25 --run-dir /tmp/d28-seed &
    disgen train dcgan28 --preset default --epochs 40 --run-dir /tmp/d28-default &
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import save, table  # noqa: E402

from disgen.runs import read_config, read_metrics  # noqa: E402

COLUMNS = ["frechet_distance", "kid", "class_kl", "min_class_share", "classes_covered", "precision", "recall"]


def at_budget(history: list[dict], budget: float) -> tuple[dict, float]:
    spent, chosen, chosen_spent = 0.0, None, 0.0
    for record in history:
        spent += record["seconds"]
        if spent <= budget * 1.0001:
            chosen, chosen_spent = record, spent
    if chosen is None:
        raise SystemExit(f"no epoch fits in {budget:.0f} s")
    return chosen, chosen_spent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--budget", type=float)
    p.add_argument("--name", default="gan_equal_time")
    args = p.parse_args()
    histories = {r: read_metrics(Path(r)) for r in args.runs}
    budget = args.budget or min(sum(h["seconds"] for h in hist) for hist in histories.values())
    rows, payload = [], {"budget_s": budget, "runs": {}}
    for run, hist in histories.items():
        cfg = read_config(Path(run))
        record, spent = at_budget(hist, budget)
        values = {c: record.get(f"test_{c}") for c in COLUMNS}
        payload["runs"][run] = {"model": cfg.model, "preset": cfg.preset, "dataset": cfg.dataset,
                                "epoch": record["epoch"], "train_s": spent, **values}
        rows.append([f"{cfg.model} {cfg.preset}", cfg.dataset, record["epoch"], f"{spent:.0f}"] +
                    [f"{v:.4g}" if isinstance(v, float) else "-" for v in values.values()])
    print(f"budget: {budget:.0f} s of training per run")
    print(table(rows, ["run", "dataset", "epoch", "train s"] + COLUMNS))
    save(args.name, payload)


if __name__ == "__main__":
    main()
