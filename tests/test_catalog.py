"""The torch-free catalog of models and datasets (disgen.cli.catalog) against the registries, the help
every model option gets from it, and the commands that must start without importing torch."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest
from conftest import SUBPROCESS_ENV

from disgen.cli import catalog, main
from disgen.models import get_model, list_models


def test_catalog_matches_the_registries():
    """catalog.json is what `disgen models`, `datasets` and `train MODEL --help` read; it must say
    what the registries say (regenerate it with `python -m disgen.cli.catalog`)."""
    assert catalog.load() == catalog.describe(), "catalog.json is stale: run `python -m disgen.cli.catalog`"


def option_lines(text: str) -> dict[str, str]:
    """``--flag`` -> its help text, from argparse's --help output (continuation lines joined)."""
    lines, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^  (--[\w-]+)(?:, --no-[\w-]+)?(?: (\{[^}]*\}|[A-Z0-9_,]+))?(?:\s{2,}(.*))?$", line)
        if m:
            current = m.group(1)
            lines[current] = {"metavar": m.group(2) or "", "help": m.group(3) or ""}
        elif current and line.startswith(" " * 10):
            lines[current]["help"] += " " + line.strip()
        else:
            current = None
    return lines


@pytest.mark.parametrize("model", list_models())
def test_every_model_option_has_help_and_its_choices(capsys, model):
    with pytest.raises(SystemExit):
        main(["train", model, "--help"])
    shown = option_lines(capsys.readouterr().out)
    spec = get_model(model)
    for f in dataclasses.fields(spec.config_cls):
        flag = "--" + f.name.replace("_", "-")
        assert flag in shown, (model, flag)
        text = shown[flag]["help"]
        assert text and not text.startswith("default"), (model, flag, text)  # its own words, then the default
        allowed = f.metadata.get("choices")
        if allowed:
            assert shown[flag]["metavar"] == "{" + ",".join(allowed) + "}", (model, flag, shown[flag])
            for bad in ("nope",):
                with pytest.raises(Exception, match="choose one of " + ", ".join(allowed)):
                    spec.model_config({f.name: bad})
    presets = shown["--preset"]
    assert presets["metavar"] == "{" + ",".join(spec.presets) + "}"
    assert f"{model}'s presets: {', '.join(spec.presets)}" in presets["help"]
    assert "kaggle-organize" in shown["--dataset"]["help"] and "class" in shown["--dataset"]["help"]


def test_string_options_with_a_fixed_set_declare_it():
    """An option read by ``==`` against names (act, arch, mode...) lists them: every str option of
    a model has choices, except free text (a weights file)."""
    free_text = {("resnet-transfer", "weights")}
    for model in list_models():
        for f in dataclasses.fields(get_model(model).config_cls):
            if f.type in ("str", str) and (model, f.name) not in free_text:
                assert f.metadata.get("choices"), (model, f.name)


STARTUP = [["--help"], ["models"], ["datasets"], ["train", "cnn-classifier", "--help"], ["train", "aae", "--help"]]


@pytest.mark.parametrize("args", STARTUP, ids=" ".join)
def test_commands_that_need_no_tensors_do_not_import_torch(args):
    code = (
        "import sys\nfrom disgen.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'disgen.models' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False False", (args, done.stdout[-300:])
