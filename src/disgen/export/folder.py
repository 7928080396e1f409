"""The folder an export writes into, and the manifest that marks it as one.

``OUT/disgen-export.json`` lists the files the export wrote. It is written before any of them (so
an export killed half-way leaves a folder the next export may take over) and again at the end,
with the checks. An export writes into a new folder, an empty one, or a previous export's folder,
where it replaces the files that export wrote and leaves every other file alone; it refuses a
folder holding anything else, and a file of the user's that it would overwrite.

May import: files, config, errors.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from disgen.config import check_text
from disgen.errors import DisgenError
from disgen.files import remove_stale_temps, write_json

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


def claim(out: Path, names: list[str]) -> list[str]:
    """Check that an export may write ``names`` into ``out`` and make the folder; return the files
    of a previous export there that this one does not write again (to remove once it is done)."""
    check_text("--out", str(out))
    if out.exists() and not out.is_dir():
        raise DisgenError(f"--out {out} is a file: give a folder (an export writes its files and a README.md)")
    if out.is_dir():
        remove_stale_temps(out)  # an earlier export killed mid-write
        previous = read_manifest(out)
        present = sorted(p.name for p in out.iterdir())
        if previous is None and present:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            why = "its manifest is damaged" if MANIFEST in present else "it holds other files"
            raise DisgenError(
                f"--out {out} is not a disgen export folder ({why}: {shown}); nothing was written. "
                "Choose a new or empty folder"
            )
        ours = set(previous["files"]) | {MANIFEST} if previous else set()
        theirs = sorted(n for n in names if (out / n).exists() and n not in ours)
        if theirs:
            raise DisgenError(
                f"--out {out}: {', '.join(theirs)} there is not a file of the previous export; nothing was "
                "written. Move it away or choose another --out"
            )
        return sorted(ours - set(names) - {MANIFEST})
    try:
        out.mkdir(parents=True)
    except OSError as err:
        raise DisgenError(f"--out {out}: cannot make the folder: {err.strerror or err}; choose another --out") from None
    return []


def write_manifest(out: Path, record: dict) -> None:
    write_json(out / MANIFEST, {"kind": KIND, **record})


def remove(out: Path, names: list[str]) -> None:
    """Delete files of an export (never anything the manifest does not list)."""
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
