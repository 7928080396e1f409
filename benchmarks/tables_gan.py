"""The GAN tables: gan2d over seeds (bench_gan2d.py), dcgan28's presets at equal time
(bench_gan_equal_time.py) and its losses at equal time (bench_gan_losses.py)."""

from __future__ import annotations

import math
import statistics

from table_defs import Results, commit, machine, md, of, pm, seeds_pm, stat, table


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


# -- dcgan28's GAN losses at equal time (bench_gan_losses.py) ----------------------------------------
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
