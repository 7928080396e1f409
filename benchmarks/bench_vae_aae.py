"""The vae beside the unsupervised aae at equal training time, on the same encoder/decoder sizes
(784-1000-1000, a 10-D code, the mirrored decoder): ``disgen train vae --time-budget B --seed S``
and ``disgen train aae --mode unsupervised --time-budget B --seed S`` (each model's default
preset otherwise), over several seeds.

    python benchmarks/bench_vae_aae.py [--dataset mnist-mini] [--budget 60] [--seeds 0 1 2]

Runs are one torch thread each, one at a time, the two models in rotated order per seed. Measured
on the test split with each run's best.pt (chosen on its validation split):

- ``mse``: reconstruction error per pixel (the objectives' own test figure);
- ``frechet_distance``, ``kid``, ``classes_covered``, ``class_kl``: SAMPLES decoded prior draws
  (`disgen sample`) against the test images, in the feature space of disgen's reference
  classifier for the dataset (as the GANs are measured);
- ``prior_w2``: how well the code matches its prior: the squared 2-Wasserstein (Fréchet)
  distance between a Gaussian fitted to the codes of the test images, divided by the prior's std,
  and N(0, I). The aae's code is its encoder's z; the vae's is z drawn from q(z|x).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import rotated, save, stats, table  # noqa: E402

MODELS = {"vae": ["vae"], "aae-unsupervised": ["aae", "--mode", "unsupervised"]}
SAMPLES = 2000
METRICS = ["mse", "frechet_distance", "kid", "classes_covered", "class_kl", "prior_w2"]


def codes(run, x: torch.Tensor) -> torch.Tensor:
    """The codes of images ``x`` divided by the prior's std (the prior then N(0, I))."""
    if run.spec.name == "vae":
        from disgen.objectives.vae import encode

        mu, log_var = encode(run.nets, x)
        return mu + (0.5 * log_var).exp() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    from disgen.objectives.aae import encode

    return encode(run.nets, x)[1] / run.nets["encoder"].cfg.prior_std


def measure(run_dir: Path, data) -> dict:
    import disgen
    from disgen.data import to_float
    from disgen.evaluation import metrics
    from disgen.evaluation.reference import get_reference
    from disgen.objectives.gan import evaluate_images

    run = disgen.load(run_dir)
    x, y = to_float(data.test.images, (0.0, 1.0)), data.test.labels
    reference = get_reference(data, torch.device("cpu"))
    fake = run.sample(SAMPLES, seed=0)  # decoded prior draws in [0, 1]
    out = evaluate_images(reference, fake, x, y, (0.0, 1.0))
    z = codes(run, x).double()
    mu, cov = metrics.gaussian_stats(z)
    out["prior_w2"] = metrics.frechet_distance(mu, cov, np.zeros(z.shape[1]), np.eye(z.shape[1]))
    out["mse"] = run.final["test_mse"]
    return out


def train(name: str, seed: int, args, root: Path, data) -> dict:
    from disgen import runs

    run_dir = root / f"{name}-{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "disgen", "train", *MODELS[name], "--dataset", args.dataset]
    cmd += ["--time-budget", str(args.budget), "--seed", str(seed), "--run-dir", str(run_dir), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    history = runs.read_metrics(run_dir)
    out = {"seed": seed, "epochs": len(history), "train_seconds": sum(r["seconds"] for r in history)}
    out.update({m: v for m, v in measure(run_dir, data).items() if m in METRICS})
    print(f"{name:17s} seed {seed}: {out}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist-mini")
    p.add_argument("--budget", type=float, default=60.0, help="training seconds per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--name", default="vae_aae_mnist-mini")
    args = p.parse_args()
    from disgen.data import load_dataset, splits
    from disgen.training.trainer import train_reference

    torch.set_num_threads(1)
    data = splits.with_validation(load_dataset(args.dataset), 0.1)
    train_reference(data, lambda m: print(m, file=sys.stderr))
    done: dict[str, list[dict]] = {m: [] for m in MODELS}
    with tempfile.TemporaryDirectory(prefix="disgen-vae-aae-") as tmp:
        for i, seed in enumerate(args.seeds):
            for name in rotated(list(MODELS), i):
                done[name].append(train(name, seed, args, Path(tmp), data))
    results = {
        name: {"runs": r, **{m: stats([x[m] for x in r]) for m in ["epochs", "train_seconds", *METRICS]}}
        for name, r in done.items()
    }
    rows = [
        [name, f"{r['train_seconds']['mean']:.0f}"] + [f"{r[m]['mean']:.4g} ± {r[m]['std']:.2g}" for m in METRICS]
        for name, r in results.items()
    ]
    print(table(rows, ["model", "train s"] + METRICS))
    save(
        args.name,
        {"dataset": args.dataset, "budget_s": args.budget, "seeds": args.seeds, "samples": SAMPLES, "results": results},
    )


if __name__ == "__main__":
    main()
