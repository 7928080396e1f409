"""The full-MNIST tables (bench_mnist.py, bench_mnist_peers.py): the seed presets beside their
documents, every model's headline, and the peers side by side. Every mean, spread and interval is
computed here from the per-seed values in the results files; nothing precomputed is trusted."""

from __future__ import annotations

import math
import statistics

from table_defs import Results, commit, md, table

# Student's t, two-sided 95%, by degrees of freedom: the interval of a mean over n seeds is
# mean ± t(n-1) * std / sqrt(n).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def summary(values: list[float]) -> dict:
    n = len(values)
    mean = statistics.mean(values)
    std = statistics.stdev(values) if n > 1 else 0.0
    half = T95.get(n - 1, 1.96) * std / math.sqrt(n) if n > 1 else math.nan
    lo, hi = mean - half, mean + half
    return {"n": n, "mean": mean, "std": std, "lo": lo, "hi": hi, "min": min(values), "max": max(values)}


def fmt(s: dict, digits: int, scale: float = 1.0, unit: str = "") -> str:
    return f"{s['mean'] * scale:.{digits}f}{unit} ± {s['std'] * scale:.{digits}f}"


def interval(s: dict, digits: int, scale: float = 1.0) -> str:
    if math.isnan(s["lo"]):
        return "—"
    lo, hi = s["lo"], s["hi"]
    if scale == 100:  # a share (accuracy, error): Student's t knows no bounds, a share stays in 0-100%
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return f"{lo * scale:.{digits}f} to {hi * scale:.{digits}f}"


def cpu(r: dict) -> str:
    m = r["machine"]
    return f"{m['cpu']}, {m['threads']} thread{'s' * (m['threads'] != 1)}"


def group_runs(results: Results, name: str, prefix: str) -> dict[str, list[dict]]:
    """label -> its runs (one a seed), for the keys ``prefix/label/seed`` of results file ``name``."""
    out: dict[str, list[dict]] = {}
    for key, r in sorted(results(name)["runs"].items()):
        if key.startswith(prefix + "/"):
            out.setdefault(key[len(prefix) + 1 :].rsplit("/", 1)[0], []).append(r)
    return out


def number_format(r: dict) -> str | None:
    """A run's number format: ``number_format``, or ``precision`` where that is not a GAN's metric
    (the GAN runs at 43c9458 stored the format under ``precision``, over the metric)."""
    if "number_format" in r:
        return r["number_format"]
    return r.get("precision") if isinstance(r.get("precision"), str) or r.get("precision") is None else None


def stamp(runs: list[dict]) -> tuple[str, str, str]:
    """The commit, CPU and number format a row's runs share (each listed where they differ)."""
    commits = sorted({commit(r) for r in runs})
    cpus = sorted({cpu(r) for r in runs})
    formats = sorted({str(number_format(r)) for r in runs})
    return ", ".join(commits), "; ".join(cpus), ", ".join(formats)


def minutes(runs: list[dict]) -> str:
    s = summary([r["train_seconds"] / 60 for r in runs])
    return f"{s['mean']:.1f}"


# -- the seed presets against their documents -----------------------------------------------------
SEED_METRICS = {
    "seed-000": ("train_accuracy", "train accuracy after epoch {}", 3, 100, "%"),
    "seed-001": ("train_mse", "train MSE after epoch {}", 4, 1, ""),
}


@table("mnist-seeds")
def mnist_seeds(results: Results) -> str:
    """000 and 001 epoch by epoch beside their documents; 002's digit shares and 004's accuracy."""
    r = results("mnist")
    groups, docs, rows = group_runs(results, "mnist", "seeds"), r["documents"], []
    for label, (key, what, digits, scale, unit) in SEED_METRICS.items():
        runs = groups.get(label, [])
        for e, doc in enumerate(docs[label][key]):
            s = summary([run["epochs"][e][key] for run in runs])
            places = digits - 2 if unit else digits
            inside = s["min"] <= doc <= s["max"]
            verdict = "within the seeds' range" if inside else f"outside ({(doc - s['mean']) * scale:+.{digits - 2}f})"
            rows.append(
                [
                    label.replace("-", " "),
                    what.format(e + 1),
                    f"{doc * scale:.{digits - (unit == '%') * 2}f}{unit}",
                    fmt(s, places, scale, unit),
                    f"{s['min'] * scale:.{places}f} to {s['max'] * scale:.{places}f}",
                    verdict,
                    s["n"],
                    *stamp(runs),
                ]
            )
    rows += seed_002_rows(groups.get("seed-002", [])) + seed_004_rows(groups.get("seed-004", []))
    header = ["seed", "figure", "document", "disgen (mean ± std)", "seeds' range", "document vs disgen", "n (seeds)"]
    return md(header + ["commit", "CPU", "number format"], rows)


def seed_002_rows(runs: list[dict]) -> list[list]:
    if not runs:
        return []
    epochs = runs[0]["options"]["epochs"]
    zero_one = summary([run["class_shares"][0] + run["class_shares"][1] for run in runs])
    rarest = summary([min(run["class_shares"]) for run in runs])
    fid = summary([run["final"]["test_frechet_distance"] for run in runs])
    covered = summary([run["final"]["test_classes_covered"] for run in runs])
    where = f"after {epochs} of the document's 100 epochs ({minutes(runs)} CPU min a run)"
    return [
        ["seed 002", f"share of 0s and 1s among 10,000 samples, {where}", "about 75%", fmt(zero_one, 1, 100, "%"),
         f"{zero_one['min']:.1%} to {zero_one['max']:.1%}", "—", zero_one["n"], *stamp(runs)],
        ["seed 002", "share of the rarest digit", "—", fmt(rarest, 1, 100, "%"), "", "—", rarest["n"], *stamp(runs)],
        ["seed 002", "Fréchet distance to the test digits (reference features)", "—", fmt(fid, 2), "", "—",
         fid["n"], *stamp(runs)],
        ["seed 002", "digits covered (of 10)", "—", fmt(covered, 1), "", "—", covered["n"], *stamp(runs)],
    ]  # fmt: skip


def seed_004_rows(runs: list[dict]) -> list[list]:
    if not runs:
        return []
    epochs = runs[0]["options"]["epochs"]
    s = summary([run["final"]["test_accuracy"] for run in runs])
    what = f"test accuracy, 1000 labels, after {epochs} of the document's 1000 epochs ({minutes(runs)} CPU min a run)"
    spread = f"{s['min']:.2%} to {s['max']:.2%}"
    return [["seed 004", what, "over 95%", fmt(s, 2, 100, "%"), spread, "—", s["n"], *stamp(runs)]]


# -- every model's headline on full MNIST ---------------------------------------------------------------
HEADLINE = {  # label -> (what, metric, digits, scale, unit)
    "mlp-classifier/default": ("`mlp-classifier` default", "test_accuracy", 2, 100, "%"),
    "cnn-classifier/fast": ("`cnn-classifier --preset fast`", "test_accuracy", 2, 100, "%"),
    "cnn-classifier/default": ("`cnn-classifier` default", "test_accuracy", 2, 100, "%"),
    "mlp-autoencoder/default": ("`mlp-autoencoder` default", "test_mse", 4, 1, ""),
    "dcgan28/default": ("`dcgan28` default", "test_frechet_distance", 2, 1, ""),
    "aae/default-100": ("`aae` default, 100 labels", "test_accuracy", 2, 100, "%"),
    "aae/default-1000": ("`aae` default, 1000 labels", "test_accuracy", 2, 100, "%"),
}


def headline_row(what: str, metric: str, values: list[float], fmt_args: tuple, epochs, runs: list[dict]) -> list:
    """One row of the headline table: the mean ± std of ``values`` (one a seed), its interval, and
    the runs' epochs, minutes, commit, CPU and number format."""
    s = summary(values)
    digits, scale, unit = fmt_args
    return [
        what,
        f"`{metric}`",
        f"**{fmt(s, digits, scale, unit)}**",
        interval(s, digits, scale),
        s["n"],
        epochs,
        minutes(runs),
        *stamp(runs),
    ]


@table("mnist-headline")
def mnist_headline(results: Results) -> str:
    groups, rows = group_runs(results, "mnist", "headline"), []
    for label, (what, metric, digits, scale, unit) in HEADLINE.items():
        runs = groups.get(label)
        if runs:
            values = [run["final"][metric] for run in runs]
            rows.append(headline_row(what, metric, values, (digits, scale, unit), len(runs[0]["epochs"]), runs))
    # The budget preset: cnn-classifier given a --time-budget (its `budget` preset), from the peer
    # comparison's disgen side: the same full-MNIST split, chosen on validation, tested once.
    peers = group_runs(results, "mnist_peers", "classifiers")
    for label, runs in sorted(peers.items(), key=lambda kv: float(kv[0].split("/")[1])):
        side, seconds = label.split("/")
        if side != "disgen" or len(runs) < 3:
            continue
        epochs = sorted({r["epochs"] for r in runs})
        rows.append(
            headline_row(
                f"`cnn-classifier --time-budget {seconds}` (`budget` preset)",
                "test_accuracy",
                [r["test_accuracy"] for r in runs],
                (2, 100, "%"),
                f"{epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else epochs[0],
                runs,
            )
        )
    header = ["model", "metric", "test (mean ± std)", "95% interval of the mean", "n (seeds)", "epochs"]
    return md(header + ["train min / run", "commit", "CPU", "number format"], rows)


# -- the peers, at equal time and to an accuracy ---------------------------------------------------------
SIDES = {"disgen": "disgen `--time-budget`", "examples": "pytorch/examples", "fast": "train_mnist_fast"}


@table("mnist-peers")
def mnist_peers(results: Results) -> str:
    groups = group_runs(results, "mnist_peers", "classifiers")
    # the budgets both sides ran (single disgen runs at other budgets, from a first pass, stay in the file)
    budgets = sorted({float(k.split("/")[1]) for k in groups if k.startswith("examples/")})
    rows = []
    for b in budgets:
        cells, means = [], {}
        for side in ("disgen", "examples"):
            runs = groups.get(f"{side}/{b:g}", [])
            s = summary([r["test_accuracy"] for r in runs]) if runs else None
            means[side] = s["mean"] if s else None
            cells.append(f"{fmt(s, 2, 100, '%')} (n={s['n']})" if s else "—")
        fits = [k for k in groups if k.startswith("fast/") and fast_fits(groups[k], b)]
        if fits:
            epochs = max(int(k.split("/")[1]) for k in fits)
            s = summary([r["test_accuracy"] for r in groups[f"fast/{epochs}"]])
            means["fast"] = s["mean"]
            cells.append(f"{fmt(s, 2, 100, '%')} ({epochs} epoch{'s' * (epochs > 1)})")
        else:
            cells.append("no recipe fits")
        best = max((v, k) for k, v in means.items() if v is not None)[1]
        runs = groups.get(f"disgen/{b:g}", [])
        rows.append([f"{b:g}", *cells, SIDES[best], *stamp(runs)])
    header = ["seconds of training", SIDES["disgen"], SIDES["examples"], SIDES["fast"], "best"]
    return md(header + ["commit", "CPU", "disgen's number format (the peers: fp32)"], rows)


def fast_fits(runs: list[dict], budget: float) -> bool:
    return statistics.mean(r["train_seconds"] for r in runs) <= budget


@table("mnist-time-to-accuracy")
def mnist_time_to_accuracy(results: Results) -> str:
    """Per side, the training seconds until a model first scores the target on the test split, from
    every run's per-epoch curve (the earliest over a seed's runs), averaged over seeds."""
    groups = group_runs(results, "mnist_peers", "classifiers")
    rows = []
    for side, name in SIDES.items():
        per_seed: dict[int, list[dict]] = {}
        for key, runs in groups.items():
            if key.startswith(side + "/"):
                for r in runs:
                    per_seed.setdefault(r["seed"], []).append(r)
        if not per_seed:
            continue
        cells = []
        for target in (0.99, 0.995):
            times = [first_time(runs, target) for runs in per_seed.values()]
            reached = [t for t in times if t is not None]
            if len(reached) < len(times):
                cells.append(f"not reached by {len(times) - len(reached)} of {len(times)} seeds")
            else:
                s = summary(reached)
                cells.append(f"{s['mean']:.1f} s ± {s['std']:.1f}")
        all_runs = [r for runs in per_seed.values() for r in runs]
        rows.append([name, *cells, len(per_seed), *stamp(all_runs)[:2]])
    return md(["side", "seconds to 99.0% test", "seconds to 99.5% test", "n (seeds)", "commit", "CPU"], rows)


def first_time(runs: list[dict], target: float) -> float | None:
    times = [p["seconds"] for r in runs for p in r["curve"] if (p.get("test_accuracy") or 0) >= target]
    return min(times) if times else None


# -- what --precision auto costs (bench_precision.py) ----------------------------------------------------
PRECISION_CASES = {
    "cnn": "`cnn-classifier` default, mnist-mini, 30 epochs",
    "aae": "`aae` default, mnist-mini, `--labels 100`, 30 epochs",
    "dcgan28": "`dcgan28` default, mnist-mini, 10 epochs",
}


def best_of(run: dict, metric: str, better: str) -> float:
    values = [e[metric] for e in run["epochs"] if metric in e]
    return max(values) if better == "max" else min(values)


def welch(a: dict, b: dict) -> tuple[float, float]:
    """The 95% interval of mean(b) - mean(a) (Welch's t, degrees of freedom rounded down)."""
    va, vb = a["std"] ** 2 / a["n"], b["std"] ** 2 / b["n"]
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / ((va**2 / (a["n"] - 1)) + (vb**2 / (b["n"] - 1))) if se else 1
    half = T95.get(max(1, int(df)), 1.96) * se
    d = b["mean"] - a["mean"]
    return d - half, d + half


@table("precision-auto")
def precision_auto(results: Results) -> str:
    r = results("precision_auto")
    rows = []
    for case, what in PRECISION_CASES.items():
        runs = {p: [v for k, v in sorted(r["runs"].items()) if k.startswith(f"{case}/{p}/")] for p in ("fp32", "auto")}
        if not runs["fp32"] or not runs["auto"]:
            continue
        metric, better = r["cases"][case]["metric"], r["cases"][case]["better"]
        scale, digits, unit = (100, 2, "%") if metric.endswith("accuracy") else (1, 2, "")
        s = {p: summary([best_of(run, metric, better) for run in runs[p]]) for p in runs}
        lo, hi = welch(s["fp32"], s["auto"]) if min(s["fp32"]["n"], s["auto"]["n"]) > 1 else (math.nan, math.nan)
        if math.isnan(lo):
            verdict = "too few seeds yet"
        elif lo <= 0 <= hi:
            verdict = "no difference the seeds can show"
        else:
            worse = (hi < 0) if better == "max" else (lo > 0)
            verdict = f"auto {'worse' if worse else 'better'}"
        picked = ", ".join(sorted({run["precision"] for run in runs["auto"]}))
        speed = statistics.mean(x["train_seconds"] for x in runs["fp32"]) / statistics.mean(
            x["train_seconds"] for x in runs["auto"]
        )
        rows.append(
            [
                what,
                f"best `{metric}`",
                f"{s['fp32']['n']} + {s['auto']['n']}",
                fmt(s["fp32"], digits, scale, unit),
                f"{fmt(s['auto'], digits, scale, unit)} ({picked})",
                "—" if math.isnan(lo) else f"{lo * scale:+.{digits}f} to {hi * scale:+.{digits}f}",
                verdict,
                f"{speed:.2f}x",
                *stamp(runs["auto"])[:2],
            ]
        )
    header = ["run", "validation figure", "n (seeds)", "fp32", "`--precision auto`", "auto - fp32, 95% interval"]
    return md(header + ["verdict", "training speed, auto / fp32", "commit", "CPU"], rows)


# -- GANs beside a peer (bench_mnist_peers.py gans) ---------------------------------------------------------
GAN_SIDES = {"disgen": "disgen `dcgan28 --time-budget`", "pytorch-gan": "PyTorch-GAN `dcgan.py`"}
GAN_METRICS = [
    ("frechet_distance", "Fréchet distance", 2),
    ("kid", "KID", 3),
    ("precision", "precision", 3),
    ("recall", "recall", 3),
    ("min_class_share", "rarest digit's share", 3),
    ("classes_covered", "digits covered", 1),
]


@table("mnist-gan-peers")
def mnist_gan_peers(results: Results) -> str:
    r = results("mnist_peers")
    groups, rows = group_runs(results, "mnist_peers", "gans"), []
    for key in sorted((k for k in groups if "/" in k), key=lambda k: (float(k.split("/")[1]), k)):  # not the floor
        side, budget = key.split("/")
        runs = groups[key]
        cells = [
            fmt(summary(values), d) if len(values) == len(runs) else "not recorded"
            for m, _, d in GAN_METRICS
            for values in [[run[m] for run in runs if isinstance(run.get(m), float)]]
        ]  # disgen's k-NN precision at 43c9458 was overwritten by its number format: not recorded
        steps = summary([run["steps"] for run in runs])
        number_format = stamp(runs)[2] if side == "disgen" else "fp32"  # the peer's file sets none
        rows.append(
            [GAN_SIDES[side], budget, *cells, f"{steps['mean']:.0f}", len(runs), *stamp(runs)[:2], number_format]
        )
    floor = r["runs"].get("gans/floor")
    if floor:
        cells = [f"{floor[m]:.{d}f}" if m in floor else "—" for m, _, d in GAN_METRICS]
        rows.append(["real test digits, resized 28 -> 32 -> 28 (the peer's round trip)", "—", *cells, "—", 1,
                     commit(floor), cpu(floor), "—"])  # fmt: skip
    header = ["side", "seconds of training", *[name for _, name, _ in GAN_METRICS], "steps", "n (seeds)"]
    return md(header + ["commit", "CPU", "number format"], rows)


# -- the semi-supervised AAE beside fducau/AAE_pytorch ---------------------------------------------------
AAE_SIDES = {"disgen": "disgen `aae --time-budget`", "aae-pytorch": "fducau/AAE_pytorch"}


@table("mnist-aae-peers")
def mnist_aae_peers(results: Results) -> str:
    groups = group_runs(results, "mnist_peers", "aaes")  # side/labels/budget -> runs
    cells = sorted({tuple(k.split("/")[1:]) for k in groups}, key=lambda c: (int(c[0]), float(c[1])))
    rows = []
    for labels, budget in cells:
        row, means = [labels, budget], {}
        for side in AAE_SIDES:
            runs = groups.get(f"{side}/{labels}/{budget}", [])
            s = summary([r["test_accuracy"] for r in runs]) if runs else None
            means[side] = s["mean"] if s else None
            row.append(f"{fmt(s, 2, 100, '%')} (n={s['n']})" if s else "—")
        known = [(v, k) for k, v in means.items() if v is not None]
        runs = [r for side in AAE_SIDES for r in groups.get(f"{side}/{labels}/{budget}", [])]
        disgen_runs = groups.get(f"disgen/{labels}/{budget}", [])
        number_format = stamp(disgen_runs)[2] if disgen_runs else "—"
        rows.append([*row, AAE_SIDES[max(known)[1]] if len(known) > 1 else "—", *stamp(runs)[:2], number_format])
    header = ["labels", "seconds of training", *AAE_SIDES.values(), "best", "commit", "CPU"]
    header.append("disgen's number format (the peer: fp32)")
    return md(header, rows)


# -- the semi-supervised AAE against its paper, on full MNIST ------------------------------------------
# Makhzani et al. 2015 (arXiv:1511.05644), Table 2: MNIST test error of the semi-supervised AAE, in
# percent; the AAE issue's aims for this machine (two hours of training a run at most).
AAE_PAPER = {100: (1.90, 0.10), 1000: (1.60, 0.08)}
AAE_AIM = {100: 3.0, 1000: 2.0}


@table("mnist-aae-paper")
def mnist_aae_paper(results: Results) -> str:
    """Test error of the default semi-supervised AAE on full MNIST (bench_mnist.py's headline
    runs) and of the same network trained on the labels alone (bench_aae_labels.py --models
    baseline), beside the paper's figures and the aim."""
    groups, rows = group_runs(results, "mnist", "headline"), []
    for labels in (100, 1000):
        paper = "{:.2f}% ± {:.2f}".format(*AAE_PAPER[labels])
        runs = groups.get(f"aae/default-{labels}", [])
        if runs:
            s = summary([1 - r["final"]["test_accuracy"] for r in runs])
            short = s["mean"] * 100 - AAE_AIM[labels]
            aim = f"≤ {AAE_AIM[labels]:.1f}%: " + ("met" if short <= 0 else f"missed by {short:.2f} points")
            rows.append(
                [
                    labels,
                    "`aae` default (semi-supervised)",
                    len(runs[0]["epochs"]),
                    s["n"],
                    f"**{fmt(s, 2, 100, '%')}**",
                    interval(s, 2, 100),
                    minutes(runs),
                    aim,
                    paper,
                    *stamp(runs),
                ]
            )
        base = results(f"aae_mnist_{labels}_baseline")
        runs = base["results"]["baseline"]
        s = summary([1 - r["accuracy"] for r in runs])
        rows.append(
            [
                labels,
                "the same network on the labels alone",
                f"{runs[0]['epochs']} (over the {labels} labels)",
                s["n"],
                fmt(s, 2, 100, "%"),
                interval(s, 2, 100),
                f"{summary([r['cpu_minutes'] for r in runs])['mean']:.1f} (CPU)",
                "—",
                "—",
                commit(base),
                cpu(base),
                "auto (fp32 for an MLP)",
            ]
        )
    header = ["labels", "model", "epochs", "n (seeds)", "test error (mean ± std)", "95% interval of the mean"]
    return md(header + ["train min / run", "the aim", "the paper", "commit", "CPU", "number format"], rows)


@table("mnist-aae-time-to")
def mnist_aae_time_to(results: Results) -> str:
    """Training minutes until the validation accuracy first reaches 95, 97 and 98% (the test split
    is read once, at the end, so the curve is the validation split's), from the same runs."""
    groups, rows = group_runs(results, "mnist", "headline"), []
    for labels in (100, 1000):
        runs = groups.get(f"aae/default-{labels}", [])
        if not runs:
            continue
        cells = []
        for level in (0.95, 0.97, 0.98):
            reached = []
            for r in runs:
                spent = 0.0
                for e in r["epochs"]:
                    spent += e["seconds"]
                    if e["val_accuracy"] >= level:
                        reached.append(spent / 60)
                        break
            if reached:
                s = summary(reached)
                spread = f" ± {s['std']:.1f}" if s["n"] > 1 else ""
                cells.append(f"{s['mean']:.1f}{spread} ({s['n']} of {len(runs)} runs)")
            else:
                cells.append(f"not in {len(runs[0]['epochs'])} epochs")
        rows.append([labels, *cells, len(runs), *stamp(runs)])
    header = ["labels", "minutes to 95% (validation)", "to 97%", "to 98%", "n (seeds)", "commit", "CPU"]
    return md(header + ["number format"], rows)


# Trials on the preset itself (bench_mnist.py's ablation group), set against the preset: shown
# first, after the preset's own row.
AAE_TRIALS = {
    "ema-0.999": "trial: a weight average of the encoder and decoder (`--ema 0.999`)",
    "uda": "trial: UDA's targets, sharpened, confident only (`--consistency-sharpen 0.4 --consistency-confidence 0.8`)",
    "mean-teacher": "trial: the mean teacher's targets (`--ema 0.999 --consistency-teacher average`)",
}
# What each ablation undoes (bench_mnist.py's ablation group), in the table's order. The first row
# undoes the preset's warm-up of y; every other row changes the preset before it (warm-up 0), the
# row its test error is set against.
AAE_ABLATIONS = {
    "warmup-0": "the preset before the warm-up of y (`--classifier-warmup 0`): every row below changes it",
    "no-consistency": "without the consistency term (`--consistency 0`)",
    "no-dropout": "without dropout (`--dropout 0`)",
    "no-y-conditioned": "d_gauss without the predicted class (`--no-y-conditioned`)",
    "content-in-z": "the content in z, as before: softmax y, z 10-D ~ N(0, 5²), discriminators at lr 2e-4",
    "z-head": "trial: the adversary on z shapes the z head only (`--no-z-adversary-body`)",
    "consistency-3": "trial: the consistency term at weight 3 (`--consistency 3`)",
    "warmup-540": "trial: y on the labels alone for the first epoch (`--classifier-warmup 540`)",
    "warmup-200": "trial: y on the labels alone for the first 200 steps (`--classifier-warmup 200`)",
}


def chosen_epoch(r: dict) -> dict:
    """The epoch record of the checkpoint a run was tested with (best.pt, chosen on validation)."""
    return r["epochs"][r["final"]["checkpoint_epoch"] - 1]


def label_sample_cells(runs: list[dict]) -> list[str]:
    """`sample --label K` read as K: mean over K and the worst K, mean ± std over the runs."""
    if not all("label_samples" in r for r in runs):
        return ["—", "—"]
    mean = summary([statistics.mean(r["label_samples"]) for r in runs])
    worst = summary([min(r["label_samples"]) for r in runs])
    return [fmt(mean, 1, 100, "%"), fmt(worst, 1, 100, "%")]


@table("mnist-aae-ablation")
def mnist_aae_ablation(results: Results) -> str:
    """The default semi-supervised AAE on full MNIST beside runs that each undo one of its choices
    or add one trial (bench_mnist.py's headline and ablation groups, 10 epochs): validation error
    of the chosen epoch (what the choices were made on), test error, its change against the preset
    it changes with as many labels (the preset for its trials and the preset before its warm-up of
    y, that preset for every other row), and whether
    `sample --label K` draws K."""
    headline, ablations = group_runs(results, "mnist", "headline"), group_runs(results, "mnist", "ablation")
    rows = []
    for labels in (100, 1000):
        default = headline.get(f"aae/default-{labels}", [])
        variants = {**AAE_TRIALS, **AAE_ABLATIONS}
        if not default or not any(f"aae/{labels}-{name}" in ablations for name in variants):
            continue
        error = {"default": summary([1 - r["final"]["test_accuracy"] for r in default])}
        for name, what in [("default", "`aae` default preset"), *variants.items()]:
            runs = default if name == "default" else ablations.get(f"aae/{labels}-{name}", [])
            if not runs:
                continue
            val = summary([1 - chosen_epoch(r)["val_accuracy"] for r in runs])
            test = error[name] = summary([1 - r["final"]["test_accuracy"] for r in runs])
            on_preset = name == "warmup-0" or name in AAE_TRIALS
            base = None if name == "default" else error["default" if on_preset else "warmup-0"]
            change = "—" if base is None else f"{(test['mean'] - base['mean']) * 100:+.2f} points"
            rows.append(
                [
                    labels,
                    what,
                    test["n"],
                    fmt(val, 2, 100, "%"),
                    f"**{fmt(test, 2, 100, '%')}**" if name == "default" else fmt(test, 2, 100, "%"),
                    change,
                    *label_sample_cells(runs),
                    minutes(runs),
                    *stamp(runs),
                ]
            )
    header = ["labels", "variant (10 epochs)", "n (seeds)", "validation error (chose it)", "test error"]
    header += ["test error against the preset it changes", "`sample --label K` read as K", "worst K"]
    header += ["train min / run"]
    header += ["commit", "CPU", "number format"]
    return md(header, rows)
