"""A torch-free description of the model and dataset registries, for the commands that need no
tensors (``disgen --help``, ``models``, ``datasets``, ``train MODEL --help``): each model's
objective, description, presets and options (type, default, help, choices), and each dataset's
description. ``catalog.json`` is generated from the registries; tests/test_catalog.py fails when
it drifts from them, and ``python -m disgen.cli.catalog`` writes it again.

Reading it imports nothing of disgen; writing it imports the registries (and so torch).
"""

from __future__ import annotations

import json
import typing
from dataclasses import MISSING, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

CATALOG_FILE = Path(__file__).with_name("catalog.json")


def tuples(value: Any) -> Any:
    """JSON lists back to the tuples the configs hold (so defaults print as the dataclasses do)."""
    if isinstance(value, list):
        return tuple(tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: tuples(v) for k, v in value.items()}
    return value


@lru_cache(maxsize=1)
def load() -> dict:
    """{"models": {name: {...}}, "datasets": {name: description}} from catalog.json."""
    return tuples(json.loads(CATALOG_FILE.read_text()))


def models() -> dict[str, dict]:
    return load()["models"]


def datasets() -> dict[str, str]:
    return load()["datasets"]


def folder_forms() -> tuple[str, ...]:
    """The forms ``--dataset PATH`` takes besides a registered name (disgen.data.FOLDER_FORMS)."""
    return load()["folder_forms"]


def kind_of(hint) -> str:
    """How a config field's flag parses: "bool" (--x/--no-x), "tuple" (A,B) or "value"."""
    return "bool" if hint is bool else "tuple" if typing.get_origin(hint) is tuple else "value"


def option(f, hint) -> dict:
    """One config field as the CLI shows it: how the flag parses, its default, help and choices."""
    kind = kind_of(hint)
    default = f.default_factory() if f.default is MISSING else f.default
    return {
        "name": f.name,
        "kind": kind,
        "default": default,
        "help": f.metadata.get("help", ""),
        "choices": f.metadata.get("choices"),
    }


def describe() -> dict:
    """The catalog as the registries say it now (imports them, and so torch)."""
    from disgen.data import FOLDER_FORMS, list_datasets
    from disgen.models import get_model, list_models

    described = {}
    for name in list_models():
        spec = get_model(name)
        hints = typing.get_type_hints(spec.config_cls)
        described[name] = {
            "objective": spec.objective,
            "description": spec.description,
            "presets": spec.presets,
            "options": [option(f, hints[f.name]) for f in fields(spec.config_cls)],
        }
    return tuples(
        json.loads(json.dumps({"models": described, "datasets": list_datasets(), "folder_forms": FOLDER_FORMS}))
    )


def write() -> None:
    data = describe()
    CATALOG_FILE.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write()
    print(f"wrote {CATALOG_FILE}")
