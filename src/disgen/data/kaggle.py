"""Kaggle's Dog Breed Identification layout, organised as seed 003 (d2l) does, and read back.

    DATA_DIR/labels.csv (id,breed)  DATA_DIR/train/ID.jpg  DATA_DIR/test/ID.jpg  [sample_submission.csv]
      --> OUT/train/BREED/  OUT/valid/BREED/  OUT/train_valid/BREED/  OUT/test/unknown/

``disgen kaggle-organize DATA_DIR --out OUT`` links the files (hard links; symlinks across file
systems) instead of copying them. ``OUT/manifest.json`` lists every link it made; a re-run removes
only those, and an ``OUT`` holding anything else (a user's file, a folder it did not make) is
refused before anything is touched, so it never deletes what it did not write. The split is
stratified like d2l's ``reorg_train_valid``: every
breed gives ``max(1, floor(n_min * valid_ratio))`` images to ``valid/``, where ``n_min`` is the
smallest breed's count, chosen by a seeded shuffle.

``--dataset OUT`` trains on ``train/`` with ``valid/`` as its validation split (evaluated each
epoch; best.pt is the best of them); ``--dataset OUT/train_valid`` trains on every labelled image,
the final run once settings are chosen (use ``--val-split 0``: ``valid/`` is part of its training
data, so the dataset has no validation split of its own). The competition's test images have no
labels, so neither has a test split: Kaggle scores ``disgen predict --format kaggle``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import sys
from collections import Counter
from pathlib import Path

import torch

from disgen.data.dataset import ImageSplit, TensorDataset
from disgen.data.images import IMAGE_SUFFIXES
from disgen.errors import DisgenError

SPLITS = ("train", "valid", "train_valid", "test")


def read_labels(path: Path) -> dict[str, str]:
    """id -> breed from a labels.csv with header ``id,breed`` (UTF-8, a byte-order mark and
    Windows line ends allowed; blank lines skipped). Breeds become folder names, so one that
    is not a plain name (``..``, ``a/b``) is refused."""
    if not path.is_file():
        raise DisgenError(f"{path} does not exist: the competition's labels.csv (id,breed) belongs there")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [[c.strip() for c in row] for row in csv.reader(f)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise DisgenError(
            f"{path} is not a readable UTF-8 CSV file ({err}): save it as UTF-8 text with the header id,breed"
        ) from None
    if not rows or [c.lower() for c in rows[0][:2]] != ["id", "breed"]:
        raise DisgenError(f"{path} must start with the header id,breed (found {rows[0][:5] if rows else 'nothing'})")
    labels: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(row):
            continue
        if len(row) < 2 or not row[0] or not row[1]:
            raise DisgenError(f"{path} line {line}: expected id,breed, found {row[:5]}")
        for what, name in (("id", row[0]), ("breed", row[1])):
            if not plain_name(name):
                raise DisgenError(
                    f"{path} line {line}: {what} {name[:60]!r}{'...' if len(name) > 60 else ''} cannot be a file "
                    "or folder name (no '/', '\\', NUL or leading '.', at most 255 bytes)"
                )
        if row[0] in labels:
            raise DisgenError(f"{path} line {line}: id {row[0]} is labelled twice")
        labels[row[0]] = row[1]
    return labels


def plain_name(name: str) -> bool:
    """A name safe as one path component: it stays inside the folder it is joined to, and a file
    system takes it (at most 255 bytes)."""
    return (
        bool(name)
        and not name.startswith(".")
        and not any(c in name for c in "/\\\0")
        and len(name.encode("utf-8", "surrogatepass")) <= 255
    )


def check_breeds(labels: dict[str, str], sample: Path) -> None:
    """The breeds of labels.csv must be the class columns of sample_submission.csv, if present."""
    if not sample.is_file():
        return
    columns = set(read_sample(sample)[0])
    unknown, unused = sorted(set(labels.values()) - columns), sorted(columns - set(labels.values()))
    if unknown:
        raise DisgenError(
            f"breed(s) {listing(unknown)} in labels.csv are not columns of {sample}: check "
            "their spelling against the competition's class list"
        )
    if unused:
        raise DisgenError(
            f"{sample} has class column(s) {listing(unused)} with no image in labels.csv: "
            "a model trained on it could not fill them"
        )


def images_by_id(folder: Path) -> dict[str, Path]:
    """id (file name without suffix) -> image file in ``folder``."""
    if not folder.is_dir():
        raise DisgenError(f"{folder} does not exist: the competition's {folder.name}/ folder of images belongs there")
    return {
        p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    }


def listing(ids: list[str], limit: int = 5) -> str:
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def plan_split(labels: dict[str, str], valid_ratio: float, seed: int) -> dict[str, list[str]]:
    """ids of ``train`` and ``valid``: the same number of each breed in valid, at least one."""
    by_breed: dict[str, list[str]] = {}
    for i, breed in sorted(labels.items()):
        by_breed.setdefault(breed, []).append(i)
    rare = [b for b, ids in by_breed.items() if len(ids) < 2]
    if rare:
        raise DisgenError(
            f"breed(s) {listing(sorted(rare))} have a single labelled image: each needs "
            "at least 2, one for train/ and one for valid/"
        )
    n_min = min(Counter(labels.values()).values())
    per_breed = max(1, math.floor(n_min * valid_ratio))
    rng = random.Random(seed)
    split: dict[str, list[str]] = {"train": [], "valid": []}
    for breed in sorted(by_breed):
        ids = by_breed[breed][:]
        rng.shuffle(ids)
        split["valid"] += ids[:per_breed]
        split["train"] += ids[per_breed:]
    return split


def link(src: Path, dst: Path) -> str:
    """Hard-link ``src`` to ``dst`` (symlink across file systems); returns the kind made. An
    existing ``dst`` is one of this command's own links (:func:`check_out` checked it)."""
    if dst.is_symlink() or dst.exists():
        if dst.exists() and os.path.samefile(src, dst):
            return "kept"
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
        return "hard"
    except OSError:  # EXDEV across file systems, or a file system without hard links
        os.symlink(src.resolve(), dst)
        return "sym"


def organize(data_dir: str | Path, out: str | Path, valid_ratio: float = 0.1, seed: int = 0) -> dict:
    """Write ``out/{train,valid,train_valid}/BREED/`` and ``out/test/unknown/`` as links to the
    competition's files; returns the counts written to ``out/organize.json``."""
    data_dir, out = Path(data_dir).expanduser(), Path(out).expanduser()
    if not 0 < valid_ratio < 1:
        raise DisgenError(f"--valid-ratio {valid_ratio}: use a fraction between 0 and 1, e.g. 0.1")
    if out.resolve() == data_dir.resolve():
        raise DisgenError(f"--out {out} is DATA_DIR itself: choose a new folder, e.g. {data_dir}/organized")
    labels = read_labels(data_dir / "labels.csv")
    check_breeds(labels, data_dir / "sample_submission.csv")
    train_files, test_files = images_by_id(data_dir / "train"), images_by_id(data_dir / "test")
    unlabelled = sorted(set(train_files) - set(labels))
    missing = sorted(set(labels) - set(train_files))
    if missing:
        raise DisgenError(
            f"{len(missing)} id(s) in {data_dir / 'labels.csv'} have no image in "
            f"{data_dir / 'train'}: {listing(missing)}"
        )
    if unlabelled:
        raise DisgenError(
            f"{len(unlabelled)} image(s) in {data_dir / 'train'} have no row in labels.csv: {listing(unlabelled)}"
        )
    if not test_files:
        raise DisgenError(f"{data_dir / 'test'} holds no images")
    split = plan_split(labels, valid_ratio, seed)
    plan: dict[str, Path] = {}  # link, relative to out -> the competition's file
    for name, ids in (("train", split["train"]), ("valid", split["valid"]), ("train_valid", sorted(labels))):
        for i in ids:
            plan[f"{name}/{labels[i]}/{train_files[i].name}"] = train_files[i].resolve()
    for i, path in test_files.items():
        plan[f"test/unknown/{path.name}"] = path.resolve()
    from disgen.config import check_text

    for rel in plan:  # every path this writes, before anything is written
        check_text("--out", str(out / rel))
    made = check_out(out)
    # Listed before they exist: links of a run killed half-way are still known to be ours.
    write_manifest(out, {**made, **{rel: [str(src)] for rel, src in plan.items()}})
    for rel in sorted(set(made) - set(plan)):  # an earlier split's links: never two splits mixed
        (out / rel).unlink(missing_ok=True)
    kinds = Counter(link(src, out / rel) for rel, src in plan.items())
    remove_empty_folders(out, {str(Path(rel).parent) for rel in plan})
    write_manifest(out, {rel: [str(src), *inode(out / rel)] for rel, src in plan.items()})
    summary = {
        "data_dir": str(data_dir.resolve()),
        "valid_ratio": valid_ratio,
        "seed": seed,
        "breeds": len(set(labels.values())),
        "train": len(split["train"]),
        "valid": len(split["valid"]),
        "train_valid": len(labels),
        "test": len(test_files),
        "links": dict(kinds),
    }
    write_file(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


# -- what OUT may hold: only this command's own links --------------------------------------------
MANIFEST, SUMMARY = "manifest.json", "organize.json"
MANIFEST_FORMAT = "disgen-kaggle-organize"


def inode(path: Path) -> list[int]:
    """(device, inode) of a link (a hard link's is its source's): a file put in its place has others."""
    st = path.lstat()
    return [st.st_dev, st.st_ino]


def is_ours(path: Path, entry: list) -> bool:
    """Whether ``path`` is still the link the manifest ``entry`` ([source, dev, inode]) made."""
    if path.is_symlink():
        return os.readlink(path) == entry[0]
    if len(entry) == 3 and inode(path) == entry[1:]:
        return True
    try:  # listed before it was made (a run killed half-way): a hard link to its source
        return Path(entry[0]).exists() and os.path.samefile(path, entry[0])
    except OSError:
        return False


def read_manifest(out: Path) -> dict[str, list]:
    path = out / MANIFEST
    if not path.exists():
        return {}
    from disgen.config import read_json

    doc = read_json(path, "kaggle-organize's manifest", max_bytes=1 << 30)
    links = doc.get("links") if isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT else None
    if not isinstance(links, dict) or not all(
        isinstance(e, list) and e and isinstance(e[0], str) for e in links.values()
    ):
        raise DisgenError(
            f"{path} is damaged or not kaggle-organize's list of the links it made, so "
            f"nothing in {out} can be told apart from your own files: choose a new --out "
            "folder (or delete this one yourself)"
        )
    return links


def check_out(out: Path) -> dict[str, list]:
    """The links an earlier run made in ``out`` (from its manifest), after checking that ``out``
    holds nothing else: a user's file or folder there is refused, never deleted or overwritten."""
    if out.exists() and not out.is_dir():
        raise DisgenError(f"--out {out} is a file: choose a folder (it is created if missing)")
    made = read_manifest(out) if out.is_dir() else {}
    own_files = (MANIFEST, SUMMARY) if (out / MANIFEST).is_file() else ()
    folders = {str(p) for rel in made for p in Path(rel).parents if str(p) != "."}
    foreign = []
    for root, dirs, files in os.walk(out) if out.is_dir() else []:
        for name in dirs + files:
            path = Path(root) / name
            rel = str(path.relative_to(out))
            if rel in own_files and not path.is_symlink():
                continue
            if name in dirs and rel in folders and not path.is_symlink():
                continue
            if name in files and rel in made and is_ours(path, made[rel]):
                continue
            foreign.append(rel)
        dirs[:] = [d for d in dirs if str((Path(root) / d).relative_to(out)) in folders]
    if foreign:
        note = (
            ""
            if own_files
            else f" (it has no {MANIFEST}, the list of the links kaggle-organize made; "
            "one written by a disgen without it is deleted by hand)"
        )
        raise DisgenError(
            f"--out {out} holds {len(foreign)} file(s) or folder(s) that kaggle-organize did not "
            f"write: {listing(sorted(foreign))}{note}; it never deletes or overwrites what it did "
            "not make: move them out, or choose a new --out folder"
        )
    return made


def remove_empty_folders(out: Path, keep: set[str]) -> None:
    """The folders an earlier split needed and this one does not (e.g. a breed renamed), if empty."""
    for name in SPLITS:
        for path in sorted((out / name).rglob("*"), reverse=True) if (out / name).is_dir() else []:
            rel = str(path.relative_to(out))
            if path.is_dir() and not path.is_symlink() and rel not in keep and not any(path.iterdir()):
                path.rmdir()


def write_manifest(out: Path, links: dict[str, list]) -> None:
    write_file(out / MANIFEST, json.dumps({"format": MANIFEST_FORMAT, "links": links}) + "\n")


def write_file(path: Path, text: str) -> None:
    from disgen.files import atomic_write

    try:
        atomic_write(path, lambda f: f.write(text.encode()))
    except OSError as err:
        raise DisgenError(
            f"could not write {path}: {err.strerror or err}; check the folder's permissions "
            "and free space, or choose another --out"
        ) from None


# -- reading an organised folder ------------------------------------------------------------------
def organized_root(path: Path) -> tuple[Path, str] | None:
    """(root, training folder) if ``path`` is an organised folder (``train/`` and ``valid/``) or its
    ``train_valid/``; else None."""
    path = Path(path)
    if (path / "train").is_dir() and (path / "valid").is_dir():
        return path, "train"
    if path.name == "train_valid" and (path.parent / "valid").is_dir():
        return path.parent, "train_valid"
    return None


def load_organized(path: str | Path, image_shape: tuple[int, int, int]) -> TensorDataset:
    """Training split from ``train/`` with ``valid/`` as the validation split, or ``train_valid/``
    alone; no test split (the competition's test images are unlabelled). Classes are the training
    folder's subfolders. Decoded once (worker processes) and cached."""
    from disgen.data.image_folder import decode_cached, list_images, summary, warn_duplicates

    root, train_name = organized_root(Path(path).expanduser())
    classes = sorted(d.name for d in (root / train_name).iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DisgenError(f"{root / train_name} has no class subfolders: run `disgen kaggle-organize` first")
    splits, skipped, total = {}, [], 0
    for name in (train_name, "valid") if train_name == "train" else (train_name,):
        files = list_images(root / name)
        images, ok, bad, digests = decode_cached(root / name, files, tuple(image_shape))
        skipped += [f"{name}/{b}" for b in bad]
        total += len(files)
        names = [files[i].parent.name for i in ok]
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise DisgenError(f"{root / name} has classes missing from {root / train_name}: {listing(unknown)}")
        warn_duplicates(root / name, [files[i] for i in ok], names, [digests[i] for i in ok])
        splits[name] = ImageSplit(images, torch.tensor([classes.index(n) for n in names], dtype=torch.int64))
    if skipped:
        print(
            f"warning: skipped {len(skipped)} unreadable image file(s) of {total} in {root}: {listing(skipped)}",
            file=sys.stderr,
        )
    for name, split in splits.items():
        if len(split) == 0:
            raise DisgenError(f"no readable images in {root / name}")
    print(summary(root, sum(len(s) for s in splits.values()), classes), file=sys.stderr)
    return TensorDataset(
        root.name if train_name == "train" else f"{root.name}-train_valid",
        splits[train_name],
        None,
        classes,
        source=str(root),
        extra={"skipped": skipped, "files": total},
        val=splits.get("valid"),
    )


def read_sample(path: str | Path) -> tuple[list[str], list[str]]:
    """The class columns (after ``id``) and the ids of a sample_submission.csv."""
    path = Path(path)
    if not path.is_file():
        raise DisgenError(f"sample submission {path} does not exist")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:1] != ["id"]:
        raise DisgenError(f"{path} must start with a header row id,CLASS,... (found {rows[:1]})")
    return rows[0][1:], [r[0] for r in rows[1:] if r]
