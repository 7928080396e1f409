"""Shared helpers for benchmarks: timing over repeats, a fixed-width table, results with the commit."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

RESULTS = Path(__file__).parent / "results"


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def warn_if_busy(limit: float = 0.5) -> None:
    """Timings need a quiet machine: with other processes on the cores, each multi-threaded op waits
    for a descheduled thread and small-op timings grow several-fold. Say so before starting."""
    load = load_average()
    if load is not None and load > limit:
        print(
            f"warning: load average {load:.2f} before starting (other processes are running): "
            f"timings will be slow and noisy; run on a quiet machine",
            file=sys.stderr,
        )


def src_changed() -> bool:
    """Whether src/ differs from the commit (results then hold code that no commit has)."""
    try:
        return bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--", "../src"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return False


def timed(fn, repeats: int) -> list[float]:
    """Wall seconds of ``fn()`` for each of ``repeats`` calls."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def rotated(names: list[str], r: int) -> list[str]:
    """``names`` starting at index ``r`` (mod its length): round r of an interleaved timing, so that
    no side always runs right after the same other side."""
    k = r % len(names)
    return names[k:] + names[:k]


def summary(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) for c, w in zip(r, widths))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What the figures were measured on."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "arch": platform.machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def command_line() -> str:
    """The command that produced the results, as a user would type it."""
    import shlex

    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path(__file__).resolve().parents[1])
    except ValueError:
        pass
    return " ".join(["python", shlex.quote(str(script)), *map(shlex.quote, sys.argv[1:])])


def stats(values: list[float]) -> dict:
    """Per-seed values with their count, mean and sample standard deviation (n - 1)."""
    values = [float(v) for v in values]
    return {
        "values": values,
        "n": len(values),
        "mean": statistics.mean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def provenance() -> dict:
    """The commit, whether src/ differs from it, the exact command and the time: what measured a result."""
    return {
        "commit": git_commit(),
        "src_uncommitted_changes": src_changed(),
        "command": command_line(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def save(name: str, payload: dict, append: bool = False) -> Path:
    """Write ``benchmarks/results/NAME.json``: the payload with the commit, the exact command, the
    machine and the time, atomically (a killed benchmark leaves the old file). ``append``: keep the
    file's earlier runs, this one after them under ``reruns`` (one results file per benchmark)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        **provenance(),
        "machine": machine(),
        "load_average": load_average(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    if append and path.exists():
        earlier = json.loads(path.read_text())
        payload = {"reruns": [*earlier.get("reruns", [earlier]), payload]}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def load_data(name: str):
    """``load_dataset(name)``, falling back to the bundled mnist-mini when it is not on this machine."""
    from disgen.data import load_dataset
    from disgen.errors import DisgenError

    try:
        return load_dataset(name)
    except (DisgenError, OSError) as err:
        if name == "mnist-mini":
            raise
        print(f"{name} is not available here ({str(err).splitlines()[0]}); using mnist-mini")
        return load_dataset("mnist-mini")


def subset(data, n: int | None, n_test: int = 1000):
    """``data`` with its first ``n`` training images (all if None) and first ``n_test`` test images."""
    from disgen.data import ImageSplit, TensorDataset

    n = len(data.train) if n is None else min(n, len(data.train))
    return TensorDataset(
        data.name,
        ImageSplit(data.train.images[:n], data.train.labels[:n]),
        ImageSplit(data.test.images[:n_test], data.test.labels[:n_test]),
        list(data.classes),
        data.source,
    )


def make_trainer(model: str, data, options: dict, run_dir: Path):
    """disgen's Trainer for ``model`` on ``data`` with ``options`` over TrainConfig, timed as a later
    epoch (``trainer.epoch = 1``: the first epoch's per-step divergence checks are left out).

    Only ``train_epoch`` is timed: a Trainer trains no reference classifier (``disgen.train`` does,
    before ``fit``), so a benchmark subset never trains one of its own."""
    from disgen.models import resolve
    from disgen.training.trainer import Trainer

    cfg = resolve(model, {"progress": False, "device": "cpu", **options})
    trainer = Trainer(cfg, run_dir, data, log=lambda msg: None)  # no reference: only fit() evaluates
    trainer.epoch = 1
    return trainer


def bench_parser(doc: str, cases, name: str) -> argparse.ArgumentParser:
    """The flags every timing benchmark shares: --repeats, --dataset, --models, --name, --threads."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dataset", default="fashion-mnist", help="28x28 images (falls back to mnist-mini)")
    ap.add_argument("--models", default=",".join(cases), help=f"comma-separated subset of {','.join(cases)}")
    ap.add_argument("--name", default=name, help="results file name under benchmarks/results/")
    ap.add_argument(
        "--append", action="store_true", help="keep the file's earlier runs and add this one (a rerun, under 'reruns')"
    )
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice, one per core)")
    return ap


def start(ap: argparse.ArgumentParser, args, cases) -> list[str]:
    """Apply --threads, warn on a busy machine, and return the chosen --models."""
    if args.threads:
        torch.set_num_threads(args.threads)
    warn_if_busy()
    return models_arg(args.models, cases, ap)


def models_arg(text: str, known, parser) -> list[str]:
    """The comma-separated ``--models`` list, each checked against ``known``."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in known]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(known)}")
    return names


class TutorialDataset(Dataset):
    """The plain baseline's data path: one sample at a time, converted to float per access
    (ToTensor, and Normalize(0.5, 0.5) for GANs in [-1, 1]), as tutorials write it. Float data
    (gan2d's 2-D points) is returned as it is."""

    def __init__(self, images, labels, flatten: bool = False, signed: bool = False):
        self.images, self.labels, self.flatten, self.signed = images, labels, flatten, signed

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = self.images[i]
        if not x.is_floating_point():
            x = x.float().div(255)
            if self.signed:
                x = x.sub(0.5).div(0.5)
        return (x.view(-1) if self.flatten else x), int(self.labels[i])


def tutorial_loader(images, labels, batch_size: int, **kw) -> DataLoader:
    """``DataLoader(TutorialDataset(...), batch_size, shuffle=True)``, no worker processes."""
    return DataLoader(TutorialDataset(images, labels, **kw), batch_size=batch_size, shuffle=True)
