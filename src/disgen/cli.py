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


@dataclass
class Command:
    """A subcommand: ``add_args(parser, argv)`` declares its arguments, ``run(args)`` does it."""

    name: str
    help: str
    add_args: Callable[[argparse.ArgumentParser, list[str]], None]
    run: Callable[[argparse.Namespace], None]


COMMANDS: dict[str, Command] = {}
# Modules outside this file that define commands with @command (imported before parsing).
COMMAND_MODULES: tuple[str, ...] = ("disgen.sample", "disgen.data.kaggle", "disgen.serve", "disgen.report",)


def command(name: str, help: str, add_args=None):
    """Register ``run(args)`` as subcommand ``name``; ``add_args(parser, argv)`` adds its flags."""

    def wrap(run):
        COMMANDS[name] = Command(name, help, add_args or (lambda p, argv: None), run)
        return run

    return wrap


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(
        prog="disgen", description="Train, evaluate, sample and inspect classic image models.")
    parser.add_argument("--version", action="version", version=f"disgen {__import__('disgen').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for cmd in COMMANDS.values():
        cmd.add_args(sub.add_parser(cmd.name, help=cmd.help, description=cmd.help), argv or [])
    return parser


def train_args(tr: argparse.ArgumentParser, argv: list[str]) -> None:
    from disgen.models import get_model, list_models

    tr.description = "Train MODEL. Later sources win: the preset, --config FILE, flags."
    tr.add_argument("model", metavar="MODEL", choices=list_models(),
                    help="one of: " + ", ".join(list_models()))
    tr.add_argument("--config", dest="config_file", metavar="FILE", help="JSON file of options")
    tr.add_argument("--resume", nargs="?", const=True, default=False, choices=("auto",), metavar="auto",
                    help="continue the run in --run-dir after its last completed epoch (an error if it holds "
                         "no run); --resume auto: continue it if it holds one, else start it")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name, kind in field_types().items():
        if name not in SKIP:
            add_field(tr, name, kind, fields[name].metadata.get("help", ""), name)
    model = model_from_argv(argv)
    if model in list_models():
        spec = get_model(model)
        group = tr.add_argument_group(f"options of {model} (override the preset)")
        hints = typing.get_type_hints(spec.config_cls)
        preset = spec.presets.get("default", {}).get("model", {})
        for f in dataclasses.fields(spec.config_cls):
            text = f"default {f.default!r}"
            if f.name in preset and preset[f.name] != f.default:
                text += f"; the default preset: {preset[f.name]!r}"
            add_field(group, f.name, hints[f.name], text, f"model__{f.name}")


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


@command("models", "list models and their presets")
def cmd_models(args) -> None:
    from disgen.models import get_model, list_models

    for name in list_models():
        spec = get_model(name)
        print(f"{name:18s} [{spec.objective}] {spec.description}")
        for preset, values in spec.presets.items():
            shown = ", ".join(f"{k}={v}" for k, v in values.items() if k != "model")
            if values.get("val_split", 1) == 0:
                shown += "  [trains on the whole training split, as its document did: no validation split, no best.pt]"
            print(f"    --preset {preset:8s} {shown}")


@command("datasets", "list datasets")
def cmd_datasets(args) -> None:
    from disgen.data import list_datasets

    from disgen.data import FOLDER_FORMS

    for name, desc in list_datasets().items():
        print(f"{name:15s} {desc}")
    for form in FOLDER_FORMS:
        print(f"{'PATH':15s} {form}")


@command("train", "train a model into a run directory", train_args)
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


@command("eval", "evaluate a run on its test (or validation, training) split; kept in RUN_DIR/eval.json",
         eval_args)
def cmd_eval(args) -> None:
    from disgen.api import load
    from disgen.runs import record_eval

    if args.n_samples is not None and not 1 <= args.n_samples <= MAX_SAMPLES:
        raise DisgenError(f"--n-samples must be in 1..{MAX_SAMPLES:,} (got {args.n_samples})")
    run = load(args.run_dir, args.checkpoint)
    options = {"reference": args.reference, "n_samples": args.n_samples} if run.objective.eval_context else {}
    metrics = run.evaluate(args.dataset, args.data_dir, split=args.split, **options)
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


@command("predict", "classify images, folders or IDX files into a CSV", predict_args)
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
    print(f"wrote {len(names)} predictions to {args.out}", file=sys.stderr)


@command("reconstruct", "autoencoder reconstructions of images, as a grid PNG",
         lambda p, argv: run_dir_args(p, INPUTS_HELP, "GRID.png", out_required=True))
def cmd_reconstruct(args) -> None:
    from disgen.api import load
    from disgen.images import load_inputs
    from disgen.viz import save_pairs

    output_path(args.out)
    run = load(args.run_dir, args.checkpoint)
    names, x = load_inputs(args.inputs, run.image_shape, True)
    recon = run.reconstruct(x)
    save_pairs(x.float() / 255, recon, args.out, nrow=min(10, len(x)))
    print(f"wrote originals and reconstructions of {len(names)} images to {args.out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
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
