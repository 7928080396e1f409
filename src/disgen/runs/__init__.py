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

``runs.checkpoint`` writes and validates the checkpoints. :func:`load_nets` rebuilds a run's
networks from the directory alone. May import: models, data, config, files, errors, version.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from disgen.config import TrainConfig, from_dict, read_json, validate
from disgen.data import TensorDataset
from disgen.errors import DisgenError, Interrupted
from disgen.files import atomic_write, write_error, write_json
from disgen.models import get_model
from disgen.runs import checkpoint
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


def _records(run_dir: Path) -> list[dict]:
    """Every well-formed record of metrics.jsonl (a torn last line is dropped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(rec, dict) and isinstance(rec.get("epoch", 0), (int, float)):
            out.append(rec)
    return out


def read_metrics(run_dir: Path, upto: int | None = None) -> list[dict]:
    """Epoch records of metrics.jsonl (those with epoch <= ``upto``), without the final test record."""
    return [r for r in _records(run_dir) if not r.get("final") and (upto is None or r.get("epoch", 0) <= upto)]


def read_final(run_dir: Path) -> dict | None:
    """The final record of metrics.jsonl: the test split's metrics after the last epoch (None if
    the run has not finished, or has no test split)."""
    finals = [r for r in _records(run_dir) if r.get("final")]
    return finals[-1] if finals else None


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


def check_compatible(
    state: dict,
    cfg: TrainConfig,
    nets: dict,
    opts: dict | None = None,
    scheds: dict | None = None,
    generator: torch.Generator | None = None,
) -> None:
    """Refuse a checkpoint (its structure checked by checkpoint.load) of another model or shape,
    listing what does not match: every network tensor's shape and dtype and, to resume, every
    optimizer state tensor against its parameter, the param groups, schedules, gradient scaler
    and the loader's generator. A wrong-shaped Adam ``exp_avg`` would otherwise reach a fused
    kernel, which writes past its end."""
    problems = []
    if state.get("model") != cfg.model:
        problems.append(f"model {state.get('model')!r} != {cfg.model!r}")
    saved = state.get("nets", {})
    if set(saved) != set(nets):
        problems.append(f"networks {sorted(saved)} != {sorted(nets)}")
    for name, module in nets.items():
        ours = module.state_dict()
        theirs = saved.get(name, {})
        for key in sorted(set(ours) | set(theirs)):
            if key not in theirs:
                problems.append(f"{name}.{key} missing from the checkpoint")
            elif key not in ours:
                problems.append(f"{name}.{key} unexpected in the checkpoint")
            elif tuple(ours[key].shape) != tuple(theirs[key].shape):
                problems.append(f"{name}.{key} shape {tuple(theirs[key].shape)} != {tuple(ours[key].shape)}")
            elif ours[key].dtype != theirs[key].dtype:
                problems.append(f"{name}.{key} dtype {theirs[key].dtype} != {ours[key].dtype}")
    if opts is not None:
        problems += optimizer_mismatches(state["opts"], opts)
        problems += [
            f"scheds.{p}"
            for p in plain_mismatches(
                state["scheds"], {k: s.state_dict() for k, s in (scheds or {}).items()}, "", exact_keys=True
            )
        ]
        scaler = getattr(opts, "scaler", None)
        if (state.get("scaler") is None) != (scaler is None):
            problems.append("a gradient scaler (fp16) in one of the checkpoint and this run, not both")
        elif scaler is not None:
            problems += [f"scaler.{p}" for p in plain_mismatches(state["scaler"], scaler.state_dict(), "")]
    if generator is not None and state["rng"]["loader"].numel() != generator.get_state().numel():
        problems.append(
            f"the loader's generator state has {state['rng']['loader'].numel()} bytes, this "
            f"device's {generator.get_state().numel()} (written on another kind of device?)"
        )
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise DisgenError(f"the checkpoint does not fit this model: {shown}")


def describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}" + ("" if t.dtype == torch.float32 else f" {t.dtype}")


def optimizer_mismatches(saved: dict, opts: dict) -> list[str]:
    """Each optimizer's param groups and per-parameter state against this run's optimizers."""
    if set(saved) != set(opts):
        return [f"optimizers {sorted(saved)} != {sorted(opts)}"]
    problems = []
    for name, opt in opts.items():
        theirs, ours = saved[name], opt.state_dict()
        if [len(g["params"]) for g in theirs["param_groups"]] != [len(g["params"]) for g in ours["param_groups"]]:
            problems.append(
                f"opts.{name}: param groups of {[len(g['params']) for g in theirs['param_groups']]} "
                f"parameters != {[len(g['params']) for g in ours['param_groups']]}"
            )
            continue
        for i, (tg, og) in enumerate(zip(theirs["param_groups"], ours["param_groups"])):
            # Numbers (lr, betas, eps...) must be there; torch fills in missing flags (amsgrad, fused...).
            numbers = tuple(k for k, v in og.items() if k != "params" and not (isinstance(v, bool) or v is None))
            problems += [
                f"opts.{name}.param_groups[{i}].{p}"
                for p in plain_mismatches(
                    {k: v for k, v in tg.items() if k != "params"},
                    {k: v for k, v in og.items() if k != "params"},
                    "",
                    required=numbers,
                )
            ]
        params = {
            i: p
            for tg, group in zip(theirs["param_groups"], opt.param_groups)
            for i, p in zip(tg["params"], group["params"])
        }
        kinds = state_kinds(opt)  # None: unknown, then only a step may be a scalar
        for i, entry in theirs["state"].items():
            missing = sorted(set(kinds) - set(entry)) if kinds is not None else []
            if missing:
                problems.append(f"opts.{name} state {i} lacks {', '.join(missing)}")
            p = params[i]
            for key, v in entry.items():
                kind = kinds.get(key) if kinds is not None else ("scalar" if key == "step" else None)
                if kind is None and not isinstance(v, torch.Tensor):
                    continue  # a key this class does not keep, or an unknown class: torch ignores or checks it
                if kind == "none" and v is None:
                    continue  # e.g. SGD's momentum buffer without momentum
                if kind == "scalar":
                    ok = (isinstance(v, torch.Tensor) and v.dim() == 0 and not v.is_complex()) or (
                        not isinstance(v, torch.Tensor) and v is not None
                    )  # a plain step count was checked as a number already
                else:  # shaped like its parameter (or may be, where the class keeps None)
                    ok = isinstance(v, torch.Tensor) and tuple(v.shape) == tuple(p.shape) and v.dtype == p.dtype
                if not ok:
                    shown = describe(v) if isinstance(v, torch.Tensor) else ("None" if v is None else type(v).__name__)
                    wanted = "a scalar" if kind == "scalar" else describe(p)
                    problems.append(f"opts.{name} state {i}.{key} {shown} != its parameter's {wanted}")
    return problems


def state_kinds(opt: torch.optim.Optimizer) -> dict[str, str] | None:
    """The keys of the state ``opt``'s class keeps per parameter, each with its kind: ``scalar``
    (Adam's step), ``shaped`` like its parameter (exp_avg, exp_avg_sq) or ``none`` (SGD's momentum
    buffer without momentum), from one step of a twin on a parameter of shape (2,); None if the
    class cannot be made so."""
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.zeros(2)
    try:
        twin = type(opt)([p], **opt.defaults)
        twin.step()
    except Exception:  # an optimizer whose options are not all constructor arguments
        return None

    def kind(v: Any) -> str:
        if v is None:
            return "none"
        return "shaped" if isinstance(v, torch.Tensor) and v.shape == p.shape else "scalar"

    return {k: kind(v) for k, v in twin.state[p].items()}


def plain_mismatches(
    theirs: dict, ours: dict, where: str, exact_keys: bool = False, required: tuple[str, ...] = ()
) -> list[str]:
    """Keys whose values are not of the kind this run's own state holds (a number where a number
    is, finite; a sequence of as many; ``None`` and bools where those are). ``exact_keys``: no
    keys ours lacks (a scheduler sets every key as an attribute); ``required``: keys it must have."""
    problems = [f"{where}{k} missing" for k in required if k not in theirs]
    if exact_keys and set(theirs) != set(ours):
        extra, missing = sorted(map(str, set(theirs) - set(ours))), sorted(map(str, set(ours) - set(theirs)))
        return problems + [
            f"{where.rstrip('.') or 'it'} has "
            + " and ".join(
                ([f"unexpected key(s) {', '.join(extra)}"] if extra else [])
                + ([f"no key(s) {', '.join(missing)}"] if missing else [])
            )
        ]
    for key in set(theirs) & set(ours):
        a, b = theirs[key], ours[key]
        if isinstance(b, dict) and isinstance(a, dict):
            problems += plain_mismatches(a, b, f"{where}{key}.", exact_keys)
        elif not same_kind(a, b):
            problems.append(f"{where}{key} is {a!r:.40}, not a value like {b!r:.40}")
    return problems


def same_kind(a, b) -> bool:
    from disgen.runs.checkpoint import is_number

    if isinstance(b, bool) or b is None:
        return isinstance(a, bool) or a is None
    if isinstance(b, (int, float)):
        return is_number(a)
    if isinstance(b, (list, tuple)):
        return isinstance(a, (list, tuple)) and len(a) == len(b) and all(map(same_kind, a, b))
    if isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
    return type(a) is type(b)


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
