"""The presets' tables: their headline figures (bench_presets.py) and the choices made on validation
(bench_preset_check.py)."""

from __future__ import annotations

from table_defs import (
    Results,
    commit,
    md,
    pm,
    stat,
    table,
)

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
