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

One module per concern: ``directory`` (where a run goes, what starts one, whether a folder holds a
run, :func:`load_nets`: a run's networks rebuilt from the directory alone), ``metrics`` (metrics.jsonl
and eval.json), ``lock`` (one process per run directory; Ctrl-C said as what to do next),
``checkpoint`` (writes and validates the checkpoints) and ``compatible`` (checks one against the run
that would use it). Their names are importable from here.

May import: models, data, config, files, errors, version.
"""

from __future__ import annotations

from disgen.runs import checkpoint
from disgen.runs.compatible import check_compatible
from disgen.runs.directory import (
    check_run_dir,
    checkpoint_path,
    data_info,
    default_run_dir,
    has_checkpoint,
    holds_run,
    inside,
    load_nets,
    nearest_runs,
    no_run_error,
    prepare,
    read_config,
    started_here,
)
from disgen.runs.lock import (
    LOCK,
    holder,
    lock,
    resumable,
)
from disgen.runs.metrics import (
    EVAL_FILE,
    MAX_LINE,
    append_metrics,
    read_evals,
    read_final,
    read_metrics,
    record_eval,
    write_metrics,
)

__all__ = [
    "EVAL_FILE",
    "LOCK",
    "MAX_LINE",
    "append_metrics",
    "check_compatible",
    "check_run_dir",
    "checkpoint",
    "checkpoint_path",
    "data_info",
    "default_run_dir",
    "has_checkpoint",
    "holder",
    "holds_run",
    "inside",
    "load_nets",
    "lock",
    "nearest_runs",
    "no_run_error",
    "prepare",
    "read_config",
    "read_evals",
    "read_final",
    "read_metrics",
    "record_eval",
    "resumable",
    "started_here",
    "write_metrics",
]
