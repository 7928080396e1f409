"""The ``disgen`` command line, the top layer: it calls the library and nothing in the library
imports it. ``disgen --help`` lists the commands; every ``train`` flag is generated from
:class:`disgen.config.TrainConfig` and the chosen model's config dataclass.

This module holds the parser, the command registry (:func:`command`), the argument helpers the
commands share and :func:`main`; each command family is a module of this package:

    train     models, datasets, train, eval        predict   predict, reconstruct
    sample    sample                               report    report
    serve     serve                                kaggle    kaggle-organize
    export    export
    catalog   the torch-free catalog.json the listings and ``--help`` read

May import: every layer of the library (commands import theirs only when they run).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from disgen.errors import DisgenError, Interrupted, plural  # noqa: F401  (plural: the commands import it from here)


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
# The commands in order, with their help and the module of this package that defines them (with
# @command); a module is imported only when its command runs or shows its own help, so that
# `disgen --help` imports none of them (and no torch).
COMMAND_HELP: dict[str, tuple[str, str]] = {
    "models": ("list models and their presets", "disgen.cli.train"),
    "datasets": ("list datasets", "disgen.cli.train"),
    "train": ("train a model into a run directory", "disgen.cli.train"),
    "eval": (
        "evaluate a run on its test (or validation, training) split; kept in RUN_DIR/eval.json",
        "disgen.cli.train",
    ),
    "predict": ("classify images, folders or IDX files into a CSV", "disgen.cli.predict"),
    "reconstruct": ("autoencoder reconstructions of images, as a grid PNG", "disgen.cli.predict"),
    "sample": ("draw samples from a trained generator (GAN or aae) run", "disgen.cli.sample"),
    "kaggle-organize": (
        "organise Kaggle's Dog Breed layout into train/ valid/ train_valid/ test/",
        "disgen.cli.kaggle",
    ),
    "serve": ("a local web page to try a trained model: draw digits, sample, interpolate", "disgen.cli.serve"),
    "report": ("write a self-contained HTML report of a run, or compare several runs", "disgen.cli.report"),
    "export": (
        "export a run as ONNX, TorchScript or safetensors files with a model card, checked against disgen",
        "disgen.cli.export",
    ),
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
        prog="disgen", description="Train, evaluate, sample and inspect classic image models."
    )
    from disgen.version import __version__

    parser.add_argument("--version", action="version", version=f"disgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, module) in COMMAND_HELP.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
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
        from disgen.cli import catalog

        if model not in catalog.models():
            raise suggest(model, sorted(catalog.models()), "model")


def run_dir_args(
    p: argparse.ArgumentParser,
    inputs: str | None = None,
    out: str | None = None,
    out_required: bool = False,
    out_help: str | None = None,
) -> None:
    """RUN_DIR, optional INPUT..., --out and --checkpoint: shared by the run-reading commands."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `disgen train`")
    if inputs:
        p.add_argument("inputs", metavar="INPUT", nargs="+", help=inputs)
    if out:
        p.add_argument("--out", metavar=out, required=out_required, help=out_help)
    p.add_argument(
        "--checkpoint",
        default="auto",
        choices=("auto", "best", "last"),
        help="which checkpoint of the run to use: best (the best validation epoch), last, or "
        "auto (the default): best where the run has one, else last",
    )


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
        raise DisgenError(
            f"{flag} {path}: cannot make the folder {where}: {err.strerror or err}; choose another {flag}"
        ) from None
    if not os.access(where, os.W_OK):
        raise DisgenError(f"{flag} {path}: the folder {where} is not writable; choose another {flag}")
    return path


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
    except BrokenPipeError:  # the reader of stdout left (`disgen predict ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 1
    except MemoryError:
        print(f"disgen: error: {out_of_memory()}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # torch's allocators: "DefaultCPUAllocator: can't allocate memory: ..."
        if "can't allocate memory" not in str(err) and "out of memory" not in str(err).lower():
            raise
        print(f"disgen: error: {out_of_memory(str(err).splitlines()[0][:200])}", file=sys.stderr)
        return 2
    except OSError as err:  # the environment (a disk filling up, a file vanishing) after every check
        where = f" {err.filename}" if err.filename else ""
        print(f"disgen: error: could not read or write{where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        print(
            f"disgen: interrupted{' by SIGTERM' if signum == signal.SIGTERM else ''}; "
            + (str(err) or "a training run continues with `disgen train MODEL --run-dir DIR --resume`"),
            file=sys.stderr,
        )
        return 128 + signum
    return 0


def out_of_memory(detail: str = "") -> str:
    from disgen.data import machine_memory

    return (
        f"out of memory{f' ({detail})' if detail else ''}: this process may use "
        f"{machine_memory() / 2**30:.1f} GiB (the machine's memory, or a cgroup or ulimit -v limit); choose "
        "smaller sizes, a smaller --batch-size or image size, or free some memory"
    )


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
