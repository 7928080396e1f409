"""The GPU benchmark's table (bench_gpu.py)."""

from __future__ import annotations

from table_defs import (
    Results,
    commit,
    md,
    pm,
    stat,
    table,
)

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
