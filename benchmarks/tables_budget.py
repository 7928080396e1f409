"""The time-budget tables: the best classifier in the time you have (bench_budget.py), a budget under a
competing load (bench_budget_load.py), and time to accuracy (bench_time_to_accuracy.py)."""

from __future__ import annotations

from table_defs import (
    Results,
    commit,
    machine,
    md,
    pm,
    stat,
    table,
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
        "the training seconds its runs took for the budget (a deadline since 87dff39: steps planned from the run's "
        "own step times and planned again as they change; rows measured before it fixed the steps from the "
        "first steps timed); ms a "
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
