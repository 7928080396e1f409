"""The sections of a report, as HTML: a run's summary, its metrics table, its curves (inline SVG)
and its config; several runs' config differences and labels.

May import: report.history, report.svg, viz, files and errors.
"""

from __future__ import annotations

import json
from pathlib import Path

from disgen.errors import plural
from disgen.objectives import finite
from disgen.report.history import RunFiles, best_of, direction, epoch_of, is_number, metric_keys
from disgen.report.svg import Series, escape, legend, line_chart
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
    i = run.best_record
    if i is not None:
        value = run.history[i].get(f"val_{key}")
        value = f", val_{key} {value:.4g} ({mode} is best)" if finite(value) else ""
        rows.append(("checkpoints/best.pt", f"epoch {epoch_of(run.history, i)}{value}"))
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
