"""Every results table of README.md and docs/*.md, generated from ``benchmarks/results/*.json``.

A table lives between marker comments in a Markdown file:

    <!-- table: NAME -->
    | ... the generated table ... |
    <!-- /table -->

``python benchmarks/tables.py`` rewrites each such table from its results file(s), and
``--check`` fails (exit 1), naming each table, when any differs from what the files give, when a
marker names no known table, or when a results file is missing. No figure in a table is typed by
hand: each is read from a results file, and each row names the commit it was measured at.
The table functions live in one module per family (``tables_*.py``, ``mnist_tables.py``) on the
shared cells of ``table_defs.py``; this file finds the markers and compares.

    python benchmarks/tables.py [--check] [--results DIR] [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import mnist_tables  # noqa: E402, F401  (each module registers the tables of its family)
import tables_aae  # noqa: E402, F401
import tables_budget  # noqa: E402, F401
import tables_data  # noqa: E402, F401
import tables_gan  # noqa: E402, F401
import tables_gpu  # noqa: E402, F401
import tables_presets  # noqa: E402, F401
import tables_speed  # noqa: E402, F401
from table_defs import TABLES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"(<!-- table: ([\w.-]+) -->\n)(.*?)(<!-- /table -->)", re.S)


class Results:
    """The results files of one folder, read once each; a missing one is named in the error."""

    def __init__(self, folder: Path):
        self.folder, self.cache = Path(folder), {}

    def __call__(self, name: str) -> dict:
        if name not in self.cache:
            path = self.folder / f"{name}.json"
            try:
                self.cache[name] = json.loads(path.read_text())
            except FileNotFoundError:
                raise LookupError(f"{path} does not exist: run the benchmark that writes it") from None
            except json.JSONDecodeError as err:
                raise LookupError(f"{path} is not valid JSON ({err})") from None
        return self.cache[name]


def documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def regenerate(root: Path, results: Results) -> tuple[dict[Path, str], list[str]]:
    """The new text of every document, and the problems found (unknown names, missing files)."""
    texts, problems = {}, []
    for doc in documents(root):
        if not doc.exists():
            continue
        text = doc.read_text()

        def fill(m: re.Match) -> str:
            name = m.group(2)
            if name not in TABLES:
                problems.append(f"{doc.relative_to(root)}: unknown table {name!r} (known: {', '.join(TABLES)})")
                return m.group(0)
            try:
                body = TABLES[name](results).rstrip("\n") + "\n"
            except (LookupError, KeyError, TypeError, ValueError) as err:
                problems.append(f"{doc.relative_to(root)}: table {name!r}: {type(err).__name__}: {err}")
                return m.group(0)
            return m.group(1) + body + m.group(4)

        texts[doc] = MARKER.sub(fill, text)
    return texts, problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="fail if any table differs from its results")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--root", type=Path, default=ROOT, help="the folder holding README.md and docs/")
    args = p.parse_args(argv)
    texts, problems = regenerate(args.root, Results(args.results))
    stale = [doc for doc, text in texts.items() if text != doc.read_text()]
    if args.check:
        for doc in stale:
            names = [
                m.group(2)
                for m, n in zip(MARKER.finditer(doc.read_text()), MARKER.finditer(texts[doc]))
                if m.group(0) != n.group(0)
            ]
            problems.append(
                f"{doc.relative_to(args.root)}: table(s) {', '.join(names)} differ from "
                f"{args.results}: run python benchmarks/tables.py"
            )
        for line in problems:
            print(f"tables: {line}", file=sys.stderr)
        return 1 if problems else 0
    for doc in stale:
        doc.write_text(texts[doc])
        print(f"tables: rewrote {doc.relative_to(args.root)}", file=sys.stderr)
    for line in problems:
        print(f"tables: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
