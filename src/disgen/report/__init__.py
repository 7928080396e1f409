"""``disgen report RUN_DIR [RUN_DIR...] [--out report.html]``: one self-contained HTML file.

One run: its final and best metrics (validation metrics per epoch; the test split's, evaluated
once after training, and the rest of eval.json apart), curves of every logged metric over the
epochs, the pictures that fit the model (see ``disgen.report.figures``) and its resolved config.
Several runs: their curves overlaid, a metrics table with the final and best values of each, and
the config values in which they differ. Images are inline PNG (base64), curves inline SVG, the
epoch slider a few lines of inline script: the file opens offline and refers to nothing outside it.
Every string from a run directory is HTML-escaped (a run directory is user data).

    history      what a report reads from a run      figures      the pictures per objective
    svg          line charts as inline SVG
    submission   Kaggle submission CSVs of a classifier run's predictions

May import: api (a report reads runs through ``disgen.load``, as a user would) and every layer
below it. Never serve or cli (the ``disgen report`` command is disgen.cli.report).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from disgen.errors import DisgenError, plural
from disgen.files import atomic_write
from disgen.report.history import RunFiles, best_of, direction, epoch_of, is_number, metric_keys, read_run
from disgen.report.svg import PALETTE, Series, escape, legend, line_chart
from disgen.runs import checkpoint_path
from disgen.viz import same_curves, wants_log


def num(v, epoch: int | None = None) -> str:
    """A table cell holding ``v`` rounded, its exact value in ``data-value`` and the title."""
    if not is_number(v):
        return "<td>—</td>" if v is None else f"<td>{escape(json.dumps(v))}</td>"
    shown = str(v) if isinstance(v, int) else f"{v:.4g}"
    at = f" <small>(epoch {epoch})</small>" if epoch is not None else ""
    return f'<td class="num" data-value="{v!r}" title="{v!r}">{shown}{at}</td>'


# -- sections of one run ----------------------------------------------------------------------
def summary_html(run: RunFiles) -> str:
    data = run.info["data"]
    epochs = epoch_of(run.history, -1) if run.history else 0
    rows = [
        ("model", f"{run.config.get('model')} (objective {run.objective})"),
        (
            "dataset",
            f"{data.get('name', run.config.get('dataset'))}, "
            + (
                f"points of {data['image_shape'][0]} numbers"
                if len(data.get("image_shape") or [0, 0]) == 1
                else f"images {data.get('image_shape', '?')}"
            )
            + f", {plural(len(data['classes']), 'class', 'classes')}",
        ),
        ("epochs", f"{epochs} of {run.config.get('epochs')}"),
        ("run directory", str(run.dir.resolve())),
        ("started", f"{run.info.get('started', '?')} on {run.info.get('device', '?')}"),
        (
            "versions",
            f"disgen {run.info.get('disgen', '?')}, torch {run.info.get('torch', '?')}, "
            f"Python {run.info.get('python', '?')}",
        ),
    ]
    key, mode = run.best
    best = best_of(run.history, f"val_{key}", mode)
    if best:
        rows.append(("checkpoints/best.pt", f"epoch {best[1]}, val_{key} {best[0]:.4g} ({mode} is best)"))
    else:
        rows.append(("checkpoints/best.pt", "none: the run has no validation split (--val-split 0)"))
    return table(["", ""], [[escape(a), escape(b)] for a, b in rows], header=False)


def table(head: list[str], rows: list[list[str]], header: bool = True, cls: str = "") -> str:
    """An HTML table; cells are HTML already (escaped by the caller) unless they start with <td."""
    cells = lambda row: "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row)  # noqa: E731
    thead = "<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>" if header else ""
    body = "".join(f"<tr>{cells(r)}</tr>" for r in rows)
    return f'<table class="{cls}">{thead}<tbody>{body}</tbody></table>'


def metrics_html(run: RunFiles) -> str:
    if not run.history:
        return '<p class="note">No epoch has completed yet (metrics.jsonl is empty).</p>'
    last = run.history[-1]
    picks = f"val_{run.best[0]}"
    rows = []
    for key in metric_keys(run.history):
        mode = direction(key)
        best = best_of(run.history, key, mode) if mode else None
        mark = (
            ' <span class="tag">picks best.pt</span>'
            if key == picks
            else ' <span class="tag">test curve: --test-every-epoch, read by nothing</span>'
            if key.startswith("test_")
            else ""
        )
        rows.append(
            [
                f"<code>{escape(key)}</code>{mark}",
                num(last.get(key)),
                num(*best) if best else "<td>—</td>",
                escape(mode or ""),
            ]
        )
    html = table(["metric", f"final (epoch {epoch_of(run.history, -1)})", "best", "better"], rows, cls="metrics")
    if run.final:
        rows = [
            [f"<code>{escape(k)}</code>", num(v)]
            for k, v in run.final.items()
            if k not in ("epoch", "final", "checkpoint", "checkpoint_epoch")
        ]
        html += (
            f"<h3>test split, evaluated once after epoch {escape(str(run.final.get('epoch')))} with "
            f"checkpoints/{escape(str(run.final.get('checkpoint')))}.pt (epoch "
            f"{escape(str(run.final.get('checkpoint_epoch')))})</h3>" + table(["metric", "value"], rows, cls="metrics")
        )
    own = (run.config.get("dataset"), "test", run.final.get("checkpoint"))
    for result in run.evaluation:
        if run.final and (result.get("dataset"), result.get("split"), result.get("checkpoint")) == own:
            continue  # the same evaluation as the final record above
        where = (
            f"{result.get('split', 'test')} split of {result.get('dataset', '?')}, checkpoint "
            f"{result.get('checkpoint', '?')}"
            + (f" (epoch {result['checkpoint_epoch']})" if is_number(result.get("checkpoint_epoch")) else "")
        )
        ev = [
            [f"<code>{escape(k)}</code>", num(v)]
            for k, v in result.items()
            if k not in ("dataset", "split", "checkpoint", "checkpoint_epoch")
        ]
        html += f"<h3>eval.json: {escape(where)}</h3>" + table(["metric", "value"], ev, cls="metrics")
    return html


def curve_groups(keys: list[str]) -> dict[str, list[str]]:
    """train_X, val_X and test_X share a chart named X; other keys get one each."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        name = k.split("_", 1)[1] if k.startswith(("train_", "val_", "test_")) else k
        groups.setdefault(name, []).append(k)
    return groups


def series(history: list[dict], key: str, label: str) -> Series:
    return Series(
        label,
        [epoch_of(history, i) for i in range(len(history))],
        [rec.get(key) if is_number(rec.get(key)) else None for rec in history],
    )


def curves_html(run: RunFiles) -> str:
    if not run.history:
        return '<p class="note">No curves yet.</p>'
    charts = []
    keys = [k for k in metric_keys(run.history) if k not in ("seconds", "eval_seconds")]  # times, not metrics
    twins = same_curves(run.history, keys)  # one number logged under two names: charted once
    for name, keys in curve_groups([k for k in keys if k not in twins]).items():
        labels = [f"{k} (every epoch, not used for choices)" if k.startswith("test_") else k for k in keys]
        labels = [" = ".join([label, *(t for t, of in twins.items() if of == k)]) for k, label in zip(keys, labels)]
        lines = [series(run.history, k, label) for k, label in zip(keys, labels)]
        log = wants_log([y for line in lines for y in line.ys])
        charts.append(f'<figure class="curve">{line_chart(name, lines, log=log)}{legend(labels)}</figure>')
    return f'<div class="figures">{"".join(charts)}</div>'


def flat_config(config: dict) -> dict[str, object]:
    out = {k: v for k, v in config.items() if k != "model_args"}
    model_args = config.get("model_args")
    if isinstance(model_args, dict):
        out.update({f"model_args.{k}": v for k, v in model_args.items()})
    return out


def config_html(run: RunFiles) -> str:
    rows = [
        [f"<code>{escape(k)}</code>", f"<code>{escape(json.dumps(v))}</code>"]
        for k, v in flat_config(run.config).items()
    ]
    classes = run.info["data"]["classes"]
    if classes:
        shown = ", ".join(map(str, classes[:30]))
        shown += f", ... ({len(classes)} in all)" if len(classes) > 30 else ""
        rows.append(["<code>classes</code> (run.json)", escape(shown)])
    return table(["option", "value"], rows, cls="config")


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


def config_diff_html(group: list[RunFiles]) -> str:
    flat = [flat_config(r.config) for r in group]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    differ = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]
    if not differ:
        return '<p class="note">The runs share every config value.</p>'
    rows = [
        [f"<code>{escape(k)}</code>"] + [f"<code>{escape(json.dumps(f.get(k)))}</code>" for f in flat] for k in differ
    ]
    return table(["option"] + [escape(r.label) for r in group], rows, cls="config")


def labels_for(paths: list[Path]) -> list[str]:
    """Each run's folder name, or its path as given where two runs share a folder name."""
    names = [p.name or str(p) for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths)]


# -- the page ----------------------------------------------------------------------------------
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:14px 28px}header h1{margin:0;font-size:20px;font-weight:600}
nav a{color:#b0bec5;margin-right:14px;text-decoration:none;font-size:13px}
main{max-width:1240px;margin:0 auto;padding:8px 28px 40px}
h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}h3{margin:18px 0 8px;font-size:15px}
table{border-collapse:collapse;background:#fff;margin:6px 0}
td,th{border:1px solid #e0e0e0;padding:3px 9px;text-align:left;vertical-align:top}
th{background:#eceff1;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.tag{background:#fff3cd;border:1px solid #e0c46c;border-radius:3px;font-size:11px;padding:0 4px}
.note{color:#795548}.figures{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0;background:#fff;border:1px solid #e0e0e0;padding:8px;max-width:100%}
figure img{display:block;max-width:100%;height:auto}img.zoom{image-rendering:pixelated}
figcaption{font-size:12px;color:#555;margin-top:4px;max-width:560px}
.chart .plot{fill:#fff;stroke:#bbb}.chart .grid{stroke:#eee}.chart text{font-size:11px;fill:#444}
.chart .chart-title{font-size:13px;font-weight:600;fill:#222}.chart .line{fill:none;stroke-width:1.8}
.legend{font-size:12px;max-width:380px}.legend span{margin-right:10px;white-space:nowrap}
.legend i,.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
.frame-controls{display:flex;gap:8px;align-items:center;margin-top:6px}.frame-controls input{flex:1}
.frame-label{min-width:110px;font-size:12px}.row{display:flex;flex-wrap:wrap;gap:0 40px}
.row>section{flex:0 1 auto;min-width:0}.row>section:first-child{max-width:480px}
.row>section:first-child td{overflow-wrap:anywhere}
"""

# The epoch slider (and play button) of every .frames figure: swap the <img>'s source.
SCRIPT = """
for (const box of document.querySelectorAll("figure.frames")) {
  const frames = JSON.parse(box.querySelector("script").textContent);
  const img = box.querySelector("img"), slider = box.querySelector("input");
  const label = box.querySelector(".frame-label"), play = box.querySelector("button.play");
  const show = (i) => { slider.value = i; img.src = frames[i].src; label.textContent = frames[i].label; };
  slider.addEventListener("input", () => show(Number(slider.value)));
  if (play) {
    let timer = null;
    play.addEventListener("click", () => {
      if (timer) { clearInterval(timer); timer = null; play.textContent = "play"; return; }
      timer = setInterval(() => show((Number(slider.value) + 1) % frames.length), 500);
      play.textContent = "pause";
    });
  }
}
"""


Section = tuple[str, str]  # (heading, HTML)


def page(title: str, sections: list[Section | list[Section]]) -> str:
    """The whole document; a list of sections inside ``sections`` is laid out side by side."""
    anchor = lambda name: name.lower().replace(" ", "-")  # noqa: E731
    section = lambda n, html: f'<section id="{anchor(n)}"><h2>{escape(n)}</h2>{html}</section>'  # noqa: E731
    rows = [item if isinstance(item, list) else [item] for item in sections]
    nav = "".join(f'<a href="#{anchor(n)}">{escape(n)}</a>' for row in rows for n, _ in row)
    body = "".join(
        section(*row[0]) if len(row) == 1 else '<div class="row">' + "".join(section(*s) for s in row) + "</div>"
        for row in rows
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><nav>{nav}</nav></header><main>{body}</main>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


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
