"""disgen's Fréchet distance, KID and k-NN precision/recall against torch-fidelity, torchmetrics and
prdc on the same features (10,000 x 128 real and fake, float32), timed in one process, with the
relative difference of the values. Target: each metric within 1.2x of the fastest peer, values
within 1e-5 relative of every peer.

    python benchmarks/bench_metrics.py [--repeats 5] [--threads 1] [--n 10000] [--dim 128]

The peers are not dependencies of disgen; a peer that cannot be imported is skipped with a
message. torch-fidelity imports torchvision, so they need a venv of their own, beside which disgen
is installed without dependencies (docs/speed.md gives the commands).

What is timed is each library's whole computation from the two feature tensors, with its defaults
matched to disgen's (subset size 1000, kernel (x·y / D + 1)³, the unbiased MMD², k = 3):

- Fréchet distance: disgen ``frechet_between``; torch-fidelity ``fid_features_to_statistics`` of
  each set and ``fid_statistics_to_metric``; torchmetrics ``FrechetInceptionDistance`` with an
  identity feature module (update with each set, compute).
- KID, 10 and 100 subsets of 1000: disgen ``kid``; torch-fidelity ``kid_features_to_metric``;
  torchmetrics ``KernelInceptionDistance`` with an identity feature module. Each draws its subsets
  with its own generator (numpy's RandomState, torch's global one), so the means differ by the
  draws (recorded as ``own_draws``). The values compared are on identical subsets: each peer's own
  per-subset estimator (torch-fidelity ``metric_kid.kernel_mmd``, torchmetrics ``kid.poly_mmd``)
  on the subsets disgen draws (``metrics.kid_subsets``), averaged, against disgen's ``kid``.
- Precision and recall, k = 3: disgen ``precision_recall``; torch-fidelity
  ``prc_features_to_metric`` (fake first; its default ``save_cpu_ram=False``: whole 10,000 x 10,000
  distance matrices); prdc ``compute_prdc``, which also computes density and coverage, counts a
  point inside a ball on d < r (the others: d <= r) and takes distances from scikit-learn, with
  ``n_jobs=8`` written into prdc (so it may use more threads than ``--threads``). The relative
  difference is the larger of precision's and recall's.

The libraries take turns (common.rotated), one untimed call each first (whose value is the one
compared). ``--threads`` pins torch, and BLAS/OpenMP through threadpoolctl where it is installed.
KID's values are also compared with disgen's ``kid`` on float64 features (``float64_reference``),
which shows whose rounding the differences are. Saves benchmarks/results/metrics_speed.json
(``--name``); the run takes about 3 minutes on one thread of a 2-core CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import load_average, rotated, save, stats, table, warn_if_busy  # noqa: E402

from disgen.evaluation import metrics  # noqa: E402

SUBSET_SIZE, K = 1000, 3
TARGET_RATIO, TARGET_REL_DIFF = 1.2, 1e-5


def features(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussians: real N(0, I); fake with a shifted mean and a mixed, wider covariance."""
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(n, dim, generator=gen)
    mix = torch.eye(dim) * 1.1 + 0.2 * torch.randn(dim, dim, generator=gen) / dim**0.5
    fake = torch.randn(n, dim, generator=gen) @ mix + 0.05
    return real, fake


class Identity(torch.nn.Module):
    """torchmetrics' feature module for features computed beforehand."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def quiet(fn):
    """``fn`` without its prints (prdc prints the sizes) and warnings (torchmetrics' buffer note)."""

    def run():
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()

    return run


def disgen_cases(real, fake) -> dict:
    cases = {
        "frechet": lambda: metrics.frechet_between(real, fake),
        "pr": lambda: metrics.precision_recall(real, fake, K),
    }
    for s in (10, 100):
        cases[f"kid{s}"] = lambda s=s: metrics.kid(real, fake, s, SUBSET_SIZE)
    return cases


def fidelity_cases(real, fake) -> dict:
    from torch_fidelity import metric_fid, metric_kid, metric_prc

    def frechet():
        stats1, stats2 = metric_fid.fid_features_to_statistics(real), metric_fid.fid_features_to_statistics(fake)
        return metric_fid.fid_statistics_to_metric(stats1, stats2, verbose=False)["frechet_inception_distance"]

    def pr():
        out = metric_prc.prc_features_to_metric(fake, real, prc_neighborhood=K, verbose=False)
        return out["precision"], out["recall"]

    cases = {"frechet": frechet, "pr": pr}
    for s in (10, 100):
        cases[f"kid{s}"] = lambda s=s: metric_kid.kid_features_to_metric(
            real, fake, kid_subsets=s, kid_subset_size=SUBSET_SIZE, verbose=False
        )["kernel_inception_distance_mean"]
    np_real, np_fake = real.numpy(), fake.numpy()
    same = lambda i, j: metric_kid.kernel_mmd(np_real[i.numpy()], np_fake[j.numpy()])  # noqa: E731
    return {"cases": cases, "same_subsets": same}


def torchmetrics_cases(real, fake) -> dict:
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

    def frechet():
        fid = FrechetInceptionDistance(feature=Identity(real.shape[1]))
        fid.update(real, real=True)
        fid.update(fake, real=False)
        return fid.compute().item()

    def kid(s):
        m = KernelInceptionDistance(feature=Identity(real.shape[1]), subsets=s, subset_size=SUBSET_SIZE)
        m.update(real, real=True)
        m.update(fake, real=False)
        return m.compute()[0].item()

    cases = {"frechet": frechet}
    for s in (10, 100):
        cases[f"kid{s}"] = lambda s=s: kid(s)
    return {"cases": cases, "same_subsets": lambda i, j: poly_mmd(real[i], fake[j]).item()}


def prdc_cases(real, fake) -> dict:
    from prdc import compute_prdc

    def pr():
        out = compute_prdc(real.numpy(), fake.numpy(), nearest_k=K)
        return float(out["precision"]), float(out["recall"])

    return {"cases": {"pr": pr}}


PEERS = {
    "torch-fidelity": ("torch_fidelity", fidelity_cases),
    "torchmetrics": ("torchmetrics", torchmetrics_cases),
    "prdc": ("prdc", prdc_cases),
}
METRICS = {
    "frechet": "Fréchet distance",
    "kid10": "KID, 10 subsets of 1000",
    "kid100": "KID, 100 subsets of 1000",
    "pr": "precision and recall, k = 3",
}


def load_peers(real, fake) -> tuple[dict, dict]:
    """Each importable peer's cases, and each peer's version (or why it was skipped)."""
    from importlib.metadata import PackageNotFoundError, version

    loaded, versions = {}, {}
    for name, (module, build) in PEERS.items():
        try:
            __import__(module)
            loaded[name] = build(real, fake)
            versions[name] = version(name)
        except (ImportError, PackageNotFoundError, RuntimeError) as err:  # torchvision's failures are RuntimeErrors
            versions[name] = f"skipped: {type(err).__name__}: {str(err).splitlines()[0]}"
            print(f"{name} skipped ({versions[name][9:]})")
    return loaded, versions


def rel_diff(ours, theirs) -> float:
    """Largest relative difference |ours - theirs| / |theirs| over the values (a pair for PR)."""
    ours, theirs = np.atleast_1d(np.asarray(ours, np.float64)), np.atleast_1d(np.asarray(theirs, np.float64))
    return float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-300)))


def same_subset_kid(fn, subsets: int, n_real: int, n_fake: int) -> float:
    """A peer's per-subset MMD² averaged over the very subsets that disgen's ``kid`` draws."""
    rows_real, rows_fake = metrics.kid_subsets(n_real, n_fake, subsets, SUBSET_SIZE)
    return float(np.mean([fn(i, j) for i, j in zip(rows_real, rows_fake)]))


def measure(libs: dict, repeats: int) -> tuple[dict, dict]:
    """One untimed call of each library (its value), then ``repeats`` timed rounds, rotated."""
    values = {lib: quiet(fn)() for lib, fn in libs.items()}
    seconds = {lib: [] for lib in libs}
    for r in range(repeats):
        for lib in rotated(list(libs), r):
            start = time.perf_counter()
            quiet(libs[lib])()
            seconds[lib].append(time.perf_counter() - start)
    return values, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default 1)")
    ap.add_argument("--n", type=int, default=10_000, help="samples in each set")
    ap.add_argument("--dim", type=int, default=128, help="feature dimension")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated subset of {','.join(METRICS)}")
    ap.add_argument("--name", default="metrics_speed", help="results file name under benchmarks/results/")
    args = ap.parse_args()
    chosen = [m for m in args.metrics.split(",") if m]
    if unknown := set(chosen) - set(METRICS):
        ap.error(f"unknown metric(s) {', '.join(sorted(unknown))}: choose from {', '.join(METRICS)}")
    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        pinned = "torch and threadpoolctl (BLAS, OpenMP)"
    except ImportError:
        pinned = "torch only (no threadpoolctl: set OMP_NUM_THREADS for numpy's BLAS)"
    warn_if_busy()
    load_start = load_average()
    real, fake = features(args.n, args.dim, args.seed)
    ours = disgen_cases(real, fake)
    peers, versions = load_peers(real, fake)

    results, rows = {}, []
    for metric in chosen:
        libs = {"disgen": ours[metric]} | {p: c["cases"][metric] for p, c in peers.items() if metric in c["cases"]}
        values, seconds = measure(libs, args.repeats)
        compared = dict(values)
        if metric.startswith("kid"):  # the peers' own draws differ from disgen's: compare on disgen's subsets
            subsets = int(metric[3:])
            compared = {"disgen": values["disgen"]} | {
                p: same_subset_kid(peers[p]["same_subsets"], subsets, args.n, args.n) for p in libs if p != "disgen"
            }
        medians = {lib: statistics.median(s) for lib, s in seconds.items()}
        fastest = min((p for p in libs if p != "disgen"), key=medians.get, default=None)
        entry = {
            "seconds": {lib: {**stats(s), "median": medians[lib]} for lib, s in seconds.items()},
            "values": compared,
            "rel_diff": {p: rel_diff(values["disgen"], compared[p]) for p in libs if p != "disgen"},
            "fastest_peer": fastest,
            "ratio_to_fastest_peer": medians["disgen"] / medians[fastest] if fastest else None,
        }
        if metric.startswith("kid"):
            entry["own_draws"] = values
            # which side the differences come from: every library against disgen's kid in float64
            exact = metrics.kid(real.double(), fake.double(), subsets, SUBSET_SIZE)
            entry["float64_reference"] = exact
            entry["rel_diff_to_float64"] = {lib: rel_diff(v, exact) for lib, v in compared.items()}
        results[metric] = entry
        for lib in libs:
            ratio = f"{medians[lib] / medians[fastest]:.2f}" if fastest else "—"
            diff = f"{entry['rel_diff'][lib]:.1e}" if lib in entry["rel_diff"] else ""
            spread = f"{min(seconds[lib]):.3f}-{max(seconds[lib]):.3f}"
            rows.append([METRICS[metric], lib, f"{medians[lib]:.3f}", spread, ratio, diff])
        print(table(rows[-len(libs) :], ["metric", "library", "median s", "range s", "/ fastest peer", "rel. diff"]))

    print(f"\nmedian seconds of {args.repeats} repeats, {args.threads} thread(s); rel. diff: |disgen - peer| / |peer|")
    print(table(rows, ["metric", "library", "median s", "range s", "/ fastest peer", "rel. diff"]))
    payload = {
        "n": args.n,
        "dim": args.dim,
        "seed": args.seed,
        "repeats": args.repeats,
        "threads": args.threads,
        "threads_pinned": pinned,
        "load_average_start": load_start,
        "subset_size": SUBSET_SIZE,
        "k": K,
        "target_ratio": TARGET_RATIO,
        "target_rel_diff": TARGET_REL_DIFF,
        "peers": versions,
        "metrics": results,
    }
    print(f"saved {save(args.name, payload)}")


if __name__ == "__main__":
    main()
