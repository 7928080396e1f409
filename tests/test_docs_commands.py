"""Every `disgen` command that README.md and docs/*.md show in a bash block is one disgen accepts:
its command, model, options and their values parse as written (the runs themselves are in
test_readme.py, test_guide_commands.py, test_csv.py, test_rerun.py and the tests of each command). A synopsis line
(``disgen train MODEL [--epochs N] ...``) names only options that exist. A renamed option or a
dropped choice fails here, naming the document and the line."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from disgen.cli import build_parser, check_names
from disgen.errors import DisgenError

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*(\.\.\.)?$")  # MODEL, RUN_DIR, INPUT...


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def command_lines() -> list[tuple[str, str]]:
    """(where, line) for each line of a bash block that runs disgen, continuations joined."""
    found = []
    for doc in documents():
        for block in BLOCK.findall(doc.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                argv = disgen_argv(words)
                if argv is not None:
                    found.append((f"{doc.relative_to(ROOT)}: {line.strip()[:90]}", line))
    return found


def disgen_argv(words: list[str]) -> list[str] | None:
    """The arguments after ``disgen`` (or ``python -m disgen``, ``torchrun ... -m disgen``), past
    any VAR=value prefix; None where the line does not run disgen."""
    for i, word in enumerate(words):
        if word.endswith("/disgen") or word == "disgen":
            if i == 0 or words[i - 1] == "-m" or all("=" in w for w in words[:i]):
                return words[i + 1 :]
    return None


def is_synopsis(argv: list[str]) -> bool:
    return any(w.startswith("[") or "|" in w or PLACEHOLDER.match(w) for w in argv)


LINES = command_lines()


def test_the_docs_show_disgen_commands():
    assert len(LINES) > 40 and any(where.startswith("README.md") for where, _ in LINES)


@pytest.mark.parametrize("where,line", LINES, ids=[w for w, _ in LINES])
def test_a_documented_command_parses_as_written(where, line):
    argv = disgen_argv(shlex.split(line.replace("\\\n", " "), comments=True))
    if is_synopsis(argv):
        model = argv[1] if argv[0] == "train" and not PLACEHOLDER.match(argv[1]) else "cnn-classifier"
        concrete = [argv[0], model] if argv[0] == "train" else [argv[0]]
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            build_parser(concrete).parse_args(concrete + ["--help"])
        known = set(re.findall(r"(--[\w-]+)", out.getvalue()))
        flags = {w.strip("[]").split("=")[0] for w in argv if w.strip("[").startswith("--")}
        flags = {f for f in flags if f != "--"}
        assert flags <= known, f"{where}: unknown option(s) {sorted(flags - known)}"
        return
    err = io.StringIO()
    try:
        check_names(argv)
        with contextlib.redirect_stderr(err):
            build_parser(argv).parse_args(argv)
    except DisgenError as e:
        pytest.fail(f"{where}: {e}")
    except SystemExit as e:
        if e.code:
            pytest.fail(f"{where}: {err.getvalue().strip().splitlines()[-1]}")
