"""A run's records: ``metrics.jsonl`` (one line per completed epoch, then the final test record)
and ``eval.json`` (every evaluation of the run), read back line by line within bounds.

May import: config, files, errors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

from disgen.config import read_json
from disgen.errors import DisgenError
from disgen.files import atomic_write, write_error, write_json

MAX_LINE = 16 << 10  # bytes of one metrics record; disgen's are a few hundred
MAX_RECORDS, MAX_KEPT_BYTES = 100_000, 32 << 20  # kept in memory; past either, every other record is dropped


def _records(run_dir: Path, holding: bytes = b"") -> Iterator[tuple[dict, int]]:
    """Every well-formed record of metrics.jsonl (whose line holds ``holding``) and its size in
    bytes, read a line at a time (a torn last line, and a line over MAX_LINE, are dropped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return
    with open(path, "rb") as f:
        while line := f.readline(MAX_LINE + 1):
            if len(line) > MAX_LINE:  # no record of disgen's: skip the rest of the line
                while line and not line.endswith(b"\n"):
                    line = f.readline(MAX_LINE)
                continue
            if holding not in line:
                continue
            try:
                rec = json.loads(line.decode("utf-8", errors="replace"))
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(rec, dict) and isinstance(rec.get("epoch", 0), (int, float)):
                yield rec, len(line)


def read_metrics(run_dir: Path, upto: int | None = None) -> list[dict]:
    """Epoch records of metrics.jsonl (those with epoch <= ``upto``), without the final test record.

    At most MAX_RECORDS records and MAX_KEPT_BYTES of their text are kept: a file holding more (no
    run of disgen's writes 100,000 epochs; a damaged or crafted file may hold millions) is thinned
    evenly, every other record dropped as often as needed, and a warning says so. Memory stays
    bounded whatever the file holds."""
    kept: list[tuple[dict, int]] = []
    stride, seen, size = 1, 0, 0
    for rec, n in _records(run_dir):
        if rec.get("final") or (upto is not None and rec.get("epoch", 0) > upto):
            continue
        if seen % stride == 0:
            kept.append((rec, n))
            size += n
            while len(kept) > MAX_RECORDS or size > MAX_KEPT_BYTES:
                kept, stride = kept[::2], stride * 2
                size = sum(n for _, n in kept)
        seen += 1
    if stride > 1:
        print(
            f"warning: {Path(run_dir) / 'metrics.jsonl'} holds {seen:,} epoch records, more than are read "
            f"({MAX_RECORDS:,}, {MAX_KEPT_BYTES >> 20} MiB): every {stride}th is kept ({len(kept):,})",
            file=sys.stderr,
        )
    return [rec for rec, _ in kept]


def read_final(run_dir: Path) -> dict | None:
    """The final record of metrics.jsonl: the test split's metrics after the last epoch (None if
    the run has not finished, or has no test split)."""
    final = None
    for rec, _ in _records(run_dir, b'"final"'):
        if rec.get("final"):
            final = rec
    return final


EVAL_FILE = "eval.json"


def read_evals(run_dir: Path) -> list[dict]:
    """The evaluations kept in eval.json, one per (dataset, split, checkpoint)."""
    path = Path(run_dir) / EVAL_FILE
    try:
        data = read_json(path, "the run's evaluations")
    except DisgenError:
        return []  # damaged: the next evaluation writes it afresh
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        return [r for r in data["results"] if isinstance(r, dict)]
    return [data] if isinstance(data, dict) and "dataset" in data else []  # one result (older disgen)


def record_eval(run_dir: Path, result: dict) -> list[dict]:
    """Keep ``result`` in eval.json, replacing an earlier one of the same dataset, split and
    checkpoint (and nothing else), and return them all."""
    key = lambda r: (r.get("dataset"), r.get("split", "test"), r.get("checkpoint"))
    kept = [r for r in read_evals(run_dir) if key(r) != key(result)] + [result]
    write_json(Path(run_dir) / EVAL_FILE, {"results": kept})
    return kept


def write_metrics(run_dir: Path, records: list[dict]) -> None:
    path = Path(run_dir) / "metrics.jsonl"
    try:
        atomic_write(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in records).encode()))
    except OSError as err:
        raise write_error(path, err) from None


def append_metrics(run_dir: Path, record: dict) -> None:
    path = Path(run_dir) / "metrics.jsonl"
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as err:
        raise write_error(path, err) from None
