"""The ``disgen`` command line. ``disgen --help`` lists the commands; every ``train`` flag is
generated from :class:`disgen.config.TrainConfig` and the chosen model's config dataclass."""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import importlib
import io
import json
import os
import signal
import sys
import threading
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from disgen.config import TrainConfig, field_types
from disgen.errors import DisgenError, Interrupted

SKIP = {"model", "model_args"}


def add_field(parser, name: str, kind: str, help_text: str, dest: str, choices=None) -> None:
    """``--name`` for a config field; ``kind``: "bool" (--x/--no-x), "tuple" (A,B) or "value"."""
    flag = "--" + name.replace("_", "-")
    if kind == "bool":
        parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None,
                            help=help_text)
        return
    metavar = "{" + ",".join(choices) + "}" if choices else "A,B" if kind == "tuple" else name.upper()
    parser.add_argument(flag, dest=dest, default=None, metavar=metavar, help=help_text)


def kind_of(hint) -> str:
    return "bool" if hint is bool else "tuple" if typing.get_origin(hint) is tuple else "value"


def model_from_argv(argv: list[str]) -> str | None:
    """The model named after ``train`` (flags come after it), so its options can be added."""
    if len(argv) >= 2 and argv[0] == "train" and not argv[1].startswith("-"):
        return argv[1]
    return None


@dataclass
class Command:
    """A subcommand: ``add_args(parser, argv)`` declares its arguments, ``run(args)`` does it."""

    name: str
    help: str
    add_args: Callable[[argparse.ArgumentParser, list[str]], None]
    run: Callable[[argparse.Namespace], None]


COMMANDS: dict[str, Command] = {}
# The commands in order, with their help; those defined outside this file (with @command) name the
# module, imported only when the command runs or shows its own help: `disgen --help` imports none.
COMMAND_HELP: dict[str, tuple[str, str | None]] = {
    "models": ("list models and their presets", None),
    "datasets": ("list datasets", None),
    "train": ("train a model into a run directory", None),
    "eval": ("evaluate a run on its test (or validation, training) split; kept in RUN_DIR/eval.json", None),
    "predict": ("classify images, folders or IDX files into a CSV", None),
    "reconstruct": ("autoencoder reconstructions of images, as a grid PNG", None),
    "sample": ("draw samples from a trained generator (GAN or aae) run", "disgen.sample"),
    "kaggle-organize": ("organise Kaggle's Dog Breed layout into train/ valid/ train_valid/ test/",
                        "disgen.data.kaggle"),
    "serve": ("a local web page to try a trained model: draw digits, sample, interpolate", "disgen.serve"),
    "report": ("write a self-contained HTML report of a run, or compare several runs", "disgen.report"),
}


def command(name: str, add_args=None):
    """Register ``run(args)`` as subcommand ``name`` (its help is in COMMAND_HELP);
    ``add_args(parser, argv)`` adds its flags."""

    def wrap(run):
        COMMANDS[name] = Command(name, COMMAND_HELP[name][0], add_args or (lambda p, argv: None), run)
        return run

    return wrap


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the command ``argv`` names gets its arguments (and its module imported)."""
    argv = argv or []
    chosen = argv[0] if argv and argv[0] in COMMAND_HELP else None
    parser = argparse.ArgumentParser(
        prog="disgen", description="Train, evaluate, sample and inspect classic image models.")
    from disgen import __version__

    parser.add_argument("--version", action="version", version=f"disgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, module) in COMMAND_HELP.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            if module:
                importlib.import_module(module)
            COMMANDS[name].add_args(p, argv)
    return parser


def suggest(value: str, choices, what: str) -> DisgenError:
    """An unknown name as one error with the nearest known one (difflib) and all of them."""
    import difflib

    close = difflib.get_close_matches(value, list(choices), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return DisgenError(f"unknown {what} {value!r}: {hint}choose one of {', '.join(choices)}")


def check_names(argv: list[str]) -> None:
    """A misspelt command, or model after ``train``: one error saying what was likely meant."""
    if argv and not argv[0].startswith("-") and argv[0] not in COMMAND_HELP:
        raise suggest(argv[0], COMMAND_HELP, "command")
    model = model_from_argv(argv)
    if model is not None:
        from disgen import catalog

        if model not in catalog.models():
            raise suggest(model, sorted(catalog.models()), "model")


def train_args(tr: argparse.ArgumentParser, argv: list[str]) -> None:
    from disgen import catalog

    models = catalog.models()
    model = model_from_argv(argv)
    tr.description = "Train MODEL. Later sources win: the preset, --config FILE, flags."
    tr.add_argument("model", metavar="MODEL", choices=sorted(models), help="one of: " + ", ".join(sorted(models)))
    tr.add_argument("--config", dest="config_file", metavar="FILE", help="JSON file of options")
    tr.add_argument("--resume", nargs="?", const=True, default=False, choices=("auto",), metavar="auto",
                    help="continue the run in --run-dir after its last completed epoch (an error if it holds "
                         "no run); --resume auto: continue it if it holds one, else start it")
    hints = field_types()
    for f in dataclasses.fields(TrainConfig):
        if f.name in SKIP:
            continue
        text, choices = f.metadata.get("help", ""), f.metadata.get("choices")
        if f.name == "preset" and model in models:
            choices = tuple(models[model]["presets"])
            text = f"{model}'s presets: {', '.join(choices)} (see `disgen models`)"
        add_field(tr, f.name, kind_of(hints[f.name]), text, f.name, choices)
    if model in models:
        group = tr.add_argument_group(f"options of {model} (override the preset)")
        preset = models[model]["presets"].get("default", {}).get("model", {})
        for o in models[model]["options"]:
            text = f"{o['help']}; default {o['default']!r}"
            if o["name"] in preset and preset[o["name"]] != o["default"]:
                text += f"; the default preset: {preset[o['name']]!r}"
            add_field(group, o["name"], o["kind"], text, f"model__{o['name']}", o["choices"])


def run_dir_args(p: argparse.ArgumentParser, inputs: str | None = None, out: str | None = None,
                 out_required: bool = False) -> None:
    """RUN_DIR, optional INPUT..., --out and --checkpoint: shared by the run-reading commands."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `disgen train`")
    if inputs:
        p.add_argument("inputs", metavar="INPUT", nargs="+", help=inputs)
    if out:
        p.add_argument("--out", metavar=out, required=out_required)
    p.add_argument("--checkpoint", default="auto", choices=("auto", "best", "last"),
                   help="which checkpoint of the run to use: best (the best validation epoch), last, or "
                        "auto (the default): best where the run has one, else last")


def eval_args(p: argparse.ArgumentParser, argv: list[str]) -> None:
    run_dir_args(p)
    p.add_argument("--split", default="test", choices=("test", "val", "train"),
                   help="which split to evaluate (default: test); val and train are the run's own, "
                        "checked against RUN_DIR/split.json")
    p.add_argument("--dataset", help="dataset to evaluate on (default: the training dataset)")
    p.add_argument("--data-dir", help="folder holding the dataset's files")
    p.add_argument("--reference", metavar="RUN_DIR", help="generators: the classifier run whose "
                   "features measure them (default: one trained once per dataset and cached)")
    p.add_argument("--n-samples", type=int, help="generators: samples to draw (default: 10,000 images "
                   "or 100,000 points)")


INPUTS_HELP = "image files (any size and colour), folders of images, or IDX image files"
MAX_SAMPLES = 100_000  # generated at once: 4 bytes a value each (100,000 of 3x64x64: 4.9 GB)


def output_path(value: str | Path | None, flag: str = "--out", folder: bool = False) -> Path | None:
    """``value`` as a command's output file (``folder``: output folder), checked and its folder
    made before any work: a folder given as a file, a path too long, a folder that cannot be made
    (a file in the way, no permission, a read-only disk) is one error naming the path."""
    from disgen.config import check_text

    if value is None:
        return None
    path = Path(value)
    check_text(flag, str(value))
    if not folder and path.is_dir():
        raise DisgenError(f"{flag} {path} is a folder: give a file name, e.g. {path / 'out.png'}")
    where = path if folder else path.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DisgenError(f"{flag} {path}: cannot make the folder {where}: {err.strerror or err}; choose "
                          f"another {flag}") from None
    if not os.access(where, os.W_OK):
        raise DisgenError(f"{flag} {path}: the folder {where} is not writable; choose another {flag}")
    return path


@command("models")
def cmd_models(args) -> None:
    from disgen import catalog

    for name, spec in sorted(catalog.models().items()):
        print(f"{name:18s} [{spec['objective']}] {spec['description']}")
        for preset, values in spec["presets"].items():
            shown = ", ".join(f"{k}={v}" for k, v in values.items() if k != "model")
            if values.get("val_split", 1) == 0:
                shown += "  [trains on the whole training split, as its document did: no validation split, no best.pt]"
            print(f"    --preset {preset:8s} {shown}")


@command("datasets")
def cmd_datasets(args) -> None:
    from disgen import catalog

    for name, desc in catalog.datasets().items():
        print(f"{name:15s} {desc}")
    for form in catalog.FOLDER_FORMS:
        print(f"{'PATH':15s} {form}")


@command("train", train_args)
def cmd_train(args) -> None:
    from disgen import distributed
    from disgen.api import train

    options = {k: v for k, v in vars(args).items()
               if k in field_types() and k not in SKIP and v is not None}
    model_args = {k[len("model__"):]: v for k, v in vars(args).items()
                  if k.startswith("model__") and v is not None}
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
        shown.update({"checkpoint": final["checkpoint"], "checkpoint_epoch": final["checkpoint_epoch"],
                      **{k: v for k, v in final.items() if k.startswith("test_")}})
    print(json.dumps({"run_dir": str(run.dir), "epochs": len(run.history), **shown}))
    print(f"run directory: {run.dir}", file=sys.stderr)


@command("eval", eval_args)
def cmd_eval(args) -> None:
    from disgen.api import load
    from disgen.runs import record_eval

    if args.n_samples is not None and not 1 <= args.n_samples <= MAX_SAMPLES:
        raise DisgenError(f"--n-samples must be in 1..{MAX_SAMPLES:,} (got {args.n_samples})")
    run = load(args.run_dir, args.checkpoint)
    options = {"reference": args.reference, "n_samples": args.n_samples} if run.objective.eval_context else {}
    dataset = args.dataset
    if dataset is not None and dataset != run.config.dataset:  # another dataset: are its classes the run's?
        dataset = run.dataset(dataset, args.data_dir)
        if list(dataset.classes) != list(run.classes):
            print(f"disgen: warning: {args.dataset}'s classes ({', '.join(dataset.classes[:10])}"
                  f"{', ...' if len(dataset.classes) > 10 else ''}) differ from those the run was trained on "
                  f"({', '.join(run.classes[:10])}{', ...' if len(run.classes) > 10 else ''}): its scores compare "
                  "labels by number only", file=sys.stderr)
    metrics = run.evaluate(dataset, args.data_dir, split=args.split, **options)
    result = {"dataset": args.dataset or run.config.dataset, "split": args.split, "checkpoint": run.checkpoint,
              "checkpoint_epoch": run.epoch, **metrics}
    record_eval(Path(args.run_dir), result)
    print(json.dumps(result))


def predict_args(p: argparse.ArgumentParser, argv: list[str]) -> None:
    run_dir_args(p, INPUTS_HELP, "FILE.csv")
    p.add_argument("--format", choices=("csv", "kaggle"), default="csv", help="csv: input,label,p0,...; "
                   "kaggle: a competition submission, id + one probability column per class")
    p.add_argument("--sample-submission", metavar="FILE", help="kaggle: the competition's "
                   "sample_submission.csv, whose column order and ids the submission follows")


@command("predict", predict_args)
def cmd_predict(args) -> None:
    from disgen.api import load
    from disgen.images import load_inputs

    output_path(args.out)
    run = load(args.run_dir, args.checkpoint)
    if args.format == "kaggle":
        from disgen.submission import write_submission

        write_submission(run, args.inputs, args.out, args.sample_submission)
        return
    digits = all(c.isdigit() for c in run.classes)
    names, x = load_inputs(args.inputs, run.image_shape, digits)
    probs = run.predict(x)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["input", "label"] + [f"p{i}" for i in range(probs.shape[1])])
    for name, p in zip(names, probs.tolist()):
        writer.writerow([name, run.classes[max(range(len(p)), key=p.__getitem__)]] + [f"{v:.6f}" for v in p])
    if not args.out:
        sys.stdout.write(text.getvalue())
        return
    from disgen.checkpoint import atomic_write

    atomic_write(Path(args.out), lambda f: f.write(text.getvalue().encode()))
    print(f"wrote {plural(len(names), 'prediction')} to {args.out}", file=sys.stderr)


@command("reconstruct", lambda p, argv: run_dir_args(p, INPUTS_HELP, "GRID.png", out_required=True))
def cmd_reconstruct(args) -> None:
    from disgen.api import load
    from disgen.images import load_inputs
    from disgen.viz import save_pairs

    output_path(args.out)
    run = load(args.run_dir, args.checkpoint)
    names, x = load_inputs(args.inputs, run.image_shape, True)
    recon = run.reconstruct(x)
    save_pairs(x.float() / 255, recon, args.out, nrow=min(10, len(x)), scale=grid_scale(run.image_shape))
    print(f"wrote originals and reconstructions of {plural(len(names), 'image')} to {args.out}", file=sys.stderr)


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def grid_scale(image_shape) -> int:
    """Tiles of small images drawn at least 56 pixels a side, as the runs' own grids draw 28-pixel digits."""
    return max(1, -(-56 // image_shape[-1]))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        check_names(argv)
        args = build_parser(argv).parse_args(argv)
        COMMANDS[args.command].run(args)
    except DisgenError as err:
        print(f"disgen: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the environment (a disk filling up, a file vanishing) after every check
        where = f" {err.filename}" if err.filename else ""
        print(f"disgen: error: could not read or write{where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        print(f"disgen: interrupted{' by SIGTERM' if signum == signal.SIGTERM else ''}; " +
              (str(err) or "a training run continues with `disgen train MODEL --run-dir DIR --resume`"),
              file=sys.stderr)
        return 128 + signum
    return 0


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the code inside as Ctrl-C does (:class:`Interrupted` is a KeyboardInterrupt):
    the last checkpoint intact and the command to continue named. Signals reach the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame) -> None:
        raise Interrupted(signum=signum)

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


if __name__ == "__main__":
    sys.exit(main())
