"""The ``disgen`` command line. ``disgen --help`` lists the commands; every ``train`` flag is
generated from :class:`disgen.config.TrainConfig` and the chosen model's config dataclass."""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import typing
from pathlib import Path

from disgen.config import TrainConfig, field_types
from disgen.errors import DisgenError

SKIP = {"model", "model_args"}


def add_field(parser, name: str, kind, help_text: str, dest: str) -> None:
    flag = "--" + name.replace("_", "-")
    if kind is bool:
        parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None,
                            help=help_text)
        return
    metavar = name.upper()
    if typing.get_origin(kind) is tuple:
        metavar = "A,B"
    parser.add_argument(flag, dest=dest, default=None, metavar=metavar, help=help_text)


def model_from_argv(argv: list[str]) -> str | None:
    """The model named after ``train`` (flags come after it), so its options can be added."""
    if len(argv) >= 2 and argv[0] == "train" and not argv[1].startswith("-"):
        return argv[1]
    return None


def build_parser(model: str | None = None) -> argparse.ArgumentParser:
    from disgen.models import get_model, list_models

    parser = argparse.ArgumentParser(
        prog="disgen", description="Train, evaluate, sample and inspect classic image models.")
    parser.add_argument("--version", action="version", version=f"disgen {__import__('disgen').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("models", help="list models and their presets")
    sub.add_parser("datasets", help="list datasets")

    tr = sub.add_parser("train", help="train a model into a run directory",
                        description="Train MODEL. Later sources win: the preset, --config FILE, flags.")
    tr.add_argument("model", metavar="MODEL", choices=list_models(),
                    help="one of: " + ", ".join(list_models()))
    tr.add_argument("--config", dest="config_file", metavar="FILE", help="JSON file of options")
    tr.add_argument("--resume", action="store_true",
                    help="continue the run in --run-dir after its last completed epoch")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name, kind in field_types().items():
        if name not in SKIP:
            add_field(tr, name, kind, fields[name].metadata.get("help", ""), name)
    if model in list_models():
        spec = get_model(model)
        group = tr.add_argument_group(f"options of {model} (override the preset)")
        hints = typing.get_type_hints(spec.config_cls)
        for f in dataclasses.fields(spec.config_cls):
            add_field(group, f.name, hints[f.name], f"default {f.default!r}", f"model__{f.name}")

    ev = sub.add_parser("eval", help="evaluate a run on a test split and write RUN_DIR/eval.json")
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--dataset", help="dataset to evaluate on (default: the training dataset)")
    ev.add_argument("--data-dir", help="folder holding the dataset's files")
    ev.add_argument("--checkpoint", default="last", choices=("last", "best"))

    pr = sub.add_parser("predict", help="classify images, folders or IDX files into a CSV")
    pr.add_argument("run_dir", metavar="RUN_DIR")
    pr.add_argument("inputs", metavar="INPUT", nargs="+", help="image files, folders, IDX image files")
    pr.add_argument("--out", metavar="FILE.csv", help="CSV to write (default: print to stdout)")
    pr.add_argument("--checkpoint", default="last", choices=("last", "best"))

    rc = sub.add_parser("reconstruct", help="autoencoder reconstructions of images as a grid PNG")
    rc.add_argument("run_dir", metavar="RUN_DIR")
    rc.add_argument("inputs", metavar="INPUT", nargs="+", help="image files, folders, IDX image files")
    rc.add_argument("--out", metavar="GRID.png", required=True)
    rc.add_argument("--checkpoint", default="last", choices=("last", "best"))
    return parser


def cmd_models(args) -> None:
    from disgen.models import get_model, list_models

    for name in list_models():
        spec = get_model(name)
        print(f"{name:18s} [{spec.objective}] {spec.description}")
        for preset, values in spec.presets.items():
            shown = ", ".join(f"{k}={v}" for k, v in values.items() if k != "model")
            print(f"    --preset {preset:8s} {shown}")


def cmd_datasets(args) -> None:
    from disgen.data import list_datasets

    for name, desc in list_datasets().items():
        print(f"{name:15s} {desc}")
    print("PATH           a folder holding the four IDX files of an MNIST-like dataset")


def cmd_train(args) -> None:
    from disgen.api import train

    options = {k: v for k, v in vars(args).items()
               if k in field_types() and k not in SKIP and v is not None}
    model_args = {k[len("model__"):]: v for k, v in vars(args).items()
                  if k.startswith("model__") and v is not None}
    if model_args:
        options["model_args"] = model_args
    run = train(args.model, config_file=args.config_file, resume=args.resume, **options)
    final = run.history[-1] if run.history else {}
    tests = {k: v for k, v in final.items() if k.startswith("test_")}
    print(json.dumps({"run_dir": str(run.dir), "epochs": len(run.history), **tests}))
    print(f"run directory: {run.dir}", file=sys.stderr)


def cmd_eval(args) -> None:
    from disgen.api import load
    from disgen.runs import write_json

    run = load(args.run_dir, args.checkpoint)
    metrics = run.evaluate(args.dataset, args.data_dir)
    result = {"dataset": args.dataset or run.config.dataset, "checkpoint": args.checkpoint, **metrics}
    write_json(Path(args.run_dir) / "eval.json", result)
    print(json.dumps(result))


def cmd_predict(args) -> None:
    from disgen.api import load
    from disgen.images import load_inputs

    run = load(args.run_dir, args.checkpoint)
    digits = all(c.isdigit() for c in run.classes)
    names, x = load_inputs(args.inputs, run.image_shape, digits)
    probs = run.predict(x)
    out = open(args.out, "w", newline="") if args.out else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(["input", "label"] + [f"p{i}" for i in range(probs.shape[1])])
        for name, p in zip(names, probs.tolist()):
            writer.writerow([name, run.classes[max(range(len(p)), key=p.__getitem__)]] +
                            [f"{v:.6f}" for v in p])
    finally:
        if args.out:
            out.close()
            print(f"wrote {len(names)} predictions to {args.out}", file=sys.stderr)


def cmd_reconstruct(args) -> None:
    from disgen.api import load
    from disgen.images import load_inputs
    from disgen.viz import save_pairs

    run = load(args.run_dir, args.checkpoint)
    names, x = load_inputs(args.inputs, run.image_shape, True)
    recon = run.reconstruct(x)
    save_pairs(x.float() / 255, recon, args.out, nrow=min(10, len(x)))
    print(f"wrote originals and reconstructions of {len(names)} images to {args.out}", file=sys.stderr)


COMMANDS = {"models": cmd_models, "datasets": cmd_datasets, "train": cmd_train, "eval": cmd_eval,
            "predict": cmd_predict, "reconstruct": cmd_reconstruct}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(model_from_argv(argv)).parse_args(argv)
        COMMANDS[args.command](args)
    except DisgenError as err:
        print(f"disgen: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("disgen: interrupted; a training run continues with `disgen train MODEL --run-dir DIR "
              "--resume`", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
