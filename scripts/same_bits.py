"""Compare two output folders of scripts/same_bits.sh: every checkpoint's network tensors (the
runs' and their reference classifiers') and every metrics.jsonl record, timings aside.

    python scripts/same_bits.py OUT_BEFORE OUT_AFTER   # exit 1 if anything differs
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

TIMINGS = {"seconds", "eval_seconds"}


def tensors(x, prefix=""):
    if isinstance(x, torch.Tensor):
        yield prefix, x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from tensors(v, f"{prefix}.{k}")
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from tensors(v, f"{prefix}[{i}]")


def records(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in path.read_text().splitlines()]


def main(a: Path, b: Path) -> int:
    same_all = True
    for rel in sorted(p.relative_to(a) for p in a.rglob("*.pt")):
        ta = dict(tensors(torch.load(a / rel, weights_only=True)["nets"]))
        tb = dict(tensors(torch.load(b / rel, weights_only=True)["nets"]))
        same = ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
        same_all &= same
        print(f"{'identical' if same else 'DIFFERENT'}  {rel}  ({len(ta)} tensors)")
    for rel in sorted(p.relative_to(a) for p in a.rglob("metrics.jsonl")):
        ra, rb = records(a / rel), records(b / rel)
        same_all &= ra == rb
        print(f"{'identical' if ra == rb else 'DIFFERENT'}  {rel}  ({len(ra)} records)")
    print("ALL IDENTICAL" if same_all else "SOME DIFFER")
    return 0 if same_all else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
