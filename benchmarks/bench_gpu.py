"""The GPU benchmark: one script that measures what disgen's speed settings give on a GPU.

    python benchmarks/bench_gpu.py                      # on a machine with a CUDA GPU
    python benchmarks/bench_gpu.py --device cpu --quick # the test suite's smoke run (under a minute)

It measures, in one process, with the results in ``--out`` (default benchmarks/results/gpu.json)
and a printed table:

1. Steps/s of every registered model's default preset (and dcgan28's seed preset, seed 002's
   step, the one docs/speed.md quotes) under four configurations: ``fp32`` (float32, NCHW),
   ``auto`` (``--precision auto``), ``auto+cl`` (and ``--channels-last on``) and
   ``auto+cl+compile`` (and ``--compile``). Each configuration is its own Trainer on the same
   images; after ``--warmup`` steps (which include compilation) the configurations take turns,
   ``--repeats`` rounds of ``--steps`` steps each in a rotated order, ``torch.cuda.synchronize``
   before and after each timed stretch. The ratio to fp32 is paired per round (fp32 seconds /
   configuration seconds). A configuration that fails (``--compile`` without a working compiler)
   records its error and the rest go on; a model whose data or weights are not on this machine is
   skipped with the reason. Models whose data shape is not the images' (dcgan64's 64x64 RGB,
   resnet-transfer's 256x256) time on random images of their shape: timing does not depend on
   what the images show.
2. Time to 93% on Fashion-MNIST: ``cnn-classifier``'s default preset under ``--precision auto``;
   training seconds (the sum of the epochs' steps) until the **validation** accuracy, read after
   each epoch, first reaches 93%, within the preset's epochs (``--tta-epochs``), and the test
   accuracy of best.pt (chosen on validation, evaluated once).
3. Agreement: a short run of each model (``--agree-epochs``, seed 0) under fp32 and under
   ``--precision auto``; the final test metric that picks the model's best.pt must agree within
   TOLERANCES below (absolute for accuracy, relative for the losses and the Fréchet distance) on
   at most 1,000 test images. Each is recorded with its tolerance and pass/fail.

The full run uses Fashion-MNIST (disgen downloads it on first use into ``$DISGEN_HOME``); where
it cannot be had, the timing uses mnist-mini's images and the time to 93% is skipped with the
reason. Pretrained weights are never downloaded: resnet-transfer is timed only where they are
already on disk.

``--quick`` shrinks everything to check the script, not to measure: batch 8, one warm-up step and
2 rounds of 2 steps, no ``--compile`` (recorded as skipped: compiling seed 002's DCGAN took 42 s
on a CPU, docs/speed.md), and one epoch on 128 mnist-mini images for the time to accuracy and for
the agreement runs, which cover cnn-classifier and mlp-autoencoder only. Its figures are no
measurement. It takes about 25 s on 2 busy CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_flops import synthetic  # noqa: E402
from bench_speed import labels_for  # noqa: E402
from common import RESULTS, cpu_model, load_data, make_trainer, rotated, save, stats, subset, table, warn_if_busy  # noqa: E402

import disgen  # noqa: E402
from disgen.data import load_dataset  # noqa: E402
from disgen.errors import DisgenError  # noqa: E402
from disgen.models import get_model, list_models, resolve  # noqa: E402
from disgen.objectives import get_objective  # noqa: E402
from disgen.training.precision import resolve_device  # noqa: E402

CONFIGS = {
    "fp32": {"precision": "fp32", "channels_last": "off", "compile": False},
    "auto": {"precision": "auto", "channels_last": "off", "compile": False},
    "auto+cl": {"precision": "auto", "channels_last": "on", "compile": False},
    "auto+cl+compile": {"precision": "auto", "channels_last": "on", "compile": True},
}
# metric -> (kind, tolerance): |auto - fp32| <= tol ("abs"), or <= tol * |fp32| ("rel"). One short
# run each, so the tolerance is the seed-to-seed spread of such runs, not float rounding.
TOLERANCES = {
    "accuracy": ("abs", 0.02),
    "mse": ("rel", 0.10),
    "log_loss": ("rel", 0.10),
    "frechet_distance": ("rel", 0.25),
}
TTA_TARGET = 0.93
QUICK_AGREE = ("cnn-classifier", "mlp-autoencoder")


@dataclass
class Settings:
    device: torch.device
    quick: bool
    warmup: int  # steps before timing (compilation happens here)
    steps: int  # steps per timed stretch
    repeats: int  # rounds over the configurations
    batch: int | None  # None: the preset's


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def missing_weights(model: str, preset: str) -> str | None:
    """Why ``model``'s preset cannot start here (pretrained weights not on disk), or None. The
    benchmark never downloads: a GPU machine is often offline."""
    from disgen.models.weights import PRETRAINED, weights_dir

    spec = get_model(model)
    cfg = spec.model_config(resolve(model, {"preset": preset}).model_args)
    if not getattr(cfg, "pretrained", False) or getattr(cfg, "weights", None):
        return None
    name = PRETRAINED[cfg.arch]
    if any((d / name).is_file() for d in (weights_dir(), Path(torch.hub.get_dir()) / "checkpoints")):
        return None
    return f"its pretrained ImageNet weights ({name}) are not in {weights_dir()}; put them there to time it"


def case_data(model: str, preset: str, images, n: int):
    """``n`` training images for ``model``: its preset's own dataset where it names one (gan2d's
    points), else ``images``; random images where the model's data shape is another."""
    spec, cfg = get_model(model), resolve(model, {"preset": preset})
    shape = spec.data_shape(spec.model_config(cfg.model_args))
    data = load_dataset(cfg.dataset) if "dataset" in spec.presets[preset] else images
    if shape is not None and tuple(shape) != tuple(data.image_shape):
        return synthetic(tuple(shape), n)
    return subset(data, n)


def steps_forever(trainer):
    while True:
        yield from trainer.loader


def run_steps(trainer, batches, n: int) -> float:
    """Wall seconds of ``n`` training steps, the device synchronised before and after."""
    sync(trainer.device)
    start = time.perf_counter()
    for _ in range(n):
        trainer.take_step(next(batches))
    sync(trainer.device)
    return time.perf_counter() - start


def error_text(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:300]


def time_case(model: str, preset: str, images, s: Settings, run_dir: Path) -> dict:
    batch = s.batch or resolve(model, {"preset": preset}).batch_size
    data = case_data(model, preset, images, batch * (4 if s.quick else 20))
    options = {"preset": preset, "device": str(s.device), "batch_size": batch}
    if resolve(model, {"preset": preset}).labels:
        options["labels"] = labels_for(data, resolve(model, {"preset": preset}).labels)
    sides, out = {}, {"model": model, "preset": preset, "dataset": data.name, "batch": batch, "configs": {}}
    for name, config in CONFIGS.items():
        if config["compile"] and s.quick:
            out["configs"][name] = {"skipped": "--quick: torch.compile takes tens of seconds on a CPU"}
            continue
        try:
            torch.manual_seed(0)
            trainer = make_trainer(model, data, {**options, **config}, run_dir / name)
            batches = steps_forever(trainer)
            warmup = run_steps(trainer, batches, s.warmup)
        except Exception as err:  # e.g. --compile without a working compiler: record it, go on
            out["configs"][name] = {"error": error_text(err)}
            print(f"  {model} {name}: {error_text(err)}", file=sys.stderr)
            continue
        sides[name] = (trainer, batches)
        out["configs"][name] = {**trainer.speed.as_dict(), "warmup_seconds": round(warmup, 3), "seconds": []}
    for r in range(s.repeats):
        for name in rotated(list(sides), r):
            trainer, batches = sides[name]
            out["configs"][name]["seconds"].append(run_steps(trainer, batches, s.steps))
    base = out["configs"].get("fp32", {}).get("seconds")
    for name in sides:
        c = out["configs"][name]
        c["steps_per_s"] = stats([s.steps / t for t in c["seconds"]])
        c["ms_per_step"] = stats([1e3 * t / s.steps for t in c["seconds"]])
        c["ratio_to_fp32"] = stats([b / t for b, t in zip(base, c["seconds"])]) if base else None
    return out


def final_metric(model: str, final: dict) -> tuple[str, float]:
    """The test metric that picks ``model``'s best.pt, from a run's final record."""
    test = {k.removeprefix("test_"): v for k, v in final.items() if k.startswith("test_")}
    metric, _ = get_objective(get_model(model).objective).pick(test)
    return metric, float(test[metric])


def agrees(metric: str, fp32: float, auto: float) -> dict:
    kind, tol = TOLERANCES.get(metric, ("rel", 0.10))
    allowed = tol if kind == "abs" else tol * abs(fp32)
    diff = auto - fp32
    return {"difference": diff, "tolerance": tol, "kind": kind, "allowed": allowed, "agree": abs(diff) <= allowed}


def agreement(model: str, images, s: Settings, epochs: int, run_dir: Path) -> dict:
    """A short run under fp32 and under --precision auto, seed 0: the final test metric of each."""
    data = case_data(model, "default", images, 128 if s.quick else len(images.train))
    if data.name.startswith("random-"):  # bench_flops.synthetic's images
        return {"skipped": f"no dataset of {model}'s data shape here (its timing used random images)"}
    options = {"epochs": epochs, "seed": 0, "device": str(s.device), "progress": False}
    if s.batch:
        options["batch_size"] = s.batch
    out = {"dataset": data.name, "images": len(data.train), "epochs": epochs}
    for precision in ("fp32", "auto"):
        run = disgen.train(model, dataset_obj=data, precision=precision, run_dir=str(run_dir / precision), **options)
        out["metric"], out[precision] = final_metric(model, run.final)
        out[f"{precision}_precision"] = used_precision(run)
    return {**out, **agrees(out["metric"], out["fp32"], out["auto"])}


def used_precision(run) -> str:
    """The number format ``run`` trained in (run.json records what ``auto`` resolved to)."""
    import json

    return json.loads((run.dir / "run.json").read_text()).get("precision", "auto")


def time_to_accuracy(s: Settings, epochs: int | None, run_dir: Path) -> dict:
    """cnn-classifier's default preset on Fashion-MNIST: training seconds until validation
    accuracy first reaches TTA_TARGET; the test accuracy of best.pt."""
    if s.quick:
        data, options = subset(load_dataset("mnist-mini"), 128), {"epochs": 1, "batch_size": s.batch}
    else:
        try:
            data, options = load_dataset("fashion-mnist"), ({"epochs": epochs} if epochs else {})
        except (DisgenError, OSError) as err:
            return {"skipped": f"fashion-mnist is not on this machine ({str(err).splitlines()[0]})"}
    start = time.perf_counter()
    run = disgen.train(
        "cnn-classifier",
        dataset_obj=data,
        device=str(s.device),
        seed=0,
        progress=False,
        run_dir=str(run_dir),
        **options,
    )
    wall = time.perf_counter() - start
    train_s, reached, curve = 0.0, None, []
    for r in run.history:
        train_s += r["seconds"]
        curve.append({"epoch": r["epoch"], "train_seconds": round(train_s, 3), "val_accuracy": r["val_accuracy"]})
        if reached is None and r["val_accuracy"] >= TTA_TARGET:
            reached = train_s
    return {
        "model": "cnn-classifier",
        "preset": "default",
        "dataset": data.name,
        "target": TTA_TARGET,
        "epochs": run.config.epochs,
        "train_seconds_to_target": reached,
        "test_accuracy": run.final["test_accuracy"],
        "checkpoint_epoch": run.final.get("checkpoint_epoch"),
        "wall_seconds": round(wall, 1),
        "curve": curve,
    }


def cases() -> list[tuple[str, str]]:
    """Every registered model's default preset, and dcgan28's seed preset (seed 002's step)."""
    return [(m, "default") for m in list_models()] + [("dcgan28", "seed")]


def print_tables(results: dict) -> None:
    names, rows, notes = list(CONFIGS), [], []
    for case in results["models"].values():
        label = f"{case['model']} ({case['preset']})"
        if "skipped" in case:
            notes.append(f"{label}: skipped: {case['skipped']}")
            continue
        cells = []
        for name in names:
            c = case["configs"][name]
            if "steps_per_s" not in c:
                cells.append("skipped" if "skipped" in c else "error")
                notes.append(f"{name}: skipped: {c['skipped']}" if "skipped" in c else f"{label} {name}: {c['error']}")
            else:
                ratio = c["ratio_to_fp32"]
                cells.append(f"{c['steps_per_s']['mean']:,.1f}" + (f" ({ratio['mean']:.2f}x)" if ratio else ""))
        rows.append([label, case["batch"], *cells])
    print(
        f"\ntraining steps/s (ratio to fp32, paired per round), n={results['settings']['repeats']} rounds "
        f"of {results['settings']['steps']} steps, {results['device_name']}"
    )
    print(table(rows, ["model (preset)", "batch", *names]))
    print("\n".join(dict.fromkeys(notes)))
    tta = results["time_to_accuracy"]
    if "skipped" in tta:
        print(f"\ntime to {100 * TTA_TARGET:.0f}%: skipped: {tta['skipped']}")
    else:
        to = tta["train_seconds_to_target"]
        print(
            f"\ntime to {100 * TTA_TARGET:.0f}% validation accuracy, cnn-classifier default, {tta['dataset']}: "
            + (f"{to:.1f} training s" if to is not None else f"not reached in {tta['epochs']} epochs")
            + f"; test accuracy of best.pt {100 * tta['test_accuracy']:.2f}%"
        )
    rows = []
    for model, a in results["agreement"].items():
        if "skipped" in a:
            rows.append([model, "", "", "", "", f"skipped: {a['skipped']}"])
            continue
        tol = f"{a['tolerance']:g}" + (" x fp32" if a["kind"] == "rel" else "")
        verdict = "agree" if a["agree"] else "DISAGREE"
        rows.append([model, a["metric"], f"{a['fp32']:.4f}", f"{a['auto']:.4f} ({a['auto_precision']})", tol, verdict])
    print("\nshort runs, final test metric, fp32 against --precision auto (seed 0)")
    print(table(rows, ["model", "metric", "fp32", "auto", "tolerance", ""]))


def save_to(path: Path, payload: dict) -> Path:
    """common.save (the commit, command and machine with the payload, written atomically) to ``path``."""
    import common

    common.RESULTS = path.parent  # where save() writes NAME.json
    return save(path.stem, payload)


def measure(s: Settings, images, agree_models, agree_epochs: int, tta_epochs: int | None) -> dict:
    """The three parts of the benchmark, each printing its progress to stderr."""
    models, agreed = {}, {}
    with tempfile.TemporaryDirectory(prefix="disgen-bench-gpu-") as tmp:
        for model, preset in cases():
            key = model if preset == "default" else f"{model} --preset {preset}"
            why, t0 = missing_weights(model, preset), time.perf_counter()
            models[key] = (
                {"model": model, "preset": preset, "skipped": why}
                if why
                else time_case(model, preset, images, s, Path(tmp) / key.replace(" ", "_"))
            )
            done = f"skipped: {why}" if why else f"timed in {time.perf_counter() - t0:.1f} s"
            print(f"{key}: {done}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        tta = time_to_accuracy(s, tta_epochs, Path(tmp) / "tta")
        print(f"time to accuracy: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        for model in agree_models:
            why, t0 = missing_weights(model, "default"), time.perf_counter()
            agreed[model] = (
                {"skipped": why} if why else agreement(model, images, s, agree_epochs, Path(tmp) / f"agree-{model}")
            )
            print(f"agreement {model}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return {"models": models, "time_to_accuracy": tta, "agreement": agreed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    ap.add_argument("--quick", action="store_true", help="a smoke run that checks the script (no measurement)")
    ap.add_argument("--dataset", default="fashion-mnist", help="28x28 images for the timing (falls back to mnist-mini)")
    ap.add_argument("--warmup", type=int, default=10, help="steps before timing (compilation happens here)")
    ap.add_argument("--steps", type=int, default=50, help="steps per timed stretch")
    ap.add_argument("--repeats", type=int, default=3, help="rounds over the configurations")
    ap.add_argument("--tta-epochs", type=int, help="time to accuracy: epochs at most (default: the preset's)")
    ap.add_argument("--agree-epochs", type=int, default=3, help="epochs of each agreement run")
    ap.add_argument("--out", type=Path, default=RESULTS / "gpu.json")
    args = ap.parse_args()
    begin = time.perf_counter()
    device = resolve_device(args.device)
    if args.quick:
        s = Settings(device, True, warmup=1, steps=2, repeats=2, batch=8)
        images, agree_models, agree_epochs = load_dataset("mnist-mini"), QUICK_AGREE, 1
    else:
        s = Settings(device, False, args.warmup, args.steps, args.repeats, None)
        images, agree_models, agree_epochs = load_data(args.dataset), list_models(), args.agree_epochs
    if device.type == "cpu":
        warn_if_busy()
    measured = measure(s, images, agree_models, agree_epochs, args.tta_epochs)
    cpu = f"{cpu_model()}, {torch.get_num_threads()} torch thread(s)"
    results = {
        # first: the table quotes it, and the tables' drift test changes the first "mean" it finds
        "wall_seconds": stats([time.perf_counter() - begin]),
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "quick": s.quick,
        "settings": {"warmup": s.warmup, "steps": s.steps, "repeats": s.repeats, "batch": s.batch},
        "configs": CONFIGS,
        "tolerances": {k: {"kind": kind, "tolerance": t} for k, (kind, t) in TOLERANCES.items()},
        **measured,
    }
    print_tables(results)
    path = save_to(args.out, results)
    print(f"saved {path} ({results['wall_seconds']['mean']:.0f} s in all)")


if __name__ == "__main__":
    main()
