"""The folder an export writes into, and the manifest that marks it as one.

``OUT/disgen-export.json`` lists the files the export wrote and the run they came from. It is
written before any of them (so an export killed half-way leaves a folder the next export may take
over) and again at the end, with the checks. An export writes into a new folder, an empty one, or
a previous export's folder of the same run, where it replaces the files that export wrote and
leaves every other file alone. It refuses, before touching anything, a folder holding anything
else (a hidden file included), a file of the user's that it would overwrite, a previous export of
another run (unless ``--force``), and an ``--out`` named like a file (``model.onnx``).

May import: files, config, errors.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from disgen.config import check_text
from disgen.errors import DisgenError
from disgen.files import write_json

MANIFEST = "disgen-export.json"
KIND = "disgen-export"


def read_manifest(out: Path) -> dict | None:
    """The manifest of a previous export in ``out``, or None where there is none or it is damaged."""
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    ok = data.get("kind") == KIND if isinstance(data, dict) else False
    if not ok or not isinstance(files, list) or not all(isinstance(f, str) and Path(f).name == f for f in files):
        return None
    return data


FILE_SUFFIXES = (".onnx", ".pt", ".pth", ".safetensors", ".md", ".json", ".zip")


def claim(out: Path, names: list[str], run_dir: Path, force: bool = False) -> tuple[list[str], bool]:
    """Check that an export of ``run_dir`` may write ``names`` into ``out`` and make the folder;
    return the files of a previous export there that this one does not write again (to remove
    once it is done), and whether this export made the folder."""
    check_text("--out", str(out))
    if out.exists() and not out.is_dir():
        raise DisgenError(f"--out {out} is a file: give a folder (an export writes its files and a README.md)")
    if not out.exists() and out.suffix.lower() in FILE_SUFFIXES:
        raise DisgenError(
            f"--out {out} names a file, but an export writes a folder (its files, a README.md and "
            f"{MANIFEST}): give a folder, e.g. --out {out.with_suffix('')}"
        )
    if not out.is_dir():
        try:
            out.mkdir(parents=True)
        except OSError as err:
            raise DisgenError(
                f"--out {out}: cannot make the folder: {err.strerror or err}; choose another --out"
            ) from None
        return [], True
    previous = read_manifest(out)
    ours = set(previous["files"]) | {MANIFEST} if previous else {MANIFEST}
    present = sorted(p.name for p in out.iterdir() if not is_temp_of(p.name, ours))
    if previous is None and present:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        why = "its manifest is damaged" if MANIFEST in present else "it holds other files"
        raise DisgenError(
            f"--out {out} is not a disgen export folder ({why}: {shown}); nothing was written. "
            "Choose a new or empty folder"
        )
    theirs = sorted(n for n in names if (out / n).exists() and n not in ours)
    if theirs:
        raise DisgenError(
            f"--out {out}: {', '.join(theirs)} there is not a file of the previous export; nothing was "
            "written. Move it away or choose another --out"
        )
    other = previous.get("run_dir") if previous else None
    if isinstance(other, str) and not same_path(other, run_dir) and not force:
        raise DisgenError(
            f"--out {out} holds an export of another run ({other}, format {previous.get('format', '?')}); "
            "nothing was written: choose another --out, or add --force to replace it"
        )
    for temp in [p for p in out.iterdir() if is_temp_of(p.name, ours | set(names))]:  # an export killed mid-write
        with contextlib.suppress(OSError):
            temp.unlink()
    return sorted(ours - set(names) - {MANIFEST}), False


def is_temp_of(name: str, files: set[str]) -> bool:
    """Whether ``name`` is a temporary file that :func:`disgen.files.atomic_write` made for one of ``files``."""
    return name.endswith(".tmp") and any(name.startswith(f".{f}.") for f in files)


def same_path(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


def abandon(out: Path, names: list[str], made: bool) -> None:
    """After a failed export: remove the files it wrote, and the folder too where it made it."""
    remove(out, names)
    if made:
        remove(out, [MANIFEST])
        for temp in out.iterdir() if out.is_dir() else []:
            if is_temp_of(temp.name, set(names) | {MANIFEST}):
                with contextlib.suppress(OSError):
                    temp.unlink()
        with contextlib.suppress(OSError):
            out.rmdir()


def write_manifest(out: Path, record: dict) -> None:
    write_json(out / MANIFEST, {"kind": KIND, **record})


def remove(out: Path, names: list[str]) -> None:
    """Delete files of an export (never anything the manifest does not list)."""
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
