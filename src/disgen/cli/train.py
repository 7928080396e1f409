"""`disgen models`, `datasets`, `train` and `eval`: the commands that list the registries and make and score runs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from disgen.cli import (
    MAX_SAMPLES,
    command,
    model_from_argv,
    run_dir_args,
    sigterm_as_interrupt,
)
from disgen.config import TrainConfig, field_types
from disgen.errors import DisgenError

SKIP = {"model", "model_args", "budget_plan"}  # not flags: model options have their own; a budget run writes its plan


def add_field(parser, name: str, kind: str, help_text: str, dest: str, choices=None) -> None:
    """``--name`` for a config field; ``kind``: "bool" (--x/--no-x), "tuple" (A,B) or "value"."""
    flag = "--" + name.replace("_", "-")
    if kind == "bool":
        parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        return
    metavar = "{" + ",".join(choices) + "}" if choices else "A,B" if kind == "tuple" else name.upper()
    parser.add_argument(flag, dest=dest, default=None, metavar=metavar, help=help_text)


def train_args(tr: argparse.ArgumentParser, argv: list[str]) -> None:
    from disgen.cli import catalog

    models = catalog.models()
    model = model_from_argv(argv)
    tr.description = "Train MODEL. Later sources win: the preset, --config FILE, flags."
    tr.add_argument("model", metavar="MODEL", choices=sorted(models), help="one of: " + ", ".join(sorted(models)))
    tr.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help="JSON file of options, keys as in a run's config.json; RUN_DIR/config.json reruns that run "
        "as it was (the same steps of a --time-budget run) into a new run directory",
    )
    tr.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        choices=("auto",),
        metavar="auto",
        help="continue the run in --run-dir after its last completed epoch (an error if it holds "
        "no run); --resume auto: continue it if it holds one, else start it. A resume keeps the run's "
        "options and may change only --epochs (to more; not for a --time-budget or --max-steps run), "
        "--lr and how it runs (--device, --precision, --channels-last, --compile, --data-on-device, "
        "--deterministic, --progress, --tensorboard, --test-every-epoch, and --dataset or --data-dir for "
        "the same images elsewhere); any other is "
        "refused before anything is written",
    )
    hints = field_types()
    for f in dataclasses.fields(TrainConfig):
        if f.name in SKIP:
            continue
        text, choices = f.metadata.get("help", ""), f.metadata.get("choices")
        if f.name == "preset" and model in models:
            choices = tuple(models[model]["presets"])
            text = f"{model}'s presets: {', '.join(choices)} (see `disgen models`)"
            if "budget" in choices:
                text += "; with --time-budget and no --preset: budget"
        add_field(tr, f.name, catalog.kind_of(hints[f.name]), text, f.name, choices)
    if model in models:
        group = tr.add_argument_group(f"options of {model} (override the preset)")
        preset = models[model]["presets"].get("default", {}).get("model", {})
        for o in models[model]["options"]:
            text = f"{o['help']}; default {o['default']!r}"
            if o["name"] in preset and preset[o["name"]] != o["default"]:
                text += f"; the default preset: {preset[o['name']]!r}"
            add_field(group, o["name"], o["kind"], text, f"model__{o['name']}", o["choices"])


def eval_args(p: argparse.ArgumentParser, argv: list[str]) -> None:
    run_dir_args(p)
    p.add_argument(
        "--split",
        default="test",
        choices=("test", "val", "train"),
        help="which split to evaluate (default: test); val and train are the run's own, "
        "checked against RUN_DIR/split.json",
    )
    p.add_argument("--dataset", help="dataset to evaluate on (default: the training dataset)")
    p.add_argument("--data-dir", help="folder holding the dataset's files")
    p.add_argument(
        "--reference",
        metavar="RUN_DIR",
        help="generators: the classifier run whose "
        "features measure them (default: one trained once per dataset and cached)",
    )
    p.add_argument(
        "--n-samples", type=int, help="generators: samples to draw (default: 10,000 images or 100,000 points)"
    )


@command("models")
def cmd_models(args) -> None:
    from disgen.cli import catalog

    models = sorted(catalog.models().items())
    width = max(len(p) for _, spec in models for p in spec["presets"])  # the presets' values in one column
    for name, spec in models:
        print(f"{name:18s} [{spec['objective']}] {spec['description']}")
        for preset, values in spec["presets"].items():
            shown = ", ".join(f"{k}={v}" for k, v in values.items() if k != "model")
            if values.get("val_split", 1) == 0:
                shown += "  [trains on the whole training split, as its document did: no validation split, no best.pt]"
            print(f"    --preset {preset:{width}s}  {shown}")


@command("datasets")
def cmd_datasets(args) -> None:
    from disgen.cli import catalog

    for name, desc in catalog.datasets().items():
        print(f"{name:15s} {desc}")
    for form in catalog.folder_forms():
        print(f"{'PATH':15s} {form}")


@command("train", train_args)
def cmd_train(args) -> None:
    from disgen.api import train
    from disgen.training import distributed

    options = {k: v for k, v in vars(args).items() if k in field_types() and k not in SKIP and v is not None}
    model_args = {k[len("model__") :]: v for k, v in vars(args).items() if k.startswith("model__") and v is not None}
    if model_args:
        options["model_args"] = model_args
    try:
        with sigterm_as_interrupt():  # `kill`, a batch system's time limit: as Ctrl-C
            run = train(args.model, config_file=args.config_file, resume=args.resume, **options)
    except BaseException:
        distributed.shutdown()
        raise
    distributed.shutdown(clean=True)
    if not distributed.is_main():  # under torchrun the main process reports
        return
    last = run.history[-1] if run.history else {}
    final = run.final or {}
    shown = {k: v for k, v in last.items() if k.startswith("val_")}
    if final:
        shown.update(
            {
                "checkpoint": final["checkpoint"],
                "checkpoint_epoch": final["checkpoint_epoch"],
                **{k: v for k, v in final.items() if k.startswith("test_")},
            }
        )
    print(json.dumps({"run_dir": str(run.run_dir), "epochs": len(run.history), **shown}))
    print(f"run directory: {run.run_dir}", file=sys.stderr)


@command("eval", eval_args)
def cmd_eval(args) -> None:
    from disgen.api import load
    from disgen.files import plain_json
    from disgen.runs import record_eval

    if args.n_samples is not None and not 1 <= args.n_samples <= MAX_SAMPLES:
        raise DisgenError(f"--n-samples must be in 1..{MAX_SAMPLES:,} (got {args.n_samples})")
    run = load(args.run_dir, args.checkpoint)
    options = {"reference": args.reference, "n_samples": args.n_samples} if run.objective.eval_context else {}
    dataset = args.dataset
    if dataset is not None and dataset != run.config.dataset:  # another dataset: are its classes the run's?
        dataset = run.dataset(dataset, args.data_dir)
        if list(dataset.classes) != list(run.classes):
            print(
                f"disgen: warning: {args.dataset}'s classes ({', '.join(dataset.classes[:10])}"
                f"{', ...' if len(dataset.classes) > 10 else ''}) differ from those the run was trained on "
                f"({', '.join(run.classes[:10])}{', ...' if len(run.classes) > 10 else ''}): its scores compare "
                "labels by number only",
                file=sys.stderr,
            )
    metrics = run.evaluate(dataset, args.data_dir, split=args.split, **options)
    result = {
        "dataset": args.dataset or run.config.dataset,
        "split": args.split,
        "checkpoint": run.checkpoint,
        "checkpoint_epoch": run.epoch,
        **metrics,
    }
    result = plain_json(result)
    print(json.dumps(result), flush=True)  # first: a run directory that cannot be written still gives it
    try:
        record_eval(Path(args.run_dir), result)
    except DisgenError as err:
        print(f"disgen: warning: the result above was not kept in eval.json: {err}", file=sys.stderr)
