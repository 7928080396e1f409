"""Write the table of faults the tests tried into docs/reliability.md.

    .venv/bin/pytest -q tests/test_hardening.py tests/test_checkpoints.py tests/test_hostile_inputs.py \
        tests/test_fuzz.py tests/test_serve_load.py
    .venv/bin/python scripts/reliability_table.py   # benchmarks/results/reliability.json -> docs/reliability.md

The tests record each fault they tried (what, how often, what happened); this script only
formats those counts, between the markers in docs/reliability.md, and adds the git commit they
were measured at. ``--check`` exits 1 if the document's table differs from the counts.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COUNTS = ROOT / "benchmarks" / "results" / "reliability.json"
DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- reliability-table:start -->", "<!-- reliability-table:end -->"
SECTIONS = {
    "crash": "Crash safety", "checksum": "Damaged checkpoints", "disk": "Full disk",
    "divergence": "Divergence", "loading": "Safe loading", "inputs": "Hostile inputs", "server": "Web server",
    "determinism": "Determinism",
}


def commit() -> str:
    """The checkout's commit, noting uncommitted changes (the counts were made with them)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    try:
        dirty = git("status", "--porcelain", "--untracked-files=no").strip()
        return git("rev-parse", "--short", "HEAD").strip() + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(counts: dict) -> str:
    rows = sorted(counts.items(), key=lambda kv: (list(SECTIONS).index(kv[1]["section"]), kv[0]))
    lines = ["| Area | Fault tried | Times | What happened (times) | Test |", "|---|---|---:|---|---|"]
    for fault, row in rows:
        outcomes = "; ".join(f"{what} ({n})" for what, n in row["outcomes"].items())
        lines.append(f"| {SECTIONS[row['section']]} | {fault} | {row['tries']} | {outcomes} | "
                     f"`{row['test']}` |")
    total = sum(row["tries"] for row in counts.values())
    lines.append("")
    lines.append(f"{len(counts)} faults, {total} tries in all; counted by the tests at commit {commit()}.")
    return "\n".join(lines).replace("\x00", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if out of date")
    args = parser.parse_args(argv)
    if not COUNTS.is_file():
        print(f"{COUNTS} does not exist: run tests/test_hardening.py, tests/test_checkpoints.py, "
              "tests/test_hostile_inputs.py, tests/test_fuzz.py and tests/test_serve_load.py first", file=sys.stderr)
        return 2
    doc = DOC.read_text()
    if START not in doc or END not in doc:
        print(f"{DOC} lacks the markers {START} and {END}", file=sys.stderr)
        return 2
    head, rest = doc.split(START, 1)
    old, tail = rest.split(END, 1)
    new = table(json.loads(COUNTS.read_text()))
    if args.check:
        same = old.strip().rsplit("counted by", 1)[0] == new.strip().rsplit("counted by", 1)[0]
        print("up to date" if same else f"{DOC} is out of date: run scripts/reliability_table.py")
        return 0 if same else 1
    DOC.write_text(f"{head}{START}\n{new}\n{END}{tail}")
    print(f"wrote {len(json.loads(COUNTS.read_text()))} rows to {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
