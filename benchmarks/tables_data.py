"""The data and robustness tables: resnet-transfer's synthetic pipeline (bench_transfer.py), the faults
the hardening tests tried (bench_reliability.py) and a dataset larger than memory (bench_mapped.py)."""

from __future__ import annotations

from table_defs import (
    Results,
    commit,
    machine,
    md,
    of,
    pm,
    stat,
    table,
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
