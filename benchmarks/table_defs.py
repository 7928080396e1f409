"""The tables of README.md and docs/*.md, one function each, from benchmarks/results/*.json (see
tables.py). Each function takes ``results(name) -> dict`` and returns a Markdown table; figures
come only from the files, and every row names the commit it was measured at."""

from __future__ import annotations

import math
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
        return {k: x[k] for k in ("samples_per_s", "ms_per_batch", "ratio", "ratio_median", "ratio_fastest")}
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


def of(values: list[float]) -> dict:
    """mean and sample std of per-seed values, as common.stats gives them."""
    import statistics

    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


@table("presets")
def presets(results: Results) -> str:
    r = results("presets")
    rows = []
    for name, what in PRESET_ROWS.items():
        if name not in r["results"]:
            continue
        x = r["results"][name]
        unseen = metric_cell(x["metric"], x.get("unseen")) if x.get("unseen") else "—"
        rows.append(
            [
                what,
                f"`{x['command']}`",
                stat(x["test"])["n"],
                f"test {x['metric']} " + metric_cell(x["metric"], x["test"], bold=True),
                metric_cell(x["metric"], x["val"]),
                unseen,
                f"{stat(x['train_seconds'])['mean']:.0f}",
                commit(r),
            ]
        )
    return md(
        [
            "what",
            "command",
            "n",
            "test (once, after training)",
            "validation (chose the checkpoint)",
            "unseen MNIST test digits",
            "train s / run",
            "commit",
        ],
        rows,
    )


# -- gan2d (bench_gan2d.py) ---------------------------------------------------------------------------
@table("gan2d")
def gan2d(results: Results) -> str:
    r = results("gan2d")
    rows = []
    for preset, x in r["results"].items():
        values = sorted(x["w2"]["values"])
        lo, hi = median_interval(values)
        rows.append(
            [
                preset,
                len(values),
                f"{statistics.median(values):.4f}",
                f"{lo:.4f} to {hi:.4f}",
                pm(of(values), 4),
                f"{values[0]:.4f}",
                f"{values[-1]:.4f}",
                x["checkpoint"],
                commit(r),
                machine(r),
            ]
        )
    header = ["preset", "n (seeds)", "median test w2_squared", "95% interval of the median", "mean ± std", "min", "max"]
    return md(header + ["checkpoint", "commit", "CPU"], rows)


def median_interval(values: list[float]) -> tuple[float, float]:
    """The distribution-free 95% interval of the median of sorted ``values``: the order statistics
    k and n + 1 - k with k the largest for which P(Binomial(n, 1/2) < k) <= 2.5%."""
    n = len(values)
    k, below = 0, 0.0
    while below + math.comb(n, k) / 2**n <= 0.025:
        below += math.comb(n, k) / 2**n
        k += 1
    return (values[k - 1], values[n - k]) if k >= 1 else (values[0], values[-1])


# -- presets chosen on validation (bench_preset_check.py) ----------------------------------------------
@table("preset-check")
def preset_check(results: Results) -> str:
    r = results("preset_check")
    rows = []
    for check, x in r["results"].items():
        chosen = max if x["better"] == "max" else min
        best = chosen(x["variants"], key=lambda v: stat(x["variants"][v]["val"])["mean"])
        for variant, v in x["variants"].items():
            cell = metric_cell(x["metric"], v["val"], bold=variant == best)
            rows.append(
                [
                    f"`{check}`",
                    variant,
                    f"`{v['command']}`",
                    stat(v["val"])["n"],
                    f"validation {x['metric']} {cell}",
                    f"{stat(v['train_seconds'])['mean']:.0f}",
                    commit(r),
                ]
            )
    return md(
        [
            "model",
            "variant",
            "command",
            "n",
            "best validation epoch (higher/lower is better as named)",
            "train s / run",
            "commit",
        ],
        rows,
    )


# -- dcgan28 at equal training time (bench_gan_equal_time.py) ------------------------------------------
def equal_time(results: Results, name: str) -> str:
    r = results(name)
    cols = [
        ("frechet_distance", 3),
        ("kid", 4),
        ("precision", 3),
        ("recall", 3),
        ("min_class_share", 3),
        ("classes_covered", 1),
    ]
    rows = []
    for preset, x in r["results"].items():
        rows.append(
            [preset, x["epochs"], f"{stat(x['train_seconds'])['mean']:.0f}", stat(x["frechet_distance"])["n"]]
            + [pm(x[c], d) for c, d in cols]
            + [commit(r)]
        )
    return md(
        [
            "preset",
            "epochs",
            "train s",
            "n (seeds)",
            "test Fréchet distance",
            "KID",
            "precision",
            "recall",
            "min_class_share",
            "classes covered",
            "commit",
        ],
        rows,
    )


@table("dcgan28-mnist-mini")
def dcgan28_mini(results: Results) -> str:
    return equal_time(results, "dcgan28_equal_time_mnist-mini")


@table("dcgan28-fashion-mnist")
def dcgan28_fashion(results: Results) -> str:
    return equal_time(results, "dcgan28_equal_time_fashion-mnist")


# -- semi-supervised AAE against its baseline (bench_aae_labels.py) -------------------------------------
AAE_ROWS = {
    "aae": "`aae` (default preset)",
    "baseline": "same network, `mlp-classifier` on the labels alone",
    "consistency-only": "ablation: the consistency term without the AAE's phases",
}


def aae_labels(results: Results, names: list[str]) -> str:
    rows = []
    for name in names:
        r = results(name)
        a = r["args"]
        for model, runs in r["results"].items():  # per-seed runs; the file's "summary" is not read
            s = {k: {"values": [run[k] for run in runs]} for k in ("accuracy", "val_accuracy", "cpu_minutes")}
            epochs = runs[0]["epochs"]
            epochs = f"{epochs} (over the {a['labels']} labels)" if model == "baseline" else epochs
            rows.append(
                [
                    a["dataset"],
                    a["labels"],
                    AAE_ROWS.get(model, model),
                    epochs,
                    len(runs),
                    pm(s["accuracy"], 2, 100, "%", bold=model == "aae"),
                    pm(s["val_accuracy"], 2, 100, "%"),
                    f"{stat(s['cpu_minutes'])['mean']:.1f}",
                    commit(r),
                ]
            )
    return md(
        [
            "dataset",
            "labels",
            "model",
            "epochs",
            "n (seeds)",
            "test accuracy (best.pt)",
            "validation accuracy (chose it)",
            "CPU min / run",
            "commit",
        ],
        rows,
    )


@table("aae-labels")
def aae_labels_headline(results: Results) -> str:
    return aae_labels(results, ["aae_mnist-mini_100", "aae_fashion-mnist_1000"])


# -- the supervised AAE's style grid (bench_aae_style_grid.py) ------------------------------------------
STYLE_GRID_COLUMNS = [
    "supervised aae",
    "epochs",
    "z dim",
    "n (seeds)",
    "prior styles read as their column's digit",
    "test-image styles read as their column's digit",
    "CPU min / run",
    "commit",
]


@table("aae-style-grid")
def aae_style_grid(results: Results) -> str:
    rows = []
    for name, what in (("aae_style_grid_mnist-mini", "label-conditioned d_gauss (the default)"),):
        r = results(name)
        a = r["args"]
        rows.append(
            [
                what,
                a["epochs"],
                a["z_dim"],
                stat(r["results"]["test style"])["n"],
                pm(r["results"]["prior style"], 1, 100, "%", bold=True),
                pm(r["results"]["test style"], 1, 100, "%"),
                f"{stat(r['cpu_minutes'])['mean']:.1f}",
                commit(r),
            ]
        )
    return md(
        STYLE_GRID_COLUMNS,
        rows,
    )


# -- cnn-classifier --preset fast on Fashion-MNIST (bench_time_to_accuracy.py) --------------------------
@table("time-to-accuracy")
def time_to_accuracy(results: Results) -> str:
    r = results("time_to_accuracy_fashion-mnist")
    target = f"{100 * r['target']:.0f}%"
    reached = f"{pm(r['to_target'], 0)} ({r['reached']} runs)" if r.get("to_target") else f"never ({r['reached']})"
    return md(
        [
            "run",
            "n (seeds)",
            "test accuracy (best.pt)",
            f"training seconds to {target} (test curve)",
            "whole command, wall s",
            "machine",
            "commit",
        ],
        [
            [
                f"`cnn-classifier --preset {r['preset']}`, Fashion-MNIST",
                stat(r["test_accuracy"])["n"],
                pm(r["test_accuracy"], 2, 100, "%", bold=True),
                reached,
                pm(r["wall"], 0),
                machine(r),
                commit(r),
            ]
        ],
    )


# -- training speed against plain PyTorch (bench_speed.py) ----------------------------------------------
SPEED_ROWS = {
    "mlp-classifier": "mlp-classifier (seed 000), batch 100",
    "mlp-autoencoder": "mlp-autoencoder (seed 001), batch 100",
    "cnn-classifier": "cnn-classifier, batch 100",
    "dcgan28": "dcgan28 (seed 002), batch 64",
    "aae": "aae (seed 004), batch 100",
}


@table("speed")
def speed(results: Results) -> str:
    r = results("speed")
    rows = []
    for model, what in SPEED_ROWS.items():
        x = r["models"].get(model)
        if x is None:
            continue
        f = speed_figures(x)
        ms, ratio = f["ms_per_batch"], f["ratio"]
        target = (
            f"{x['target']}x ({'met' if ratio[0] >= x['target'] else 'not met'})" if x.get("target") else "none set"
        )
        fmt = x.get("precision", "?") + (" NHWC" if x.get("channels_last") else "")
        rows.append(
            [
                what,
                f"**{ratio[0]:.2f}x ± {ratio[1]:.2f}**",
                target,
                f"{ms['plain'][0]:.1f} / {ms['auto'][0]:.1f}",
                fmt,
                r["machine"]["threads"] if isinstance(r.get("machine"), dict) else "?",
                r["repeats"],
                commit(r),
            ]
        )
    return md(
        [
            "model (plain port of)",
            "disgen / plain",
            "target",
            "ms per batch, plain / disgen",
            "disgen's number format (auto)",
            "threads",
            "n (repeats)",
            "commit",
        ],
        rows,
    )


# -- matrix-product share of conv training steps (bench_flops.py) --------------------------------------
FLOPS_ROWS = {
    "cnn-classifier": "cnn-classifier",
    "dcgan28-seed": "dcgan28 seed preset (seed 002)",
    "dcgan28-default": "dcgan28 default preset of that commit (before `--g-depth 1`)",
    "dcgan64-default": "dcgan64 default preset",
}


@table("flops")
def flops(results: Results) -> str:
    r = reruns(results("flops"))[-1]  # the latest run
    peak = r["peak_gflop_per_s"]
    rows = []
    for model, what in FLOPS_ROWS.items():
        x = r["models"].get(model)
        if x is None:
            continue
        auto, fp32 = x["auto"], x["fp32"]
        picks = auto["precision"] + (", NHWC" if auto["channels_last"] else "")
        rows.append(
            [
                what,
                x["batch"],
                f"{x['gflop_per_step']:.1f}",
                f"{fp32['ms_per_step'][0]:.1f} ± {fp32['ms_per_step'][1]:.1f}",
                f"**{auto['ms_per_step'][0]:.1f} ± {auto['ms_per_step'][1]:.1f}**",
                picks,
                f"{100 * auto['fraction_of_peak']:.0f}% / {100 * fp32['fraction_of_peak']:.0f}%",
                r["repeats"],
                commit(r),
            ]
        )
    return md(
        [
            "model",
            "batch",
            "GFLOP per step",
            "fp32 ms/step",
            "`auto` ms/step",
            "`auto` picks",
            f"fraction of peak, auto / fp32 (peak: bf16 {peak['bf16']:.0f}, fp32 {peak['fp32']:.0f} GFLOP/s)",
            "n (repeats)",
            "commit",
        ],
        rows,
    )


# -- run-to-run spread of the seed 000 MLP's speed ratio (bench_speed.py --models mlp-classifier) -------
@table("speed-mlp-runs")
def speed_mlp_runs(results: Results) -> str:
    rows = []
    for i, r in enumerate(reruns(results("speed_mlp")), 1):
        f = speed_figures(r["models"]["mlp-classifier"])
        sps, ratio = f["samples_per_s"], f["ratio"]
        rows.append(
            [
                f"{i} ({r['date']})",
                r["load_average"],
                f"{sps['plain'][0]:,.0f}",
                f"{sps['auto'][0]:,.0f}",
                f"{ratio[0]:.2f}x ± {ratio[1]:.2f}",
                f"{f['ratio_median']:.2f}x",
                f"{f['ratio_fastest']:.2f}x",
                r["repeats"],
                commit(r),
            ]
        )
    return md(
        [
            "run (in the order run)",
            "load average",
            "plain samples/s",
            "disgen samples/s",
            "disgen / plain",
            "median",
            "fastest epochs",
            "n (repeats)",
            "commit",
        ],
        rows,
    )


# -- the layout change side by side (bench_speed.py at the commit before it and at it, alternating) ------
@table("speed-layout")
def speed_layout(results: Results) -> str:
    rows = []
    for i, r in enumerate(reruns(results("speed_layout")), 1):
        for model, x in r["models"].items():
            f = speed_figures(x)
            sps, ratio = f["samples_per_s"], f["ratio"]
            rows.append(
                [
                    f"{i}: {r['label']}",
                    model,
                    f"{sps['plain'][0]:,.0f}",
                    f"{sps['auto'][0]:,.0f} ± {sps['auto'][1]:,.0f}",
                    f"{ratio[0]:.2f}x ± {ratio[1]:.2f}",
                    r["repeats"],
                    commit(r),
                ]
            )
    return md(
        [
            "run (in the order run)",
            "model",
            "plain samples/s",
            "disgen samples/s",
            "disgen / plain",
            "n (repeats)",
            "commit",
        ],
        rows,
    )


# -- the supervised AAE's style grid with the paper's d_gauss (bench_aae_style_grid.py --no-label-conditioned)
@table("aae-style-grid-plain")
def aae_style_grid_plain(results: Results) -> str:
    r = results("aae_style_grid_mnist-mini_plain")
    a, x = r["args"], r["results"]
    share = lambda v: pm(v, 1, 100, "%") if isinstance(v, dict) else f"{100 * v:.1f}%"  # noqa: E731
    n = stat(x["prior style"])["n"] if isinstance(x["prior style"], dict) else 1
    cpu = stat(r["cpu_minutes"])["mean"] if isinstance(r["cpu_minutes"], dict) else r["cpu_minutes"]
    return md(
        STYLE_GRID_COLUMNS,
        [
            [
                "plain d_gauss (`--no-label-conditioned`: the paper's), last weights",
                a["epochs"],
                a["z_dim"],
                n,
                share(x["prior style"]),
                share(x["test style"]),
                f"{cpu:.1f}",
                commit(r),
            ]
        ],
    )


# -- resnet-transfer on the synthetic competition, and ResNet-34 step times (bench_transfer.py) ----------
@table("transfer")
def transfer(results: Results) -> str:
    """Two tables of one results file: the synthetic pipeline's set-ups, then the ResNet-34 steps."""
    r = results("transfer")
    setups = [
        [
            what,
            len(x["accuracy"]),
            pm(of(x["accuracy"]), 3),
            f"{min(x['accuracy']):.3f}",
            pm(of(x["log_loss"]), 3),
            f"{of(x['seconds'])['mean']:.0f}",
            commit(r),
        ]
        for what, x in r["pipeline"].items()
    ]
    steps = [[f"`{mode}`", len(s), pm(of(s), 2), commit(r)] for mode, s in r["resnet34_224_step_seconds"].items()]
    return (
        md(
            [
                "set-up (part 1)",
                "n (seeds)",
                "valid/ accuracy, last epoch",
                "min",
                "valid/ log loss, last epoch",
                "s / run",
                "commit",
            ],
            setups,
        )
        + "\n"
        + md(["`--train-backbone` (part 2)", "n (timed steps)", "s / step", "commit"], steps)
    )


# -- the faults the hardening tests tried (bench_reliability.py) ----------------------------------------
RELIABILITY_SECTIONS = {
    "crash": "Crash safety",
    "checksum": "Damaged checkpoints",
    "disk": "Full disk",
    "divergence": "Divergence",
    "loading": "Safe loading",
    "inputs": "Hostile inputs",
    "server": "Web server",
    "determinism": "Determinism",
}


@table("reliability")
def reliability(results: Results) -> str:
    r = results("reliability")
    faults = r["faults"]
    rows = sorted(faults.items(), key=lambda kv: (list(RELIABILITY_SECTIONS).index(kv[1]["section"]), kv[0]))
    body = md(
        ["Area", "Fault tried", "Times", "What happened (times)", "Test"],
        [
            [
                RELIABILITY_SECTIONS[f["section"]],
                fault.replace("|", "\\|"),
                f["tries"],
                "; ".join(f"{what} ({n})" for what, n in f["outcomes"].items()).replace("|", "\\|"),
                f"`{f['test']}`",
            ]
            for fault, f in rows
        ],
    )
    total = sum(f["tries"] for f in faults.values())
    return (
        body + f"\n{len(faults)} faults, {total} tries in all; counted by the tests at commit {commit(r)}, "
        f"{machine(r)}.\n"
    )


# -- a dataset larger than memory (bench_mapped.py) ---------------------------------------------------
@table("mapped")
def mapped(results: Results) -> str:
    r = results("mapped")
    paths = r["paths"]
    rows = []
    for mode, label in (
        ("no", "memory-mapped cache (`--data-on-device no`)"),
        ("yes", "in memory (`--data-on-device yes`)"),
    ):
        s = paths[mode]
        rows.append(
            [
                label,
                pm(s["images_per_s"], 0),
                pm(s["rss_anon_peak_mib"], 0),
                pm(s["rss_anon_train_peak_mib"], 0) if "rss_anon_train_peak_mib" in s else "not recorded",
                pm(s["rss_file_at_peak_mib"], 0),
                stat(s["images_per_s"])["n"],
            ]
        )
    ratio = paths["throughput_ratio"]
    rows.append(["memory-mapped / in memory, paired", pm(ratio, 3), "", "", "", ratio["n"]])
    o = r["options"]
    note = (
        f"\n{r['images']:,} images of {r['size']}x{r['size']}, one epoch of {r['model']} (width {o['width']}, "
        f"batch {o['batch_size']}) per run, the two paths alternating, each its own process; at {commit(r)} "
        f"on {machine(r)}, load average {r.get('load_average')} at the start.\n"
    )
    header = ["path", "training images/s", "RssAnon peak, whole run (MiB)", "RssAnon peak, training steps (MiB)"]
    return md(header + ["RssFile at the run's peak (MiB)", "n"], rows) + note


# -- the GPU benchmark (bench_gpu.py) -----------------------------------------------------------------
GPU_CONFIGS = {
    "fp32": "fp32 steps/s",
    "auto": "`--precision auto`",
    "auto+cl": "auto, `--channels-last on`",
    "auto+cl+compile": "auto, channels-last, `--compile`",
}


def gpu_cell(c: dict) -> str:
    if "steps_per_s" not in c:
        return ("skipped: " + c["skipped"] if "skipped" in c else "failed: " + c["error"]).replace("|", "\\|")
    ratio = c["ratio_to_fp32"]
    return pm(c["steps_per_s"], 1) + (f" ({stat(ratio)['mean']:.2f}x)" if ratio and c.get("precision") else "")


def gpu_notes(r: dict) -> str:
    tta, lines = r["time_to_accuracy"], []
    if "skipped" in tta:
        lines.append(f"Time to {100 * tta.get('target', 0.93):.0f}%: skipped ({tta['skipped']}).")
    else:
        to = tta["train_seconds_to_target"]
        lines.append(
            f"Time to {100 * tta['target']:.0f}% validation accuracy, `cnn-classifier` default preset on "
            f"{tta['dataset']}: "
            + (f"**{to:.1f} training s**" if to is not None else f"not reached in {tta['epochs']} epochs")
            + f"; test accuracy of best.pt {100 * tta['test_accuracy']:.2f}% (n = 1)."
        )
    for model, a in r["agreement"].items():
        if "skipped" in a:
            lines.append(f"Agreement, `{model}`: skipped ({a['skipped']}).")
            continue
        tol = f"{a['tolerance']:g}" + (" x fp32" if a["kind"] == "rel" else "")
        lines.append(
            f"Agreement, `{model}` ({a['epochs']} epochs, {a['dataset']}): test {a['metric']} fp32 {a['fp32']:.4f}, "
            f"auto ({a['auto_precision']}) {a['auto']:.4f}, tolerance {tol}: "
            + ("agree." if a["agree"] else "**disagree**.")
        )
    return "\n".join(f"- {line}" for line in lines) + "\n"


@table("gpu")
def gpu(results: Results) -> str:
    r = results("gpu")
    header = ["model (preset)", "batch", *GPU_CONFIGS.values(), "n (rounds x steps)", "GPU", "commit"]
    n = f"{r['settings']['repeats']} x {r['settings']['steps']}"
    if r["device"] != "cuda":
        body = md(header, [["no results yet: run `python benchmarks/bench_gpu.py` on a GPU"] + [""] * 8])
        return body + (
            f"\nNo GPU figures: `benchmarks/results/gpu.json` holds only a CPU run (`{r['command']}`, "
            f"{r['device_name']}, at {commit(r)}, {stat(r['wall_seconds'])['mean']:.0f} s in all), which checks "
            "the script; its figures are not GPU figures and are not shown.\n"
        )
    rows = []
    for case in r["models"].values():
        label = f"`{case['model']}` ({case['preset']})"
        if case.get("skipped"):
            rows.append([label, "", f"skipped: {case['skipped']}", "", "", "", "", r["device_name"], commit(r)])
            continue
        cells = [gpu_cell(case["configs"][k]) for k in GPU_CONFIGS]
        rows.append([label, case["batch"], *cells, n, r["device_name"], commit(r)])
    note = (
        "\nsteps/s: mean ± std over rounds, ratio to fp32 (paired per round) in brackets; the whole "
        f"script took {stat(r['wall_seconds'])['mean']:.0f} s.\n\n"
    )
    return md(header, rows) + note + gpu_notes(r)


# -- seed 000's MLP against Keras 3 (bench_speed.py --models mlp-classifier, keras installed) -------------
@table("speed-keras")
def speed_keras(results: Results) -> str:
    def seconds(v: list[float]) -> str:
        return f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"

    rows = []
    for i, r in enumerate(reruns(results("speed_keras")), 1):
        x = r["models"]["mlp-classifier"]
        s, k, f = x["seconds"], x["keras"], speed_figures(x)
        keras = [kt / a for kt, a in zip(s["keras"], s["auto"], strict=True)]  # per round, as the sides alternated
        rows.append(
            [
                f"{i} ({r['date']})",
                r["load_average"],
                seconds(s["auto"]),
                seconds(s["plain"]),
                seconds(s["keras"]),
                f"{f['ratio'][0]:.2f}x ± {f['ratio'][1]:.2f}",
                f"**{statistics.mean(keras):.2f}x ± {statistics.stdev(keras):.2f}**",
                f"{statistics.median(keras):.2f}x, {min(s['keras']) / min(s['auto']):.2f}x",
                f"{k['version']} ({k['backend']})",
                r["repeats"],
                machine(r),
                commit(r),
            ]
        )
    return md(
        [
            "run (in the order run)",
            "load average",
            "disgen s/epoch, median (range)",
            "plain PyTorch s/epoch",
            "Keras s/epoch (`fit`)",
            "disgen / plain",
            "disgen / Keras",
            "disgen / Keras: median, fastest epochs",
            "Keras (backend)",
            "n (repeats)",
            "machine",
            "commit",
        ],
        rows,
    )


# -- metrics against torch-fidelity, torchmetrics and prdc (bench_metrics.py) -------------------------
METRICS_SPEED_ROWS = {
    "frechet": "Fréchet distance",
    "kid10": "KID, 10 subsets of 1000",
    "kid100": "KID, 100 subsets of 1000",
    "pr": "precision and recall, k = 3",
}
METRICS_SPEED_LIBS = ("disgen", "torch-fidelity", "torchmetrics", "prdc")


@table("metrics-speed")
def metrics_speed(results: Results) -> str:
    r = results("metrics_speed")

    def seconds(s: dict | None) -> str:
        s = stat(s)
        return "—" if s is None else f"{s['median']:.3f} ({s['mean']:.3f} ± {s['std']:.3f})"

    rows = []
    for key, what in METRICS_SPEED_ROWS.items():
        x = r["metrics"].get(key)
        if x is None:
            continue
        ratio = x["ratio_to_fastest_peer"]
        rows.append(
            [
                what,
                *(seconds(x["seconds"].get(lib)) for lib in METRICS_SPEED_LIBS),
                "—" if ratio is None else f"**{ratio:.2f}** ({x['fastest_peer']})",
                ", ".join(f"{p} {d:.1e}" for p, d in x["rel_diff"].items()),
                r["repeats"],
                commit(r),
            ]
        )
    peers = ", ".join(f"{p} {v}" for p, v in r["peers"].items())
    note = (
        f"\nSeconds: median (mean ± std) of {r['repeats']} calls on {r['n']:,} x {r['dim']} float32 features "
        f"per set, the libraries taking turns in one process; {machine(r)}; load average "
        f"{r.get('load_average_start')} at the start, {r.get('load_average')} at the end (2 cores, shared). "
        "Relative difference: |disgen - peer| / |peer| (KID: on the same subsets; precision and recall: the "
        f"larger of the two). Peers: {peers}.\n"
    )
    header = [f"{lib} s" for lib in METRICS_SPEED_LIBS]
    return md(["metric", *header, "disgen / fastest peer", "relative difference", "n (repeats)", "commit"], rows) + note


# -- the best classifier in the time you have (bench_budget.py) --------------------------------------
def budget_cell(s: dict, bold: bool = False) -> str:
    return pm(s, 2, 100, "%", bold)


@table("budget")
def budget(results: Results) -> str:
    r = results("budget")
    rows = []
    for cell in r["cells"].values():
        d, e = cell["disgen"], cell["example"]
        lead = [(a - b) * 100 for a, b in zip(d["test_accuracy"]["values"], e["test_accuracy"]["values"])]
        spent = [x["train_seconds"] for x in d["runs"]]
        ms = [1000 * x["train_seconds"] / x["steps"] for x in d["runs"]]
        rows.append(
            [
                cell["dataset"],
                f"{cell['budget']:g}",
                budget_cell(
                    d["test_accuracy"], bold=stat(d["test_accuracy"])["mean"] > stat(e["test_accuracy"])["mean"]
                ),
                budget_cell(e["test_accuracy"]),
                f"{sum(lead) / len(lead):+.2f} (min {min(lead):+.2f})",
                f"{min(spent):.0f}-{max(spent):.0f}",
                f"{min(ms):.0f}-{max(ms):.0f}",
                ", ".join(  # budget-short's network is the one that sets widths
                    sorted(
                        {
                            x["preset"] + " (budget-short network)" * ("widths" in (x.get("model_args") or {}))
                            for x in d["runs"]
                        }
                    )
                ),
                stat(d["test_accuracy"])["n"],
                commit(cell if "commit" in cell else r),
            ]
        )
    note = (
        f"\n{machine(r)}; load average {r.get('load_average')} at the end. Test accuracy of the model each "
        "side chose on the validation split (disgen's best.pt; the example's best epoch), mean ± std over "
        "seeds; points: disgen less the example, seed by seed (mean, and the smallest). disgen train s: "
        "the training seconds its runs took for the budget (steps fixed from the timed first steps); ms a "
        "step: those seconds over the steps, which show how fast the machine ran for that row. Each "
        "row's commit is the one that measured it (bench_budget.py --update reruns some cells).\n"
    )
    header = [
        "dataset",
        "budget s",
        "disgen test",
        "pytorch/examples test",
        "points ahead",
        "disgen train s",
        "ms a step",
    ]
    return md([*header, "disgen preset", "n (seeds)", "commit"], rows) + note


@table("budget-select")
def budget_select(results: Results) -> str:
    r = results("budget_select")
    rows = [
        [
            key.split("/")[0],
            key.split("/")[1],
            f"`{key.split('/')[2]}`",
            budget_cell(cell["val_accuracy"]),
            stat(cell["val_accuracy"])["n"],
            commit(r),
        ]
        for key, cell in r["cells"].items()
    ]
    return md(["dataset", "budget s", "preset", "validation accuracy (best epoch)", "n (seeds)", "commit"], rows)


@table("budget-explore")
def budget_explore(results: Results) -> str:
    """Settings tried against the ``budget`` preset on Fashion-MNIST, validation only (several
    bench_budget.py --candidates runs, one part each)."""
    r = results("budget_explore")
    rows = []
    for part in r["parts"]:
        for key, cell in part["cells"].items():
            dataset, budget, name = key.split("/")
            settings = {k: v for k, v in cell["settings"].items() if k != "preset"}
            net = settings.pop("model_args", None)
            what = ", ".join(f"{k} {v}" for k, v in settings.items())
            if net:
                shape = ", ".join(f"{k} {tuple(v) if isinstance(v, list) else v}" for k, v in net.items())
                what += (", " if what else "") + shape
            rows.append(
                [
                    dataset,
                    budget,
                    f"`{name}`",
                    what or "the `budget` preset as it is",
                    budget_cell(cell["val_accuracy"]),
                    stat(cell["val_accuracy"])["n"],
                    commit(part),
                ]
            )
    header = [
        "dataset",
        "budget s",
        "candidate",
        "changed from `budget` at that commit",
        "validation accuracy",
        "n (seeds)",
        "commit",
    ]
    return md(header, rows)


# -- --time-budget under a competing load (bench_budget_load.py) ------------------------------------
@table("budget-load")
def budget_load(results: Results) -> str:
    r = results("budget_load")
    rows = []
    for cell in r["cells"].values():
        share = cell["of_budget"]["values"]
        rows.append(
            [
                f"{cell['budget']:g}",
                cell["mode"],
                pm(cell["train_seconds"], 1),
                f"**{min(share):.2f}-{max(share):.2f}**"
                if cell["mode"] != "quiet"
                else f"{min(share):.2f}-{max(share):.2f}",
                f"{stat(cell['steps'])['mean']:.0f}",
                pm(cell["test_accuracy"], 2, 100, "%"),
                stat(cell["train_seconds"])["n"],
                commit(r),
            ]
        )
    note = (
        f"\n{machine(r)}; the competing load: {r['load']} busy processes from {r['load_after']:.0%} of the budget "
        f"into training to its end; load average {r.get('load_average_end')} at the end (other jobs shared the "
        "cores too). Training seconds: a budget run's own count (its steps, and the timing that chose its "
        "network), the fixed-steps run's epochs; evaluation excluded. Share: those seconds over the budget, "
        "smallest and largest run. Fixed steps: the quiet run's config.json rerun under the load, as a budget "
        "whose steps were fixed at its start would run.\n"
    )
    header = [
        "budget s",
        "run",
        "training s",
        "share of the budget",
        "steps",
        "test accuracy",
        "n (seeds)",
        "commit",
    ]
    return md(header, rows) + note


# -- the vae beside the unsupervised aae, and dcgan28's GAN losses, at equal time (issue 30) -----------
def seeds_pm(s: dict, digits: int) -> str:
    """``mean ± std`` computed from a stats dict's per-seed values."""
    return pm(of(s["values"]), digits)


@table("vae-aae")
def vae_aae(results: Results) -> str:
    r = results("vae_aae_mnist-mini")
    cols = [("mse", 4), ("frechet_distance", 2), ("kid", 3), ("classes_covered", 1), ("class_kl", 3), ("prior_w2", 2)]
    rows = [
        [name, f"{r['budget_s']:g}", seeds_pm(x["epochs"], 1), len(x["mse"]["values"])]
        + [seeds_pm(x[c], d) for c, d in cols]
        + [commit(r)]
        for name, x in r["results"].items()
    ]
    header = ["model", "budget s", "epochs", "n (seeds)", "test mse", "samples' Fréchet distance", "KID"]
    return md(header + ["classes covered", "class KL", "W2² of codes to prior", "commit"], rows)


@table("gan-losses")
def gan_losses(results: Results) -> str:
    r = results("gan_losses_mnist-mini")
    cols = [("frechet_distance", 2), ("kid", 3), ("precision", 3), ("recall", 3), ("min_class_share", 3)]
    cols.append(("classes_covered", 1))
    rows = [
        [f"`{loss}`", f"{r['budget_s']:g}", seeds_pm(x["train_seconds"], 0)]
        + [pm(of([run["epochs"] for run in x["runs"]]), 1), len(x["frechet_distance"]["values"])]
        + [seeds_pm(x[c], d) for c, d in cols]
        + [commit(r)]
        for loss, x in r["results"].items()
    ]
    header = ["--gan-loss", "budget s", "train s", "epochs", "n (seeds)", "test Fréchet distance", "KID", "precision"]
    return md(header + ["recall", "min_class_share", "classes covered", "commit"], rows)
