"""How much of the machine's matrix-multiply peak disgen's training steps reach on the conv models.

The peak is measured here, in the same process: the best of several 2048x2048 @ 2048x2048 products
in float32 and in bfloat16. A training step's FLOPs (forward and backward; matrix products and
convolutions, as torch.utils.flop_counter.FlopCounterMode counts them) are counted on one step of
the Trainer; then whole epochs of a few steps are timed (after a warm-up epoch), in the run's
``auto`` precision and in fp32 NCHW, alternating, and the achieved GFLOP/s is compared with the peak
of the number format the step used.

    python benchmarks/bench_flops.py [--repeats 3] [--models cnn-classifier,dcgan28-seed,...] [--threads N]

The full default run takes about 2 minutes with --threads 1 on a 2-core CPU (quiet machine: see
bench_speed.py).
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, load_data, make_trainer, save, start, subset, summary, table  # noqa: E402

from disgen.data import ImageSplit, TensorDataset  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def matmul_peak(dtype: torch.dtype, n: int = 2048, tries: int = 5) -> float:
    """GFLOP/s of the best of ``tries`` n x n @ n x n products in ``dtype`` (after one warm-up)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = min(timed_once(lambda: torch.mm(a, b)) for _ in range(tries))
    return 2 * n**3 / best / 1e9


def timed_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Case:
    model: str
    preset: str
    steps: int  # steps per timed epoch
    shape: tuple[int, int, int] | None = None  # synthetic images of this shape (dcgan64), else --dataset


CASES = {
    "cnn-classifier": Case("cnn-classifier", "seed", 10),
    "dcgan28-seed": Case("dcgan28", "seed", 10),
    "dcgan28-default": Case("dcgan28", "default", 10),
    "dcgan64-default": Case("dcgan64", "default", 4, (3, 64, 64)),
}


def synthetic(shape: tuple[int, int, int], n: int) -> TensorDataset:
    """Random uint8 images: the timing does not depend on what they show."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 2, (n,), generator=gen)
    return TensorDataset(
        f"random-{'x'.join(map(str, shape))}",
        ImageSplit(images, labels),
        ImageSplit(images[:64], labels[:64]),
        ["a", "b"],
        "generated",
    )


def step_flops(trainer) -> int:
    """FLOPs of one training step (forward and backward of every network the step runs)."""
    from disgen.objectives import bound_step

    batch = next(iter(trainer.loader))
    with FlopCounterMode(display=False) as counter:
        with trainer.speed.autocast():
            bound_step(trainer.objective.step, trainer.model_cfg)(trainer.step_nets, trainer.opts, batch)
    return counter.get_total_flops()


def run_case(case: Case, images, repeats: int, run_dir: Path) -> dict:
    from disgen.models import resolve

    batch = resolve(case.model, {"preset": case.preset}).batch_size
    n = case.steps * batch
    data = synthetic(case.shape, n) if case.shape else subset(images, n)
    options = {"preset": case.preset}
    sides = {
        "auto": make_trainer(case.model, data, options, run_dir / "auto"),
        "fp32": make_trainer(
            case.model, data, {**options, "precision": "fp32", "channels_last": "off"}, run_dir / "fp32"
        ),
    }
    flops = step_flops(sides["fp32"])
    for t in sides.values():  # warm-up
        t.train_epoch()
    seconds = {k: [] for k in sides}
    for _ in range(repeats):
        for k, t in sides.items():
            seconds[k].append(timed_once(t.train_epoch))
    steps = len(sides["auto"].loader)
    out = {"batch": batch, "steps": steps, "gflop_per_step": flops / 1e9}
    for k, t in sides.items():
        out[k] = {
            "precision": t.speed.precision,
            "channels_last": t.speed.channels_last,
            "ms_per_step": summary([1e3 * s / steps for s in seconds[k]]),
            "gflop_per_s": summary([flops * steps / s / 1e9 for s in seconds[k]]),
        }
    return out


def row(name: str, side_name: str, r: dict, peak: dict) -> list:
    side = r[side_name]
    layout = " NHWC" if side["channels_last"] else ""
    return [
        name,
        r["batch"],
        f"{r['gflop_per_step']:.2f}",
        f"{side_name}: {side['precision']}{layout}",
        f"{side['ms_per_step'][0]:.1f} ± {side['ms_per_step'][1]:.1f}",
        f"{side['gflop_per_s'][0]:,.1f}",
        f"{peak[side['precision']]:,.0f}",
        f"{100 * side['fraction_of_peak']:.1f}%",
    ]


def main() -> None:
    ap = bench_parser(__doc__, CASES, "flops")
    ap.add_argument("--steps", type=int, help="steps per timed epoch for every model (default: per model)")
    args = ap.parse_args()
    names = start(ap, args, CASES)

    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    images = load_data(args.dataset)
    results, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="disgen-bench-flops-") as tmp:
        for name in names:
            case = CASES[name]
            if args.steps:
                case = Case(case.model, case.preset, args.steps, case.shape)
            print(f"{name}: {case.steps} steps ...", file=sys.stderr, flush=True)
            r = results[name] = run_case(case, images, args.repeats, Path(tmp) / name)
            for k in ("auto", "fp32"):
                side = r[k]
                if side["precision"] not in peak:  # fp16 where a machine picks it
                    peak[side["precision"]] = matmul_peak(DTYPES[side["precision"]])
                side["fraction_of_peak"] = side["gflop_per_s"][0] / peak[side["precision"]]
                rows.append(row(name, k, r, peak))
    print(
        f"\nachieved fraction of the matmul peak, disgen Trainer steps, CPU {torch.get_num_threads()} "
        f"threads, n={args.repeats} (mean ± std)"
    )
    print("peak: " + ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in peak.items()) + " (2048^3 matmul, best of 5)")
    print(table(rows, ["model", "batch", "GFLOP/step", "precision", "ms/step", "GFLOP/s", "peak", "of peak"]))
    print("GFLOP/step: forward + backward matrix products and convolutions (FlopCounterMode)")
    path = save(
        args.name,
        {"dataset": images.name, "repeats": args.repeats, "peak_gflop_per_s": peak, "models": results},
        append=args.append,
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
