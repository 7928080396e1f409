"""The speed tables: disgen's loop against plain PyTorch ports and Keras 3 (bench_speed.py, every
rerun), the matrix-product share of conv steps (bench_flops.py) and the metrics against their peers
(bench_metrics.py)."""

from __future__ import annotations

import statistics

from table_defs import (
    Results,
    commit,
    machine,
    md,
    reruns,
    speed_figures,
    stat,
    table,
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
    return speed_table(results("speed"))


@table("speed-dcgan28")
def speed_dcgan28(results: Results) -> str:
    """Seed 002's generator with the phase-kernel upsampling, timed at its commit (docs/speed.md)."""
    return speed_table(results("speed_dcgan28"))


@table("speed-aae")
def speed_aae(results: Results) -> str:
    """Seed 004's AAE against its plain port on a CPU with bfloat16 (docs/speed.md)."""
    return speed_table(results("speed_aae"))


def speed_table(r: dict) -> str:
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


# -- the default test suite's time (bench_test_suite.py) ------------------------------------------------
@table("test-suite")
def test_suite(results: Results) -> str:
    rows = [
        [
            "`python -m pytest -q` (what `make test` runs after `make lint`)",
            run.get("passed", 0),
            run.get("skipped", 0),
            run.get("failed", 0),
            f"{run['seconds'] / 60:.1f}",
            f"{r['machine']['cpu']}, {r['cpus']} cores",
            "—" if run["load_average_before"] is None else f"{run['load_average_before']:.1f}",
            commit(r),
        ]
        for r in reruns(results("test_suite"))
        for run in r["runs"]
    ]
    return md(["suite", "passed", "skipped", "failed", "minutes", "machine", "load average before", "commit"], rows)


# -- start-up time of the commands that need no tensors (bench_startup.py) -------------------------------
@table("startup")
def startup(results: Results) -> str:
    r = results("startup")
    rows = []
    for command, s in r["seconds"].items():
        v = sorted(stat(s)["values"])
        target = "" if command in ("python (empty)", "import torch") else (
            "met" if stat(s)["median"] <= r["target_seconds"] else "not met"
        )  # fmt: skip
        rows.append([f"`{command}`", f"{stat(s)['median']:.2f} ({v[0]:.2f}-{v[-1]:.2f})", target, len(v)])
    note = f"\nTarget {r['target_seconds']} s; {machine(r)}, load average {r['load_average']}, at {commit(r)}.\n"
    return md(["command (a fresh process)", "seconds, median (range)", "target", "n"], rows) + note
