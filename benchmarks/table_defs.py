"""The registry of results tables and the cells they share. Each table is a function registered
with ``@table(NAME)`` in the module of its family, beside the scripts that make its data
(tables_presets.py, tables_gan.py, tables_aae.py, tables_budget.py, tables_speed.py,
tables_data.py, tables_gpu.py, mnist_tables.py); tables.py imports them all. A function takes
``results(name) -> dict`` and returns Markdown; its figures come only from the files (every mean,
std, median and n recomputed from the per-run values, ``stat``), and every row names the commit it
was measured at."""

from __future__ import annotations

import statistics
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


def stat(s: dict | None) -> dict | None:
    """A stats dict (common.stats) recomputed from its per-run ``values``: n, mean, sample std and
    median. A stored mean, std or median is never trusted where the values are there, so changing
    one run's value changes every table that shows it (tests/test_tables.py). Files written before
    the benchmarks kept their values hold only the pair, which is shown as it is."""
    if not s or "values" not in s:
        return s
    v = [float(x) for x in s["values"]]
    if not v:
        return {"values": v, "n": 0, "mean": None, "std": None, "median": None}
    return {
        "values": v,
        "n": len(v),
        "mean": statistics.mean(v),
        "std": statistics.stdev(v) if len(v) > 1 else 0.0,
        "median": statistics.median(v),
    }


def pm(s: dict | None, digits: int = 4, scale: float = 1.0, unit: str = "", bold: bool = False) -> str:
    """``mean ± std`` of a stats dict (common.stats), from its per-run values, scaled (e.g. 100 for %)."""
    s = stat(s)
    if not s or s.get("mean") is None:
        return "—"
    text = f"{s['mean'] * scale:.{digits}f}{unit} ± {s['std'] * scale:.{digits}f}"
    return f"**{text}**" if bold else text


def reruns(r: dict) -> list[dict]:
    """The runs of a results file, oldest first: a benchmark run again with ``--append`` keeps each
    run, with its own commit, command and date, under ``reruns``; any other file is one run."""
    return r["reruns"] if "reruns" in r else [r]


def speed_figures(x: dict) -> dict:
    """One model of a bench_speed.py run: ``samples_per_s`` and ``ms_per_batch`` per side and
    ``ratio`` (disgen auto / plain) as (mean, std), ``ratio_median`` and ``ratio_fastest``, computed
    from the per-repeat epoch ``seconds`` of each side (timed in the same rounds, so the ratio is
    the mean of per-round quotients). Runs from before the script kept those seconds (before
    f02baca) hold only the (mean, std) pairs it computed, which are shown as they are."""
    if "seconds" not in x:
        return {k: x[k] for k in ("samples_per_s", "ms_per_batch", "ratio", "ratio_median", "ratio_fastest") if k in x}
    sec = {side: v for side, v in x["seconds"].items() if side in ("plain", "auto", "fp32")}

    def pair(values: list[float]) -> tuple[float, float]:
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    ratios = [p / a for p, a in zip(sec["plain"], sec["auto"], strict=True)]
    return {
        "samples_per_s": {side: pair([x["images"] / t for t in v]) for side, v in sec.items()},
        "ms_per_batch": {side: pair([1000 * t / x["steps"] for t in v]) for side, v in sec.items()},
        "ratio": pair(ratios),
        "ratio_median": statistics.median(ratios),
        "ratio_fastest": min(sec["plain"]) / min(sec["auto"]),
    }


def commit(r: dict) -> str:
    return f"`{r['commit']}`" + (" (+ uncommitted)" if r.get("src_uncommitted_changes") else "")


def machine(r: dict) -> str:
    m = r.get("machine")
    if isinstance(m, dict):
        return f"{m.get('cpu', '?')}, {m.get('threads', '?')} torch thread(s), torch {m.get('torch', '?')}"
    return str(m)


def seeds_pm(s: dict, digits: int) -> str:
    """``mean ± std`` computed from a stats dict's per-seed values."""
    return pm(of(s["values"]), digits)


def of(values: list[float]) -> dict:
    """mean and sample std of per-seed values, as common.stats gives them."""
    import statistics

    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
