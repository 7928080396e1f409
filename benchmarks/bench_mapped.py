"""A dataset larger than memory: dcgan64 trained for one epoch on a generated folder of images,
read from the memory-mapped decoded cache (``--data-on-device no``) against the in-memory path
(``--data-on-device yes``: every split as floats in memory, what disgen did before), side by side.

Each training run is its own process, the two paths alternating, so each one's memory is its own:
the process's anonymous resident memory (``RssAnon`` of /proc/self/status, sampled every 0.1 s) is
what the dataset costs; the memory-mapped pages are file-backed (``RssFile``), which the operating
system reads from the page cache and may drop again. Throughput is training images per second of
the epoch (metrics.jsonl's ``seconds``: the training steps alone, evaluation excluded).

    python benchmarks/bench_mapped.py                          # 200,000 images of 64x64, width 8
    python benchmarks/bench_mapped.py --images 2000 --repeats 1 --name mapped_quick

The folder is generated once (``--folder``, default build/bench-mapped-N); decoding it into the
cache is timed once, in its own process, before the training runs. ``--width`` narrows dcgan64's
networks (64 is d2l's): on a 2-core CPU one epoch of 200,000 images at width 64 takes hours, and a
narrow network makes the data path a larger share of a step, the harder test of it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import rotated, save, stats, table, warn_if_busy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rss() -> dict[str, int]:
    """RssAnon and RssFile of this process, in bytes (Linux)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("RssAnon:", "RssFile:")):
            key, value = line.split(":")
            out[key] = int(value.split()[0]) * 1024
    return out


class PeakMemory:
    """The highest RssAnon (and RssFile beside it) seen while the block runs."""

    def __init__(self, every: float = 0.1):
        self.every, self.peak, self.file_at_peak, self.stop = every, 0, 0, threading.Event()

    def sample(self) -> None:
        now = rss()
        if now.get("RssAnon", 0) > self.peak:
            self.peak, self.file_at_peak = now["RssAnon"], now.get("RssFile", 0)

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.every)

    def __enter__(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.sample()


def generate(folder: Path, n: int, size: int, jobs: int = 2) -> None:
    """``n`` PNG images of ``size`` x ``size`` (smooth colour fields with noise: they compress, and
    a GAN has something to learn), one class, written by ``jobs`` processes."""
    if (folder / "DONE").is_file() and int((folder / "DONE").read_text()) == n:
        return
    folder.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child-generate", str(folder), str(n), str(size), str(j), str(jobs)]
        )
        for j in range(jobs)
    ]
    if any(p.wait() for p in procs):
        raise SystemExit("generating the images failed")
    (folder / "DONE").write_text(str(n))


def child_generate(folder: Path, n: int, size: int, job: int, jobs: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(job)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(job, n, jobs):
        path = folder / "sprites" / f"{i:06d}.png"  # one class: no reference classifier to train first
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        a, b, c = rng.random((3, 3))
        field = a[:, None, None] * xx + b[:, None, None] * yy + c[:, None, None] * np.sin(6 * xx * yy)
        img = (field.transpose(1, 2, 0) * 120 + rng.normal(0, 12, (size, size, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(path)


def child_run(args) -> None:
    """One measurement in this process: decoding into the cache, or one epoch of training."""
    import disgen
    from disgen.data import load_dataset

    out: dict = {}
    with PeakMemory() as mem:
        start = time.perf_counter()
        if args.child == "decode":
            data = load_dataset(str(args.folder), image_shape=(3, args.size, args.size))
            out["images"] = len(data.train) + len(data.test)
        else:
            from disgen.training.trainer import Trainer

            epoch_peak = PeakMemory()  # the training steps alone, beside the whole process's
            train_epoch = Trainer.train_epoch

            def measured_epoch(self):
                with epoch_peak:
                    return train_epoch(self)

            Trainer.train_epoch = measured_epoch
            run = disgen.train(
                "dcgan64",
                dataset=str(args.folder),
                epochs=1,
                model_args={"width": args.width},
                batch_size=args.batch_size,
                data_on_device=args.child,
                run_dir=str(args.run_dir),
                progress=False,
                seed=0,
            )
            record = run.history[0]
            out.update(
                train_images=json.loads((Path(args.run_dir) / "split.json").read_text())["sizes"]["train"],
                epoch_seconds=record["seconds"],
                d_loss=record.get("train_d_loss"),
            )
            out["images_per_s"] = out["train_images"] / out["epoch_seconds"]
            out["rss_anon_train_peak"] = epoch_peak.peak
        out["seconds"] = time.perf_counter() - start
    out.update(rss_anon_peak=mem.peak, rss_file_at_peak=mem.file_at_peak)
    print("RESULT " + json.dumps(out))


def measure(args, what: str, run_dir: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--folder", str(args.folder), "--size", str(args.size)]
    cmd += ["--width", str(args.width), "--batch-size", str(args.batch_size)]
    if run_dir is not None:
        cmd += ["--run-dir", str(run_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "DISGEN_HOME": str(args.home)})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=200_000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--width", type=int, default=8, help="dcgan64's --width (d2l: 64)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2, help="epochs of each path, alternating")
    p.add_argument("--folder", type=Path, default=None)
    p.add_argument("--home", type=Path, default=None, help="DISGEN_HOME of the runs (the decoded cache)")
    p.add_argument("--name", default="mapped")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--run-dir", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-generate", nargs=5, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_generate:
        folder, n, size, job, jobs = args.child_generate
        return child_generate(Path(folder), int(n), int(size), int(job), int(jobs))
    if args.child:
        return child_run(args)
    args.folder = args.folder or ROOT / "build" / f"bench-mapped-{args.images}"
    args.home = args.home or ROOT / "build" / "bench-mapped-home"
    warn_if_busy()
    start = time.perf_counter()
    generate(args.folder, args.images, args.size)
    print(f"{args.images:,} images in {args.folder} ({time.perf_counter() - start:.0f} s)", flush=True)
    decode = measure(args, "decode")
    print(
        f"decoded into the cache in {decode['seconds']:.0f} s, RssAnon peak {decode['rss_anon_peak'] / 2**20:,.0f} MiB"
    )
    runs: dict[str, list[dict]] = {"no": [], "yes": []}
    for r in range(args.repeats):
        for mode in rotated(["no", "yes"], r):
            res = measure(args, mode, args.home / f"run-{mode}-{r}")
            runs[mode].append(res)
            print(
                f"--data-on-device {mode}: {res['images_per_s']:.0f} images/s, RssAnon peak "
                f"{res['rss_anon_peak'] / 2**20:,.0f} MiB (RssFile {res['rss_file_at_peak'] / 2**20:,.0f} MiB)",
                flush=True,
            )
            report(args, decode, runs)  # after every run: a stopped benchmark keeps what it measured


def report(args, decode: dict, runs: dict[str, list[dict]]) -> None:
    rows, out = [], {}
    for mode, label in (("no", "memory-mapped (--data-on-device no)"), ("yes", "in memory (--data-on-device yes)")):
        out[mode] = {
            "images_per_s": stats([r["images_per_s"] for r in runs[mode]]),
            "rss_anon_peak_mib": stats([r["rss_anon_peak"] / 2**20 for r in runs[mode]]),
            "rss_anon_train_peak_mib": stats([r.get("rss_anon_train_peak", 0) / 2**20 for r in runs[mode]]),
            "rss_file_at_peak_mib": stats([r["rss_file_at_peak"] / 2**20 for r in runs[mode]]),
            "epoch_seconds": stats([r["epoch_seconds"] for r in runs[mode]]),
            "runs": runs[mode],
        }
        s = out[mode]
        if not runs[mode]:
            continue
        rows.append(
            [
                label,
                f"{s['images_per_s']['mean']:.0f} ± {s['images_per_s']['std']:.0f}",
                f"{s['rss_anon_peak_mib']['mean']:,.0f}",
            ]
        )
    ratios = [a["images_per_s"] / b["images_per_s"] for a, b in zip(runs["no"], runs["yes"])]
    if not ratios:
        return
    out["throughput_ratio"] = stats(ratios)
    print(table(rows, ["path", "images/s", "RssAnon peak MiB"]))
    print(f"memory-mapped / in-memory throughput: {out['throughput_ratio']['mean']:.3f} (paired, n = {len(ratios)})")
    save(
        args.name,
        {
            "images": args.images,
            "size": args.size,
            "model": "dcgan64",
            "options": {"width": args.width, "batch_size": args.batch_size, "epochs": 1},
            "decode": decode,
            "repeats_done": min(len(runs["no"]), len(runs["yes"])),
            "paths": out,
        },
    )


if __name__ == "__main__":
    main()
