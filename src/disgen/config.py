"""Training configuration: one typed dataclass, resolved from defaults, a preset, a config file
and command-line flags (later ones win), and saved as ``config.json`` in the run directory.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from disgen.errors import DisgenError


def opt(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its CLI help text and, where it has a fixed set, its allowed values:
    the one mechanism for TrainConfig's and every model config's options."""
    metadata = {"help": help, **({"choices": tuple(choices)} if choices else {})}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data. CLI flags are generated from these fields."""

    model: str = opt("cnn-classifier", "model name (see `disgen models`)")
    preset: str = opt(
        "default",
        "preset: 'seed' (the source document's settings) or 'default'; a model with a 'budget' preset "
        "takes it for a --time-budget run that names none",
    )
    dataset: str = opt(
        "mnist-mini",
        "a registered name (see `disgen datasets`), a folder of the four IDX files, "
        "a folder of images with one subfolder per class, a Kaggle layout from "
        "`disgen kaggle-organize` (DIR or DIR/train_valid), or a Hugging Face dataset "
        "(pip install disgen[hf]): hf:NAME[:CONFIG], a save_to_disk folder, or Parquet files",
    )
    data_dir: str | None = opt(None, "folder holding the dataset's files, searched before the cache")
    image_column: str | None = opt(
        None, "a Hugging Face dataset's image column (default: its one datasets.Image feature or uint8 array)"
    )
    label_column: str | None = opt(
        None,
        "a Hugging Face dataset's label column (default: its one datasets.ClassLabel feature, else a "
        "column named label; class names from the ClassLabel, or a plain column's sorted values)",
    )
    epochs: int = opt(10, "number of passes over the training split")
    time_budget: float | None = opt(
        None,
        "seconds of training, a deadline: the run stops when they are spent, its steps and schedule "
        "planned from the time its steps take and planned again as that changes (a busier machine); "
        "the steps taken are written into config.json (max_steps, epochs, budget_plan), so a rerun of "
        "it or a resume is exact; evaluation is timed apart (eval_seconds). Not with --epochs",
    )
    max_steps: int | None = opt(None, "stop after this many training steps in all (set by --time-budget)")
    budget_plan: list | None = opt(
        None, "a --time-budget run's schedule: [step, steps planned] each time it planned (set by the run)"
    )
    batch_size: int = opt(100, "images per optimisation step")
    optimizer: str = opt("adam", "the optimizer", choices=("adam", "adamw", "sgd"))
    lr: float = opt(1e-3, "learning rate")
    betas: tuple[float, float] = opt((0.9, 0.999), "Adam's betas, e.g. 0.5,0.999")
    momentum: float = opt(0.9, "SGD momentum")
    nesterov: bool = opt(False, "SGD with Nesterov momentum")
    weight_decay: float = opt(0.0, "L2 weight decay (decoupled for adamw)")
    lr_schedule: str = opt("none", "learning-rate schedule", choices=("none", "step", "cosine", "onecycle"))
    lr_period: int = opt(10, "step schedule: decay the lr every this many epochs")
    lr_decay: float = opt(0.1, "step schedule: multiply the lr by this")
    augment: str = opt(
        "none",
        "none, affine (random rotation, scale and shift: digits), flip "
        "(flips and 2-pixel shifts: clothes, objects) or imagenet (random resized "
        "crop, flip, colour jitter)",
        choices=("none", "affine", "flip", "imagenet"),
    )
    val_split: float = opt(
        0.1,
        "share of the training split held out for validation, stratified and the "
        "same for every --seed (a dataset's own validation split is used as "
        "it is); best.pt and the warnings read it. 0: train on the whole "
        "training split (no best.pt)",
    )
    test_every_epoch: bool = opt(
        False,
        "also evaluate the test split after every epoch, a curve for "
        "reports that nothing reads for choices (the test split is "
        "otherwise evaluated once, after the last epoch)",
    )
    labels: int = opt(
        0,
        "use N labelled training images (N/classes per class, seeded; "
        "RUN_DIR/labels.json): classifiers and aae; 0: all",
    )
    seed: int = opt(0, "random seed (weights, shuffling, augmentation)")
    deterministic: bool = opt(
        False,
        "deterministic kernels only: bit-identical reruns on the same "
        "hardware and software, also on a GPU (slower there; README)",
    )
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    precision: str = opt(
        "auto",
        "the number format of the training step "
        "(autocast; weights stay fp32). auto: bf16 where it is native and pays "
        "off, fp16 on GPUs without bf16, else fp32; run.json records the choice",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    channels_last: str = opt("auto", "NHWC memory layout; auto: on for conv nets", choices=("auto", "on", "off"))
    compile: bool = opt(False, "torch.compile the networks (slow first steps; see README for when it pays)")
    data_on_device: str = opt(
        "auto",
        "yes: hold every split as floats on the device (fastest for small data); no: read each batch "
        "from the uint8 images, memory-mapped on disk for folders, Kaggle layouts and Hugging Face "
        "datasets, so memory follows the batch; auto: yes while the float copies take under 2 GiB "
        "and a quarter of the device's memory",
        choices=("auto", "yes", "no"),
    )
    run_dir: str | None = opt(None, "exact run directory (default runs/<model>-<dataset>-<time>)")
    progress: bool = opt(True, "show a live progress bar")
    tensorboard: bool = opt(
        False,
        "also write TensorBoard event files (scalars, images, histograms) "
        "to RUN_DIR/tensorboard; needs `pip install tensorboard`",
    )
    model_args: dict = opt({}, "overrides of the model's own options")

    def to_dict(self) -> dict:
        return asdict(self)


MAX_PATH, NAME_MAX = 4096, 255  # Linux's PATH_MAX and NAME_MAX
# What can run: 16 weeks of training, 10^9 steps (over 3 years at 0.1 ms a step), 10^6 epochs.
MAX_BUDGET, MAX_STEPS, MAX_EPOCHS = 16 * 7 * 24 * 3600.0, 10**9, 10**6
MAX_PLANS = 10_000  # a budget run plans about 20 times (every 5% of the budget)

# The options with a fixed set of values (opt(..., choices=)), checked by validate().
CHOICES = {f.name: f.metadata["choices"] for f in fields(TrainConfig) if "choices" in f.metadata}


def field_types() -> dict[str, Any]:
    """Field name -> resolved type annotation of TrainConfig."""
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in fields(TrainConfig)}


def from_dict(data: dict) -> TrainConfig:
    """A TrainConfig from a plain dict (e.g. a saved config.json), checking names and types."""
    known = field_types()
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise DisgenError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(known)}")
    values = {}
    for name, value in data.items():
        values[name] = coerce(name, value, known[name])
    return TrainConfig(**values)


def coerce(name: str, value: Any, kind: Any) -> Any:
    """Convert JSON/CLI values to the field's type, with an error naming the field."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    try:
        optional = origin in (typing.Union, types.UnionType) and type(None) in args
        if value is None:
            if optional:
                return None
            raise TypeError(value)
        if origin in (typing.Union, types.UnionType):  # X | None
            inner = [a for a in args if a is not type(None)][0]
            return coerce(name, value, inner)
        if origin is tuple:
            seq = value.split(",") if isinstance(value, str) else list(value)
            return tuple(float(v) if args[0] is float else int(v) for v in seq)
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if kind is dict:
            return dict(value)
        return kind(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(float("inf"))
        raise DisgenError(
            f"bad value {value!r} for {name} (--{name.replace('_', '-')}): expected {getattr(kind, '__name__', kind)}"
        ) from None


def validate(cfg: TrainConfig) -> None:
    """Reject values that cannot work, naming the option and saying what is allowed."""
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise DisgenError(f"--{name.replace('_', '-')} {getattr(cfg, name)!r}: choose one of {', '.join(allowed)}")
    positive = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr_period": cfg.lr_period}
    for name, value in positive.items():
        if value < 1:
            raise DisgenError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
    if cfg.time_budget is not None and not 0 < cfg.time_budget <= MAX_BUDGET:
        raise DisgenError(
            f"--time-budget takes seconds of training, a positive number up to {MAX_BUDGET:,.0f} "
            f"(16 weeks) (got {cfg.time_budget:g})"
        )
    for name, most in (("max_steps", MAX_STEPS), ("epochs", MAX_EPOCHS)):
        value = getattr(cfg, name)
        if value is not None and not 1 <= value <= most:
            raise DisgenError(f"--{name.replace('_', '-')} must be in 1..{most:,} (got {value:,})")
    check_plan(cfg.budget_plan)
    if not 0 < cfg.lr < math.inf:
        raise DisgenError(f"--lr must be positive and finite (got {cfg.lr})")
    for name in ("momentum", "weight_decay", "lr_decay"):
        if not math.isfinite(getattr(cfg, name)):
            raise DisgenError(f"--{name.replace('_', '-')} must be a finite number (got {getattr(cfg, name)})")
    if len(cfg.betas) != 2 or not all(0 <= b < 1 for b in cfg.betas):
        raise DisgenError(f"--betas takes two numbers in [0, 1), e.g. 0.9,0.999 (got {cfg.betas})")
    if not 0 <= cfg.seed < 2**63:
        raise DisgenError(f"--seed must be in 0 .. 2**63-1 (got {cfg.seed})")
    if not 0 <= cfg.val_split < 1:
        raise DisgenError(
            f"--val-split must be in [0, 1), e.g. 0.1 (got {cfg.val_split}); 0 trains on the whole training split"
        )
    if cfg.labels < 0:
        raise DisgenError(f"--labels must be >= 0 (got {cfg.labels}); 0 uses every label")
    if cfg.weight_decay < 0:
        raise DisgenError(f"--weight-decay must be >= 0 (got {cfg.weight_decay})")
    for name in ("dataset", "data_dir", "image_column", "label_column", "run_dir", "device", "preset"):
        check_text(f"--{name.replace('_', '-')}", getattr(cfg, name))


def check_plan(plan: Any) -> None:
    """A budget_plan as a run writes it: knots [step, steps planned] from step 0, the steps rising,
    each plan at least its own step, all within MAX_STEPS (a hand-edited config.json may hold any JSON)."""
    if plan is None:
        return
    knots = plan if isinstance(plan, list) and 0 < len(plan) <= MAX_PLANS else None
    ok = knots is not None and all(
        isinstance(k, list) and len(k) == 2 and all(type(v) is int and 0 <= v <= MAX_STEPS for v in k) and k[0] <= k[1]
        for k in knots
    )
    if not ok or knots[0][0] != 0 or any(a[0] >= b[0] for a, b in zip(knots, knots[1:])):
        shown = repr(plan)[:60]
        raise DisgenError(
            f"budget_plan {shown} is not a plan a --time-budget run writes ([[0, steps], [step, steps], ...], "
            "steps rising); remove it from the config file, or rerun the run's own config.json"
        )


def check_text(flag: str, value: Any) -> None:
    """A name or path of at most MAX_PATH characters and NAME_MAX bytes a component (a 50 MB
    ``dataset`` would otherwise reach the file system: "File name too long")."""
    if value is None:
        return
    parts = str(value).split("/")
    if (
        len(str(value)) > MAX_PATH
        or any(len(p.encode("utf-8", "surrogatepass")) > NAME_MAX for p in parts)
        or "\0" in str(value)
    ):
        shown = repr(str(value)[:40]) + ("..." if len(str(value)) > 40 else "")
        raise DisgenError(
            f"{flag} {shown} ({len(str(value)):,} characters) is not a name or path: "
            f"at most {MAX_PATH} characters, {NAME_MAX} bytes between slashes, no NUL"
        )


# A config file holds a few dozen options, nested three deep ({"model_args": {"hidden": [..]}}).
MAX_CONFIG_BYTES, MAX_JSON_DEPTH = 1 << 20, 32


def read_json(path: str | Path, what: str, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """The JSON value in ``path`` (``what`` names the file in errors), refusing before parsing a
    file over ``max_bytes``, and after it nesting over MAX_JSON_DEPTH: a file of 100,000 ``[``
    exhausts Python's recursion, a 50 MB string is no option. None if the file does not exist."""
    from disgen.files import special_file

    path = Path(path)
    if special_file(path):  # a FIFO would wait for a writer for ever
        raise DisgenError(f"{what} {path} is not a file but {special_file(path)}: pass the right file")
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise DisgenError(f"cannot read {what} {path}: {err.strerror or err}") from None
    if len(raw) > max_bytes:
        raise DisgenError(
            f"{what} {path} is over {max_bytes:,} bytes, far more than such a file holds: pass the right file"
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DisgenError(f"{what} {path} is not valid JSON: {err}") from None
    except RecursionError:
        data, deep = None, True
    else:
        deep = nesting(data) > MAX_JSON_DEPTH
    if deep:
        raise DisgenError(
            f"{what} {path} nests its values over {MAX_JSON_DEPTH} deep: it is not a file of "
            "options; pass the right file"
        )
    return data


def nesting(value: Any) -> int:
    """How deep lists and objects nest in a parsed JSON value (without recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, depth = todo.pop()
        if isinstance(v, (list, dict)):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:  # past it the answer is known
                todo += [(x, depth + 1) for x in (v.values() if isinstance(v, dict) else v)]
    return deepest


def load_config_file(path: str | Path, model: str | None = None) -> dict:
    """Read a JSON config file (keys as in config.json; ``model`` overrides under "model_args").

    A run's own config.json reruns as it is: its ``"model"`` (the model's name) must be ``model``
    and is dropped, and its ``run_dir``, the run's own directory, is dropped too, so the rerun
    goes to a new run directory (a ``run_dir`` that holds no run yet is kept)."""
    data = read_json(path, "config file")
    if data is None:
        raise DisgenError(f"config file {path} does not exist")
    if not isinstance(data, dict):
        raise DisgenError(f"config file {path} must hold a JSON object of option: value")
    named = data.get("model")
    if isinstance(named, str) and model is not None:
        if named != model:
            raise DisgenError(
                f"config file {path} is a config of {named!r}, not {model!r}: train it with "
                f"`disgen train {named} --config {path}`"
            )
        data = {k: v for k, v in data.items() if k != "model"}
    if holds_config(data.get("run_dir")):  # a run's own: the rerun gets a new one
        data = {k: v for k, v in data.items() if k != "run_dir"}
    return data


def holds_config(run_dir: Any) -> bool:
    """Whether ``run_dir`` (a config file's value, any JSON) is a folder holding a config.json."""
    if not isinstance(run_dir, str) or "\0" in run_dir:
        return False
    try:
        return (Path(run_dir) / "config.json").is_file()
    except OSError:  # a name too long
        return False
