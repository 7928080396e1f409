"""The faults the hardening tests try, counted: what each tried, how often, and what happened.

Runs the test modules that attack disgen (crash safety, damaged and crafted checkpoints, hostile
inputs, fuzzing, the web server under load, the decoded cache and its workers, the user's files,
hostile values; the slow tests included) with ``DISGEN_RELIABILITY``
set, so that each module's
``reliability`` fixture records its faults, and saves the counts with the commit, command and
machine to ``benchmarks/results/reliability.json``. ``python benchmarks/tables.py`` then writes
docs/reliability.md's table from it. A plain ``pytest`` run records nothing and writes no file.

    python benchmarks/bench_reliability.py [pytest options, e.g. -x]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "tests/test_hardening.py",
    "tests/test_checkpoints.py",
    "tests/test_hostile_inputs.py",
    "tests/test_fuzz.py",
    "tests/test_serve_load.py",
    "tests/test_decode_safety.py",
    "tests/test_user_files.py",
    "tests/test_hostile_values.py",
]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        counts = Path(tmp) / "reliability.json"
        env = {**os.environ, "DISGEN_RELIABILITY": str(counts)}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-m", "", "-p", "no:cacheprovider", *MODULES, *sys.argv[1:]],
            cwd=ROOT,
            env=env,
        )
        if done.returncode != 0:
            print("the tests failed: no counts saved (a fault that was not handled is no figure)", file=sys.stderr)
            return done.returncode
        faults = json.loads(counts.read_text())
    path = save(
        "reliability", {"modules": MODULES, "faults": faults, "tries": sum(f["tries"] for f in faults.values())}
    )
    print(f"{len(faults)} faults, {sum(f['tries'] for f in faults.values())} tries; saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
