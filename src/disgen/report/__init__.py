"""``disgen report RUN_DIR [RUN_DIR...] [--out report.html]``: one self-contained HTML file.

One run: its final and best metrics (validation metrics per epoch; the test split's, evaluated
once after training, and the rest of eval.json apart), curves of every logged metric over the
epochs, the pictures that fit the model (see ``disgen.report.figures``) and its resolved config.
Several runs: their curves overlaid, a metrics table with the final and best values of each, and
the config values in which they differ. Images are inline PNG (base64), curves inline SVG, the
epoch slider a few lines of inline script: the file opens offline and refers to nothing outside it.
Every string from a run directory is HTML-escaped (a run directory is user data).

    history      what a report reads from a run      figures      the pictures per objective
    sections     summary, metrics, curves, config    page         the HTML page around them
    svg          line charts as inline SVG
    submission   Kaggle submission CSVs of a classifier run's predictions

May import: api (a report reads runs through ``disgen.load``, as a user would) and every layer
below it. Never serve or cli (the ``disgen report`` command is disgen.cli.report).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from disgen.errors import DisgenError
from disgen.files import atomic_write
from disgen.report.history import RunFiles, best_of, direction, epoch_of, is_number, metric_keys, read_run
from disgen.report.page import page
from disgen.report.sections import (
    config_diff_html,
    config_html,
    curves_html,
    labels_for,
    metrics_html,
    num,
    series,
    summary_html,
    table,
)
from disgen.report.svg import PALETTE, escape, legend, line_chart
from disgen.runs import checkpoint_path
from disgen.viz import wants_log


def single_report(run: RunFiles, checkpoint: str) -> str:
    from disgen.report.figures import pictures_html

    checkpoint = checkpoint_path(run.dir, checkpoint).stem  # auto: best.pt where there is one, as every command
    with tempfile.TemporaryDirectory(prefix="disgen-report-") as tmp:
        pictures = pictures_html(run.dir, run.objective, checkpoint, Path(tmp))
    sections = [
        [("Summary", summary_html(run)), ("Metrics", metrics_html(run))],
        ("Curves", curves_html(run)),
        ("Pictures", pictures),
        ("Configuration", config_html(run)),
    ]
    return page(f"disgen report: {run.label}", sections)


# -- several runs ------------------------------------------------------------------------------
def compare_report(group: list[RunFiles]) -> str:
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(group))]
    labels = [r.label for r in group]
    runs_rows = [
        [
            f'<i class="swatch" style="background:{c}"></i>{escape(r.label)}',
            escape(str(r.config.get("model"))),
            escape(str(r.info["data"].get("name", r.config.get("dataset")))),
            str(epoch_of(r.history, -1) if r.history else 0),
            escape(str(r.dir.resolve())),
        ]
        for r, c in zip(group, colors)
    ]
    keys = list(dict.fromkeys(k for r in group for k in metric_keys(r.history)))
    counts = {k: sum(k in metric_keys(r.history) for r in group) for k in keys}
    shared = [k for k in keys if counts[k] >= 2] or keys
    metric_rows = []
    for k in keys:
        row = [f"<code>{escape(k)}</code>"]
        for r in group:
            mode = direction(k)
            best = best_of(r.history, k, mode) if mode and r.history else None
            row += [num(r.history[-1].get(k) if r.history else None), num(*best) if best else "<td>—</td>"]
        metric_rows.append(row)
    tests = list(dict.fromkeys(k for r in group for k, v in r.final.items() if k.startswith("test_") and is_number(v)))
    for k in tests:  # the test split, once after training, with the checkpoint each run chose
        row = [f"<code>{escape(k)}</code> <small>(after training)</small>"]
        for r in group:
            at = r.final.get("checkpoint_epoch") if k in r.final else None
            row += [num(r.final.get(k), at), "<td>—</td>"]
        metric_rows.append(row)
    head = ["metric"] + [f"{escape(label)}: {part}" for label in labels for part in ("final", "best")]
    overlaid = [
        line_chart(k, lines, colors, log=wants_log([y for line in lines for y in line.ys]))
        for k in shared
        if k not in ("seconds", "eval_seconds")  # times, not metrics (in the table above)
        for lines in [[series(r.history, k, r.label) for r in group]]
    ]
    charts = "".join(f'<figure class="curve">{svg}</figure>' for svg in overlaid)
    sections = [
        ("Runs", table(["run", "model", "dataset", "epochs", "directory"], runs_rows)),
        ("Metrics", table(head, metric_rows, cls="metrics")),
        ("Curves", legend(labels, colors) + f'<div class="figures">{charts}</div>'),
        ("Configuration differences", config_diff_html(group)),
    ]
    return page("disgen report: " + " vs ".join(labels), sections)


def render(run_dirs: list[str | Path], checkpoint: str = "auto") -> str:
    """The HTML of one run's report, or of a comparison of several runs."""
    paths = [Path(d) for d in run_dirs]
    if not paths:
        raise DisgenError("name at least one run directory")
    group = [read_run(p, label) for p, label in zip(paths, labels_for(paths))]
    return single_report(group[0], checkpoint) if len(group) == 1 else compare_report(group)


def write_report(run_dirs: list[str | Path], out: str | Path | None = None, checkpoint: str = "auto") -> Path:
    """Write the report to ``out`` (default RUN_DIR/report.html for one run, ./report.html for
    several) and return its path."""
    html = render(run_dirs, checkpoint)
    if out is None:
        out = Path(run_dirs[0]) / "report.html" if len(run_dirs) == 1 else Path("report.html")
    out = Path(out)
    try:
        atomic_write(out, lambda f: f.write(html.encode()))
    except OSError as err:
        raise DisgenError(f"could not write {out}: {err.strerror or err}; choose another --out") from None
    return out
