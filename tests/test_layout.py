"""The layout's checks: the import contract in pyproject.toml holds, fails on an upward import or a
cycle added to a copy of the package, no module imports another in a cycle, and no private torch
API is called."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "disgen"
LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(src_parent: Path) -> subprocess.CompletedProcess:
    """import-linter with the project's contracts, on the package found under ``src_parent``."""
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=src_parent,
        env={"PYTHONPATH": str(src_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contract_holds():
    out = lint_imports(SRC.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout


@pytest.fixture
def copy_of_disgen(tmp_path) -> Path:
    shutil.copytree(SRC, tmp_path / "disgen", ignore=shutil.ignore_patterns("__pycache__", "*.gz", "static"))
    return tmp_path


def add_import(package: Path, module: str, line: str) -> None:
    path = package / "disgen" / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


@pytest.mark.parametrize(
    "module,line,broken",
    [
        ("data/idx", "from disgen.cli import main", "disgen.data is not allowed to import disgen.cli"),
        (
            "models/mlp_classifier",
            "from disgen.objectives import minimize",
            "disgen.models is not allowed to import disgen.objectives",
        ),
        (
            "objectives/classify",
            "from disgen.training.trainer import Trainer",
            "disgen.objectives is not allowed to import disgen.training",
        ),
    ],
)
def test_the_contract_fails_on_an_upward_import(copy_of_disgen, module, line, broken):
    add_import(copy_of_disgen, module, line)
    out = lint_imports(copy_of_disgen)
    assert out.returncode != 0
    assert broken in out.stdout, out.stdout[-3000:]


def test_the_contract_fails_on_a_cycle_within_a_package(copy_of_disgen):
    add_import(copy_of_disgen, "data/idx", "from disgen.data.images import IMAGE_SUFFIXES")  # images imports idx
    out = lint_imports(copy_of_disgen)
    assert out.returncode != 0
    assert "no import cycles between the modules of a package BROKEN" in out.stdout, out.stdout[-3000:]


PRIVATE = re.compile(r"\b(?:torch|nn|F)(?:\.\w+)*\._[A-Za-z]\w*")


def test_no_private_torch_api_in_the_library():
    found = [
        f"{p.relative_to(SRC)}:{i}: {m.group(0)}"
        for p in sorted(SRC.rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        for m in PRIVATE.finditer(line)
    ]
    assert found == []
    assert PRIVATE.search("torch._fused_adam_(p)") and PRIVATE.search("nn.modules.conv._ConvNd")


def test_each_package_says_what_it_may_import():
    for init in sorted(SRC.glob("*/__init__.py")):
        doc = init.read_text().split('"""')[1]
        assert "May import" in doc, f"{init} has no 'May import' line"


def test_ci_runs_the_readmes_two_set_up_commands_in_its_order():
    """.ci/run runs exactly the README's set-up commands (`make demo`, then `make test`) on the
    clean checkout, so a test that breaks when the demo ran first fails CI; `make demo` installs
    disgen without the dev extras, which `make test` adds."""
    readme = (ROOT / "README.md").read_text()
    quickstart = readme[readme.index("## Install") : readme.index("**On a GPU**")]
    shown = re.findall(r"^(make \w+)", quickstart, re.M)
    assert shown == ["make demo", "make test"]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    ran = [line for line in ci if line.startswith("make ")]
    assert ran[:2] == shown and ran[2:] == ["make test-slow"]
    wheels = [line for line in ci if line.startswith("DISGEN_") and "_WHEEL=" in line]
    assert wheels and all('="$PWD/' in line for line in wheels)  # the tests run in a folder of their own
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: \$\(STAMP\)$", makefile, re.M) and re.search(r"^lint: \$\(DEV\)$", makefile, re.M)
    install = makefile[makefile.index("$(STAMP): ") : makefile.index("$(DEV): ")]
    assert "-e ." in install and "[dev]" not in install
