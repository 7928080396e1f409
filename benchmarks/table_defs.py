"""The tables of README.md and docs/*.md, one function each, from benchmarks/results/*.json (see
tables.py). Each function takes ``results(name) -> dict`` and returns a Markdown table; figures
come only from the files, and every row names the commit it was measured at."""
from __future__ import annotations

from typing import Callable

Results = Callable[[str], dict]
TABLES: dict[str, Callable[[Results], str]] = {}


def table(name: str):
    def wrap(fn):
        TABLES[name] = fn
        return fn
    return wrap


def md(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]) + "\n"


def pm(s: dict | None, digits: int = 4, scale: float = 1.0, unit: str = "", bold: bool = False) -> str:
    """``mean ± std`` of a stats dict (common.stats), scaled (e.g. 100 for %)."""
    if not s or s.get("mean") is None:
        return "—"
    text = f"{s['mean'] * scale:.{digits}f}{unit} ± {s['std'] * scale:.{digits}f}"
    return f"**{text}**" if bold else text


def commit(r: dict) -> str:
    return f"`{r['commit']}`" + (" (+ uncommitted)" if r.get("src_uncommitted_changes") else "")


def machine(r: dict) -> str:
    m = r.get("machine")
    if isinstance(m, dict):
        return f"{m.get('cpu', '?')}, {m.get('threads', '?')} torch thread(s), torch {m.get('torch', '?')}"
    return str(m)


# -- the presets' headline figures (bench_presets.py) ------------------------------------------------
PRESET_ROWS = {  # config -> what the row shows
    "seed000": "seed 000 classifier, Fashion-MNIST, 3 epochs",
    "seed000-lr0.001": "the same with lr 0.001 (the value in the seed's text)",
    "seed001": "seed 001 autoencoder, Fashion-MNIST, 3 epochs",
    "mlp-classifier": "`mlp-classifier` default preset, Fashion-MNIST",
    "mlp-autoencoder": "`mlp-autoencoder` default preset, Fashion-MNIST",
    "cnn-classifier": "`cnn-classifier` default preset, mnist-mini",
    "cnn-classifier-fast": "`cnn-classifier --preset fast`, mnist-mini",
}


def metric_cell(metric: str, s: dict | None, bold: bool = False) -> str:
    if metric == "accuracy":
        return pm(s, 2, 100, "%", bold)
    return pm(s, 4, 1, "", bold)


@table("presets")
def presets(results: Results) -> str:
    r = results("presets")
    rows = []
    for name, what in PRESET_ROWS.items():
        if name not in r["results"]:
            continue
        x = r["results"][name]
        unseen = metric_cell(x["metric"], x.get("unseen")) if x.get("unseen") else "—"
        rows.append([what, f"`{x['command']}`", x["test"]["n"], f"test {x['metric']} " +
                     metric_cell(x["metric"], x["test"], bold=True), metric_cell(x["metric"], x["val"]),
                     unseen, f"{x['train_seconds']['mean']:.0f}", commit(r)])
    return md(["what", "command", "n", "test (once, after training)", "validation (chose the checkpoint)",
               "unseen MNIST test digits", "train s / run", "commit"], rows)


# -- gan2d (bench_gan2d.py) ---------------------------------------------------------------------------
@table("gan2d")
def gan2d(results: Results) -> str:
    r = results("gan2d")
    rows = []
    for preset, x in r["results"].items():
        w2 = x["w2"]
        rows.append([preset, w2["n"], f"{x['median']:.4f}", pm(w2, 4), f"{min(w2['values']):.4f}",
                     f"{max(w2['values']):.4f}", x["checkpoint"], f"{x['seconds']['mean']:.1f}", commit(r)])
    return md(["preset", "n (seeds)", "median test w2_squared", "mean ± std", "min", "max", "checkpoint",
               "wall s / run", "commit"], rows)
