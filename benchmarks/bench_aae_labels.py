"""Semi-supervised AAE against its same-architecture supervised baseline on the same labelled
subset (``--labels N``, seeded, drawn from the training part of the split), over several seeds:
the test accuracy of each run's best.pt (the best validation accuracy; the test split evaluated
once, after training), mean and spread, epochs and CPU minutes of each run (process CPU time, so
other load on the machine does not inflate it much).

    python benchmarks/bench_aae_labels.py --dataset mnist-mini --labels 100 --epochs 20 --seeds 0 1 2
    python benchmarks/bench_aae_labels.py --dataset fashion-mnist --labels 1000 --epochs 10 --baseline-epochs 100
    python benchmarks/bench_aae_labels.py --dataset fashion-mnist --labels 1000 --epochs 10 \
        --models consistency-only --name aae_fashion-mnist_1000_ablation

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
from common import save, stats, summary, table  # noqa: E402

import disgen  # noqa: E402
from disgen.models import resolve


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


def consistency_only(args, seed: int) -> dict:
    """Ablation: the AAE's encoder trained by its classification phase alone (cross-entropy on the
    labelled batch + the consistency term on the unlabelled one), without the reconstruction and
    adversarial phases: the same data, labelled subset, batches, optimizer, lr schedule, bf16
    autocast and number of steps. What the AAE's own phases add is the gap between this and the AAE."""
    import torch

    from disgen.data import load_dataset, splits, to_float
    from disgen.data.labels import LabelledLoader, labelled_indices
    from disgen.data.loader import TensorLoader
    from disgen.models import get_model
    from disgen.objectives import aae
    from disgen.objectives.optim import lr_factor

    cfg = resolve("aae", {"seed": seed, "labels": args.labels, "model_args": aae_options(args)})
    spec = get_model("aae")
    model_cfg = spec.model_config(cfg.model_args)
    data = splits.with_validation(load_dataset(args.dataset), cfg.val_split)  # the AAE's own split
    torch.manual_seed(seed)
    nets = spec.build(model_cfg, data.image_shape, len(data.classes))
    opts = aae.optimizers(nets, cfg, model_cfg)
    x, y = to_float(data.train.images, spec.value_range), data.train.labels
    lab = labelled_indices(y, args.labels, len(data.classes), seed)
    gen = torch.Generator().manual_seed(seed)
    loader = LabelledLoader(
        TensorLoader(x, y, cfg.batch_size, generator=gen), TensorLoader(x[lab], y[lab], cfg.batch_size, generator=gen)
    )
    cfg.epochs = args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opts["classifier"], lr_factor(cfg, len(loader)))
    val_x, test_x = (to_float(s.images, spec.value_range) for s in (data.val, data.test))
    val, test = [], []
    for _ in range(args.epochs):
        nets["encoder"].train()
        for xb, _, x_lab, y_lab in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                aae.classification_phase(nets, opts, x_lab, y_lab, xb, cfg=model_cfg)
            sched.step()
        val.append((aae.predict(nets, val_x).argmax(1) == data.val.labels).float().mean().item())
        test.append((aae.predict(nets, test_x).argmax(1) == data.test.labels).float().mean().item())
    best = val.index(max(val))  # chosen on validation, as best.pt; its test figure is the one reported
    return {
        "accuracy": test[best],
        "val_accuracy": val[best],
        "checkpoint_epoch": best + 1,
        "epochs": args.epochs,
        "val_per_epoch": val,
    }


def run_seed(args, baseline_opts: dict, seed: int, stamp: str) -> dict[str, dict]:
    """The models of ``--models`` on the labelled subset of ``seed``: {model: result}."""
    common = dict(dataset=args.dataset, labels=args.labels, seed=seed, progress=False)
    out = {}
    if "aae" in args.models:
        run, minutes = cpu_minutes(
            lambda: disgen.train(
                "aae",
                epochs=args.epochs,
                run_dir=f"{args.out}/{stamp}-aae-s{seed}",
                model_args=aae_options(args),
                **common,
            )
        )
        out["aae"] = {
            "seed": seed,
            "accuracy": run.final["test_accuracy"],
            "epochs": args.epochs,
            "val_accuracy": run.history[run.final["checkpoint_epoch"] - 1]["val_accuracy"],
            "checkpoint_epoch": run.final["checkpoint_epoch"],
            "cpu_minutes": minutes,
            "val_per_epoch": [h["val_accuracy"] for h in run.history],
        }
    if "baseline" in args.models:
        run, minutes = cpu_minutes(
            lambda: disgen.train(
                "mlp-classifier",
                epochs=args.baseline_epochs,
                run_dir=f"{args.out}/{stamp}-mlp-s{seed}",
                **common,
                **baseline_opts,
            )
        )
        out["baseline"] = {
            "seed": seed,
            "accuracy": run.final["test_accuracy"],
            "val_accuracy": run.history[run.final["checkpoint_epoch"] - 1]["val_accuracy"],
            "checkpoint_epoch": run.final["checkpoint_epoch"],
            "epochs": args.baseline_epochs,
            "cpu_minutes": minutes,
        }
    if "consistency-only" in args.models:
        result, minutes = cpu_minutes(lambda: consistency_only(args, seed))
        out["consistency-only"] = {"seed": seed, **result, "cpu_minutes": minutes}
    print(f"seed {seed}: " + ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in out.items()), file=sys.stderr, flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist-mini")
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--epochs", type=int, default=20, help="AAE epochs (passes over all images)")
    p.add_argument("--baseline-epochs", type=int, default=300, help="passes over the labelled subset")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="/tmp/bench-aae", help="folder for the run directories")
    p.add_argument(
        "--aae",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="AAE model options over the default preset, e.g. consistency=0",
    )
    p.add_argument("--name", help="results file name under benchmarks/results/ (default aae_DATASET_LABELS)")
    p.add_argument(
        "--models",
        default="aae,baseline",
        type=lambda v: v.split(","),
        help="comma-separated: aae, baseline, consistency-only (the ablation: the encoder "
        "with cross-entropy and the consistency term, no reconstruction or adversarial phases)",
    )
    p.add_argument("--parallel", action="store_true", help="run the seeds in parallel processes")
    args = p.parse_args()
    aae_cfg = resolve("aae", {})
    m = aae_cfg.model_args
    baseline_opts = dict(
        model_args=dict(hidden=m["hidden"], act="relu", init="default", dropout=m.get("dropout", 0.0)),
        lr=aae_cfg.lr,
        betas=aae_cfg.betas,
        optimizer=aae_cfg.optimizer,
        lr_schedule=aae_cfg.lr_schedule,
        batch_size=aae_cfg.batch_size,
    )
    rows, results = [], {m: [] for m in args.models}
    stamp = time.strftime("%H%M%S")
    jobs = [(args, baseline_opts, seed, stamp) for seed in args.seeds]
    if args.parallel:  # one process per seed, at the same time (each on its own core if there are enough)
        with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
            outcomes = list(pool.map(run_seed, *zip(*jobs)))
    else:
        outcomes = [run_seed(*job) for job in jobs]
    for outcome in outcomes:
        for name, result in outcome.items():
            results[name].append(result)
    for name, rs in results.items():
        mean, sd = summary([r["accuracy"] for r in rs])
        cpu, _ = summary([r["cpu_minutes"] for r in rs])
        rows.append([name, len(rs), f"{mean:.4f}", f"{sd:.4f}", rs[0]["epochs"], f"{cpu:.1f}"])
    print(table(rows, ["model", "n", "accuracy", "sd", "epochs", "cpu_min/run"]))
    summaries = {
        name: {
            "n": len(rs),
            "epochs": rs[0]["epochs"],
            "accuracy": stats([r["accuracy"] for r in rs]),
            "val_accuracy": stats([r["val_accuracy"] for r in rs]),
            "cpu_minutes": stats([r["cpu_minutes"] for r in rs]),
        }
        for name, rs in results.items()
    }
    path = save(
        args.name or f"aae_{args.dataset}_{args.labels}", {"args": vars(args), "results": results, "summary": summaries}
    )
    print(f"saved {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
