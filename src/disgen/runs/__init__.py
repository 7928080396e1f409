"""Run directories: creating them, and reading back what a run wrote.

    RUN_DIR/config.json        the resolved TrainConfig
    RUN_DIR/run.json           dataset (name, image shape, classes), device, versions
    RUN_DIR/split.json         which images the validation split holds (disgen.data.splits)
    RUN_DIR/metrics.jsonl      one JSON object per completed epoch (train_*, val_*), then a
                               final record ("final": true) with the test split's metrics
    RUN_DIR/checkpoints/       last.pt (every epoch) and best.pt (best validation metric)
    RUN_DIR/images/            pictures
    RUN_DIR/eval.json          every evaluation of the run, one per dataset, split and checkpoint:
                               the test split after training, and each ``disgen eval``
    RUN_DIR/train.lock         held (flock) by the process training in it; its pid inside

``runs.checkpoint`` writes and validates the checkpoints; ``runs.compatible`` checks one against
the run that would use it. :func:`load_nets` rebuilds a run's networks from the directory alone.
May import: models, data, config, files, errors, version.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Iterator

import torch

from disgen.config import TrainConfig, from_dict, read_json, validate
from disgen.data import TensorDataset
from disgen.errors import DisgenError, Interrupted
from disgen.files import atomic_write, write_error, write_json
from disgen.models import get_model
from disgen.runs import checkpoint
from disgen.runs.compatible import check_compatible  # noqa: F401  (runs.check_compatible)
from disgen.version import __version__

LOCK = "train.lock"


def default_run_dir(cfg: TrainConfig, root: str | Path = "runs") -> Path:
    dataset = Path(cfg.dataset).name if ("/" in cfg.dataset or Path(cfg.dataset).is_dir()) else cfg.dataset
    return Path(root) / f"{cfg.model}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def data_info(data: TensorDataset) -> dict:
    """What run.json says of the data; a Hugging Face dataset's name, config, revision and fingerprints too."""
    info = {"name": data.name, "image_shape": list(data.image_shape), "classes": list(data.classes)}
    return {**info, "hf": data.extra["hf"]} if "hf" in data.extra else info


def prepare(
    run_dir: Path, cfg: TrainConfig, data: TensorDataset, device: torch.device, resume: bool, speed: dict | None = None
) -> None:
    """Create the run directory and write config.json and run.json (with ``speed``: the precision,
    layout and processes the run resolved to), refusing to overwrite a run."""
    has_run = (run_dir / "checkpoints" / "last.pt").exists()
    if has_run and not resume:
        raise DisgenError(
            f"{run_dir} already holds a training run: add --resume to continue it, or choose another --run-dir"
        )
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "images").mkdir(exist_ok=True)
    except OSError as err:
        raise write_error(run_dir, err) from None
    write_json(run_dir / "config.json", cfg.to_dict())
    write_json(
        run_dir / "run.json",
        {
            "data": data_info(data),
            "device": str(device),
            **(speed or {}),
            "disgen": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


def check_run_dir(run_dir: Path, dataset: str | None, resume: bool) -> None:
    """Refuse, before anything is written: a run directory inside the folder of images it trains
    on (its pictures would become images of the dataset on the next run), and, for a new run, an
    existing folder that holds files but no run disgen started there (they would be overwritten)."""
    run_dir = Path(run_dir)
    source = Path(dataset).expanduser() if dataset else None
    if source is not None and source.is_dir() and inside(run_dir, source):
        raise DisgenError(
            f"--run-dir {run_dir} is inside the dataset's folder {source}: the run's pictures would become "
            f"images of the dataset; choose a --run-dir outside {source}"
        )
    if resume or not run_dir.is_dir() or has_checkpoint(run_dir) or started_here(run_dir):
        return  # a run there is refused or continued by prepare and --resume
    present = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK)
    if present:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise DisgenError(
            f"--run-dir {run_dir} is a folder of other files ({shown}), not a disgen run directory; nothing "
            "was written: choose a new or empty folder"
        )


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or below it (links resolved)."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def started_here(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds the run.json of a run disgen started (one stopped before its first
    checkpoint may be started again)."""
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(info, dict) and isinstance(info.get("disgen"), str) and isinstance(info.get("data"), dict)


def read_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    data = read_json(path, "the run's config") if path.is_file() else None
    if data is None:
        raise DisgenError(
            f"{run_dir} is not a disgen run directory (no config.json); pass the directory that `disgen train` printed"
        )
    if not isinstance(data, dict):
        raise DisgenError(f"{path} must hold a JSON object of option: value, not {type(data).__name__}")
    cfg = from_dict(data)
    validate(cfg)
    return cfg


MAX_LINE = 16 << 10  # bytes of one metrics record; disgen's are a few hundred
MAX_RECORDS, MAX_KEPT_BYTES = 100_000, 32 << 20  # kept in memory; past either, every other record is dropped


def _records(run_dir: Path, holding: bytes = b"") -> Iterator[tuple[dict, int]]:
    """Every well-formed record of metrics.jsonl (whose line holds ``holding``) and its size in
    bytes, read a line at a time (a torn last line, and a line over MAX_LINE, are dropped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return
    with open(path, "rb") as f:
        while line := f.readline(MAX_LINE + 1):
            if len(line) > MAX_LINE:  # no record of disgen's: skip the rest of the line
                while line and not line.endswith(b"\n"):
                    line = f.readline(MAX_LINE)
                continue
            if holding not in line:
                continue
            try:
                rec = json.loads(line.decode("utf-8", errors="replace"))
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(rec, dict) and isinstance(rec.get("epoch", 0), (int, float)):
                yield rec, len(line)


def read_metrics(run_dir: Path, upto: int | None = None) -> list[dict]:
    """Epoch records of metrics.jsonl (those with epoch <= ``upto``), without the final test record.

    At most MAX_RECORDS records and MAX_KEPT_BYTES of their text are kept: a file holding more (no
    run of disgen's writes 100,000 epochs; a damaged or crafted file may hold millions) is thinned
    evenly, every other record dropped as often as needed, and a warning says so. Memory stays
    bounded whatever the file holds."""
    kept: list[tuple[dict, int]] = []
    stride, seen, size = 1, 0, 0
    for rec, n in _records(run_dir):
        if rec.get("final") or (upto is not None and rec.get("epoch", 0) > upto):
            continue
        if seen % stride == 0:
            kept.append((rec, n))
            size += n
            while len(kept) > MAX_RECORDS or size > MAX_KEPT_BYTES:
                kept, stride = kept[::2], stride * 2
                size = sum(n for _, n in kept)
        seen += 1
    if stride > 1:
        print(
            f"warning: {Path(run_dir) / 'metrics.jsonl'} holds {seen:,} epoch records, more than are read "
            f"({MAX_RECORDS:,}, {MAX_KEPT_BYTES >> 20} MiB): every {stride}th is kept ({len(kept):,})",
            file=sys.stderr,
        )
    return [rec for rec, _ in kept]


def read_final(run_dir: Path) -> dict | None:
    """The final record of metrics.jsonl: the test split's metrics after the last epoch (None if
    the run has not finished, or has no test split)."""
    final = None
    for rec, _ in _records(run_dir, b'"final"'):
        if rec.get("final"):
            final = rec
    return final


EVAL_FILE = "eval.json"


def read_evals(run_dir: Path) -> list[dict]:
    """The evaluations kept in eval.json, one per (dataset, split, checkpoint)."""
    path = Path(run_dir) / EVAL_FILE
    try:
        data = read_json(path, "the run's evaluations")
    except DisgenError:
        return []  # damaged: the next evaluation writes it afresh
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        return [r for r in data["results"] if isinstance(r, dict)]
    return [data] if isinstance(data, dict) and "dataset" in data else []  # one result (older disgen)


def record_eval(run_dir: Path, result: dict) -> list[dict]:
    """Keep ``result`` in eval.json, replacing an earlier one of the same dataset, split and
    checkpoint (and nothing else), and return them all."""
    key = lambda r: (r.get("dataset"), r.get("split", "test"), r.get("checkpoint"))
    kept = [r for r in read_evals(run_dir) if key(r) != key(result)] + [result]
    write_json(Path(run_dir) / EVAL_FILE, {"results": kept})
    return kept


def has_checkpoint(run_dir: Path) -> bool:
    return any((Path(run_dir) / "checkpoints" / n).is_file() for n in ("last.pt", "best.pt"))


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a training run to resume: its config.json or a checkpoint."""
    return (Path(run_dir) / "config.json").is_file() or has_checkpoint(run_dir)


def nearest_runs(run_dir: Path, root: str | Path = "runs", n: int = 5) -> list[Path]:
    """The run directories beside ``run_dir`` and under ``root``, nearest in name first
    (difflib's ratio): what a mistyped ``--run-dir`` most likely meant."""
    import difflib

    found = set()
    for folder in {Path(run_dir).parent, Path(root)}:
        with contextlib.suppress(OSError):
            found.update(p for p in folder.iterdir() if p.is_dir() and holds_run(p))
    name = Path(run_dir).name
    return sorted(found, key=lambda p: (-difflib.SequenceMatcher(None, name, p.name).ratio(), str(p)))[:n]


def no_run_error(run_dir: Path, root: str | Path = "runs") -> DisgenError:
    """``--resume`` on a folder with no run: the folder, the nearest runs, and what to do."""
    near = nearest_runs(run_dir, root)
    listed = (
        ("nearest run directories: " + ", ".join(map(str, near)))
        if near
        else f"no run directories in {Path(run_dir).parent} or {root}/"
    )
    return DisgenError(
        f"--resume: {run_dir} holds no run (no config.json, no checkpoint); {listed}. Check "
        "--run-dir, or use --resume auto to continue a run where there is one and start one where "
        "there is not"
    )


def checkpoint_path(run_dir: Path, name: str = "auto") -> Path:
    """``checkpoints/NAME.pt``; ``auto``: best.pt (chosen on validation) where the run has one,
    else last.pt."""
    folder = Path(run_dir) / "checkpoints"
    if name == "auto":
        name = "best" if (folder / "best.pt").is_file() else "last"
    return folder / f"{name}.pt"


def load_nets(run_dir: Path, name: str = "auto", device: str | torch.device = "cpu"):
    """A run's networks from its directory alone, in eval mode on ``device``, their checkpoint
    checked against its config: ``(cfg, spec, nets, state, path)``."""
    cfg = read_config(run_dir)
    spec = get_model(cfg.model)
    path = checkpoint_path(run_dir, name)
    if name == "best" and not path.is_file() and path.with_name("last.pt").is_file():
        why = (
            "it was trained with --val-split 0: no validation split chose a best epoch"
            if cfg.val_split == 0
            else "no epoch has written it yet"
        )
        raise DisgenError(f"--checkpoint best: {run_dir} has no checkpoints/best.pt ({why}); use --checkpoint last")
    state = checkpoint.load(path, device)
    info = state["data"]
    nets = spec.build(spec.model_config(cfg.model_args), tuple(info["image_shape"]), len(info["classes"]))
    check_compatible(state, cfg, nets)
    for k, m in nets.items():
        m.load_state_dict(state["nets"][k])
        m.to(device).eval()
    return cfg, spec, nets, state, path


def write_metrics(run_dir: Path, records: list[dict]) -> None:
    path = Path(run_dir) / "metrics.jsonl"
    try:
        atomic_write(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in records).encode()))
    except OSError as err:
        raise write_error(path, err) from None


def append_metrics(run_dir: Path, record: dict) -> None:
    path = Path(run_dir) / "metrics.jsonl"
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as err:
        raise write_error(path, err) from None


@contextlib.contextmanager
def lock(run_dir: Path, enabled: bool = True) -> Iterator[None]:
    """Hold ``RUN_DIR/train.lock`` (an exclusive ``flock``) while a process trains in ``run_dir``,
    so a second one stops at once with an error naming the directory and the process that holds
    it. The kernel drops the lock when its process ends, a SIGKILL included: ``--resume`` after a
    kill finds it free. ``enabled=False`` (torchrun's other processes): nothing is locked."""
    if not enabled:
        yield
        return
    path = Path(run_dir) / LOCK
    made = [d for d in [path.parent, *path.parent.parents] if not d.exists()]  # the folders this makes
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise write_error(path, err) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DisgenError(
                f"run directory {run_dir} is in use: {holder(fd)} is training in it (it holds "
                f"{path}); wait for it to end, or stop it and continue with --resume, or choose "
                "another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            if made and os.listdir(path.parent) == [LOCK]:  # a run that stopped before writing anything
                with contextlib.suppress(OSError):
                    path.unlink()
                    for folder in made:  # innermost first; one holding anything else stays
                        folder.rmdir()
    finally:
        os.close(fd)  # drops the lock


def holder(fd: int) -> str:
    """The process holding a run's lock: its pid, written once it has the lock, and its command."""
    for _ in range(20):  # it writes its pid right after taking the lock
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if pid:
            break
        time.sleep(0.05)
    if not pid.isdigit():
        return "another process (pid unknown)"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        command = ""
    return f"process {pid}" + (f" ({command[:200]})" if command else "")


@contextlib.contextmanager
def resumable(cfg: TrainConfig, run_dir: Path) -> Iterator[None]:
    """Ctrl-C or SIGTERM while training becomes :class:`Interrupted`, saying which checkpoint is
    intact and the command that continues the run."""
    try:
        yield
    except KeyboardInterrupt as err:
        last = Path(run_dir) / "checkpoints" / "last.pt"
        state = f"the last checkpoint, {last}, is intact" if last.is_file() else "no checkpoint was written yet"
        raise Interrupted(
            f"{state}: continue with `disgen train {cfg.model} --run-dir {run_dir} --resume`", getattr(err, "signum", 2)
        ) from err
