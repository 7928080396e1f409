"""The adversarial autoencoder's tables: the semi-supervised AAE against its baseline
(bench_aae_labels.py), the supervised AAE's style grids (bench_aae_style_grid.py) and the vae beside
the unsupervised aae (bench_vae_aae.py)."""

from __future__ import annotations

from mnist_tables import group_runs, label_sample_cells, minutes, stamp
from table_defs import (
    Results,
    commit,
    md,
    pm,
    seeds_pm,
    stat,
    table,
)

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


# -- the semi-supervised AAE's `sample --label K` (bench_aae_style_grid.py --mode semi-supervised) ------
# The default preset's, the preset's before its warm-up of y (--classifier-warmup 0), then the
# trials of docs/aae.md on that earlier preset and (the last) on the preset itself: results file
# suffix -> the preset column.
TRIAL = "trial: `--no-z-adversary-body`"
VARIANTS = {
    "default": "default",
    "warmup-0": "before the warm-up (`--classifier-warmup 0`)",
    "z-head": TRIAL,
    "warmup-540": "trial: `--classifier-warmup 540`",
    "warmup-200": "trial: `--classifier-warmup 200`",
    "ema-0.999": "trial on the preset: `--ema 0.999`",
}
LABEL_SAMPLES = [
    (f"aae_label_samples_mnist-mini_{labels}" + ("" if suffix == "default" else f"_{suffix}"), variant)
    for suffix, variant in VARIANTS.items()
    for labels in (0, 100)
]


@table("aae-label-samples")
def aae_label_samples(results: Results) -> str:
    rows = []
    for name, variant in LABEL_SAMPLES:
        r = results(name)
        a, x = r["args"], r["results"]
        rows.append(
            [
                a["dataset"],
                a["labels"] or "all",
                variant,
                a["epochs"],
                stat(x["sample mean"])["n"],
                pm(x["sample mean"], 1, 100, "%", bold=True),
                pm(x["sample min class"], 1, 100, "%"),
                pm(x["prior style"], 1, 100, "%"),
                pm(x["test accuracy"], 2, 100, "%"),
                f"{stat(r['cpu_minutes'])['mean']:.1f}",
                commit(r),
            ]
        )
    # Full MNIST: the headline (and trial) runs of bench_mnist.py, which read their samples the same way.
    headline, ablation = group_runs(results, "mnist", "headline"), group_runs(results, "mnist", "ablation")
    for labels, variant, runs in [
        *((n, "default", headline.get(f"aae/default-{n}", [])) for n in (100, 1000)),
        *(
            (n, variant, ablation.get(f"aae/{n}-{suffix}", []))
            for suffix, variant in VARIANTS.items()
            if suffix != "default"
            for n in (100, 1000)
        ),
    ]:
        if not runs or not all("label_samples" in r for r in runs):
            continue
        mean, worst = label_sample_cells(runs)
        test = {"values": [r["final"]["test_accuracy"] for r in runs]}
        rows.append(
            ["mnist", labels, variant, len(runs[0]["epochs"]), len(runs), f"**{mean}**", worst, "—"]
            + [pm(test, 2, 100, "%"), f"{minutes(runs)} (wall)", stamp(runs)[0]]
        )
    return md(
        [
            "dataset",
            "labels",
            "preset",
            "epochs",
            "n (seeds)",
            "`sample --label K` read as K (mean over K)",
            "worst K",
            "prior style grid, cells read as their column",
            "test accuracy",
            "CPU min / run",
            "commit",
        ],
        rows,
    )


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


# -- the vae beside the unsupervised aae at equal time (bench_vae_aae.py) ----------------------------
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
