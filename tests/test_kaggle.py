"""Kaggle Dog Breed layout end to end on a competition the test draws: organise, train
resnet-transfer (resnet18, random weights, unfrozen, 32-pixel crops) to >= 90% validation
accuracy, and write a submission that validates; plus organise's errors and idempotence."""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

import disgen
from disgen.cli import main
from disgen.data import load_dataset
from disgen.data.kaggle import organize
from disgen.errors import DisgenError
from disgen.report.submission import validate_file

BREEDS = ("hstripes", "vstripes", "checks", "dots")
MODES = ("RGB", "L", "RGBA", "P")  # saved as jpg, jpg, png with alpha, palette png


def texture(breed: str, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """Dark stripes, checks or dots of a random period and colours on a light background."""
    w, h = size
    fg, bg = tuple(rng.randrange(0, 110) for _ in range(3)), tuple(rng.randrange(150, 256) for _ in range(3))
    im = Image.new("RGB", size, bg)
    d, p = ImageDraw.Draw(im), rng.randrange(8, 13)
    if breed == "hstripes":
        for y in range(rng.randrange(p), h, p):
            d.rectangle([0, y, w, y + p // 2 - 1], fill=fg)
    elif breed == "vstripes":
        for x in range(rng.randrange(p), w, p):
            d.rectangle([x, 0, x + p // 2 - 1, h], fill=fg)
    elif breed == "checks":
        for y in range(0, h, p):
            for x in range(0, w, p):
                if (x // p + y // p) % 2:
                    d.rectangle([x, y, x + p - 1, y + p - 1], fill=fg)
    else:
        r = p // 3
        for y in range(rng.randrange(p), h, p):
            for x in range(rng.randrange(p), w, p):
                d.ellipse([x - r, y - r, x + r, y + r], fill=fg)
    return im


def save(im: Image.Image, stem: Path, mode: str) -> None:
    if mode == "RGBA":
        im = im.convert("RGBA")
        im.putalpha(230)
    if mode in ("RGBA", "P"):
        im.convert(mode if mode == "P" else "RGBA").save(stem.with_suffix(".png"))
    else:
        im.convert(mode).save(stem.with_suffix(".jpg"), quality=90)


def make_competition(root: Path, per_class: int = 30, n_test: int = 12, seed: int = 0) -> tuple[Path, str]:
    """Kaggle's layout: labels.csv, train/ID.*, test/ID.*, sample_submission.csv (columns in an
    order other than the run's); one labelled train file is corrupt. Returns (root, corrupt id)."""
    rng = random.Random(seed)
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    new_id = lambda: f"{rng.getrandbits(48):012x}"  # noqa: E731
    rows = []
    for breed in BREEDS:
        for i in range(per_class):
            idx = new_id()
            save(
                texture(breed, (rng.randrange(40, 90), rng.randrange(40, 90)), rng), root / "train" / idx, MODES[i % 4]
            )
            rows.append((idx, breed))
    bad = new_id()
    (root / "train" / f"{bad}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    rows.append((bad, BREEDS[0]))
    test_ids = [new_id() for _ in range(n_test)]
    for i, idx in enumerate(test_ids):
        save(
            texture(BREEDS[i % 4], (rng.randrange(40, 90), rng.randrange(40, 90)), rng),
            root / "test" / idx,
            MODES[i % 4],
        )
    (root / "labels.csv").write_text("id,breed\n" + "".join(f"{i},{b}\n" for i, b in rows))
    columns = sorted(BREEDS, reverse=True)
    (root / "sample_submission.csv").write_text(
        "id," + ",".join(columns) + "\n" + "".join(f"{i}," + ",".join(["0.25"] * 4) + "\n" for i in test_ids)
    )
    return root, bad


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module", autouse=True)
def disgen_home(tmp_path_factory):
    """Decoded-image caches go to a temporary DISGEN_HOME, not the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISGEN_HOME", str(tmp_path_factory.mktemp("home")))
        yield


@pytest.fixture(scope="module")
def competition(tmp_path_factory) -> tuple[Path, str]:
    return make_competition(tmp_path_factory.mktemp("kaggle") / "dog-breed")


@pytest.fixture(scope="module")
def organized(competition, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("organized") / "org"
    assert main(["kaggle-organize", str(competition[0]), "--out", str(out), "--valid-ratio", "0.2"]) == 0
    return out


def test_organize_layout_links_and_stratified_split(competition, organized):
    root, bad = competition
    summary = json.loads((organized / "organize.json").read_text())
    # 30 per breed (31 with the corrupt one): floor(30 * 0.2) = 6 per breed in valid.
    assert (summary["train"], summary["valid"], summary["train_valid"], summary["test"]) == (97, 24, 121, 12)
    for breed in BREEDS:
        assert len(list((organized / "valid" / breed).iterdir())) == 6
    assert sorted(p.name for p in organized.iterdir()) == [
        "manifest.json",
        "organize.json",
        "test",
        "train",
        "train_valid",
        "valid",
    ]
    assert len(list((organized / "test" / "unknown").iterdir())) == 12
    linked = next((organized / "train_valid" / "dots").iterdir())
    assert os.path.samefile(linked, root / "train" / linked.name)  # a link, not a copy
    train = {p.name for p in (organized / "train").rglob("*.*")}
    valid = {p.name for p in (organized / "valid").rglob("*.*")}
    assert not train & valid and train | valid == {p.name for p in (organized / "train_valid").rglob("*.*")}


def test_organize_is_idempotent_and_reseeding_replaces_the_split(competition, tmp_path):
    out = tmp_path / "org"
    first = organize(competition[0], out, 0.2, seed=0)
    before = listing(out)
    assert organize(competition[0], out, 0.2, seed=0) == {**first, "links": {"kept": 254}}
    assert listing(out) == before
    organize(competition[0], out, 0.2, seed=1)
    after = listing(out)
    assert len(after) == len(before) and after != before  # the old split's links are gone


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (links followed) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


USER_THINGS = {
    "a file in a split's folder": lambda out: (out / "train" / "thesis.txt").write_text("my thesis"),
    "a file in a breed's folder": lambda out: (out / "valid" / "dots" / "notes.md").write_text("mine"),
    "a file next to the splits": lambda out: (out / "README").write_text("mine"),
    "an empty folder": lambda out: (out / "test" / "mine").mkdir(),
    "one of its links replaced by a file": lambda out: (
        next((out / "train" / "checks").iterdir()).unlink(),
        (out / "train" / "checks" / "x.jpg").write_bytes(b"my photo"),
    ),
    "a link replaced by a same-named file": lambda out: [
        (p.unlink(), p.write_bytes(b"my photo")) for p in [next((out / "train_valid" / "dots").iterdir())]
    ],
    "a symlink to a folder of the user's": lambda out: (out / "train" / "pics").symlink_to(out.parent / "mine"),
}


@pytest.mark.parametrize("thing", sorted(USER_THINGS))
def test_organize_never_deletes_what_it_did_not_make(competition, tmp_path, thing):
    """A re-run (another seed: every old link goes) refuses an OUT holding anything it did not
    write, before touching anything: the user's files and its own links are all still there."""
    out = tmp_path / "org"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("keep")
    organize(competition[0], out, 0.2, seed=0)
    USER_THINGS[thing](out)
    before = snapshot(out)
    with pytest.raises(
        DisgenError,
        match=r"holds 1 file\(s\) or folder\(s\) that kaggle-organize did not "
        r"write: .*never deletes or overwrites",
    ):
        organize(competition[0], out, 0.2, seed=1)
    assert snapshot(out) == before and (tmp_path / "mine" / "keep.txt").read_text() == "keep"
    if thing == "an empty folder":
        assert (out / "test" / "mine").is_dir()


def test_organize_refuses_a_folder_it_did_not_write(competition, tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "train").mkdir(parents=True)
    (out / "train" / "thesis.txt").write_text("my thesis")
    (out / "organize.json").write_text("{}")  # looks like an older disgen's, but has no manifest
    code = main(["kaggle-organize", str(competition[0]), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"disgen: error: --out {out} holds 2 file(s)")
    assert "did not write: organize.json, train (it has no manifest.json" in err[0]
    assert (out / "train" / "thesis.txt").read_text() == "my thesis" and (out / "organize.json").read_text() == "{}"
    (out / "manifest.json").write_text('{"links": "not a list"}')
    with pytest.raises(DisgenError, match="manifest.json is damaged or not kaggle-organize's list"):
        organize(competition[0], out)
    (out / "manifest.json").unlink()
    (out / "train" / "thesis.txt").unlink()
    (out / "organize.json").unlink()
    with pytest.raises(DisgenError, match="did not write: train .it has no"):  # an empty folder is the user's
        organize(competition[0], out)
    (out / "train").rmdir()
    organize(competition[0], out)  # an empty --out of the user's is fine
    assert (out / "manifest.json").is_file() and len(listing(out)) == 254 + 2


def test_organize_after_a_kill_half_way_knows_its_links(competition, tmp_path):
    """A run killed after its first manifest (links listed before they are made) and part of the
    links: the re-run recognises them (hard links to their sources) and finishes."""
    out = tmp_path / "org"
    organize(competition[0], out, 0.2, seed=0)
    manifest = json.loads((out / "manifest.json").read_text())
    pending = {rel: entry[:1] for rel, entry in manifest["links"].items()}  # as the first write lists them
    (out / "manifest.json").write_text(json.dumps({**manifest, "links": pending}))
    (out / "organize.json").unlink()
    for rel in sorted(pending)[::2]:  # half of them never made
        (out / rel).unlink()
    summary = organize(competition[0], out, 0.2, seed=1)
    assert summary["train_valid"] == 121 and len(listing(out)) == 254 + 2
    assert all(len(e) == 3 for e in json.loads((out / "manifest.json").read_text())["links"].values())


@pytest.mark.parametrize(
    "damage,message",
    [
        (
            lambda r: (r / "labels.csv").write_text((r / "labels.csv").read_text() + "feedbeef0000,dots\n"),
            "1 id.s. in .*labels.csv have no image in .*train: feedbeef0000",
        ),
        (
            lambda r: texture("dots", (40, 40), random.Random(0)).save(r / "train" / "0a0a0a0a.png"),
            "1 image.s. in .*train have no row in labels.csv: 0a0a0a0a",
        ),
        (lambda r: (r / "labels.csv").unlink(), "labels.csv does not exist"),
        (lambda r: [p.unlink() for p in (r / "test").iterdir()] and (r / "test").rmdir(), "test does not exist"),
    ],
)
def test_organize_errors_name_the_problem(tmp_path, damage, message):
    root, _ = make_competition(tmp_path / "comp", per_class=3, n_test=2)
    damage(root)
    with pytest.raises(DisgenError, match=message):
        organize(root, tmp_path / "out", 0.2)


def test_cli_organize_error_exits_2(tmp_path, capsys):
    assert main(["kaggle-organize", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "labels.csv does not exist" in capsys.readouterr().err


def test_organized_folder_loads_with_modes_sizes_and_the_corrupt_file_skipped(organized, capsys):
    data = load_dataset(str(organized), image_shape=(3, 37, 37))
    assert data.classes == sorted(BREEDS)
    assert (len(data.train), len(data.val), data.test) == (96, 24, None)  # 97 train files, one corrupt
    assert data.train.images.shape[1:] == (3, 37, 37) and data.train.images.dtype == torch.uint8
    assert "skipped 1 unreadable image file" in capsys.readouterr().err
    # RGBA on white and grey as RGB: no image is all black, grey ones have equal channels.
    assert (data.train.images.flatten(1).float().mean(1) > 60).all()
    everything = load_dataset(str(organized / "train_valid"), image_shape=(3, 37, 37))
    assert (len(everything.train), everything.val, everything.test) == (120, None, None)


@pytest.mark.slow
def test_train_resnet18_from_scratch_reaches_90_percent_and_submits(organized, competition, tmp_path):
    root, _ = competition
    run = disgen.train(
        "resnet-transfer",
        dataset=str(organized),
        epochs=8,
        batch_size=16,
        optimizer="adam",
        lr=0.002,
        lr_schedule="step",
        lr_period=5,
        lr_decay=0.1,
        augment="none",
        progress=False,
        run_dir=str(tmp_path / "run"),
        model_args=dict(arch="resnet18", image_size=32, pretrained=False, train_backbone="all", backbone_lr_scale=1.0),
    )
    last = run.history[-1]
    assert last["val_accuracy"] >= 0.9, run.history  # valid/ is the validation split
    assert 0 < last["val_log_loss"] < 0.5
    assert run.final is None and not (run.dir / "eval.json").exists()  # Kaggle's test has no labels
    split = json.loads((run.dir / "split.json").read_text())
    assert split["source"] == "dataset" and split["sizes"] == {"train": 96, "val": 24, "test": 0}
    assert {"confusion.png", "worst.png"} <= {p.name for p in (run.dir / "images").iterdir()}
    out = tmp_path / "submission.csv"
    assert (
        main(
            [
                "predict",
                str(run.dir),
                str(organized / "test"),
                "--format",
                "kaggle",
                "--out",
                str(out),
                "--sample-submission",
                str(root / "sample_submission.csv"),
            ]
        )
        == 0
    )
    test_ids = [p.stem for p in (root / "test").iterdir()]
    assert validate_file(out, list(BREEDS), test_ids) == 12
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id"] + sorted(BREEDS, reverse=True)  # the sample's column order
    assert [r[0] for r in rows[1:]] == [r[0] for r in csv.reader((root / "sample_submission.csv").open())][1:]
    # test image i is BREEDS[i % 4] (see make_competition): at least 10 of 12 right.
    truth = {r[0]: BREEDS[i % 4] for i, r in enumerate(list(csv.reader((root / "sample_submission.csv").open()))[1:])}
    right = sum(rows[0][1:][max(range(4), key=lambda j: float(r[1 + j]))] == truth[r[0]] for r in rows[1:])
    assert right >= 10
    # A sample submission of another competition is refused, naming the classes.
    other = tmp_path / "other.csv"
    other.write_text("id,cat,dog\n" + "".join(f"{i},0.5,0.5\n" for i in test_ids))
    with pytest.raises(DisgenError, match="has classes \\['cat', 'dog'\\] the run does not know"):
        from disgen.report.submission import write_submission

        write_submission(disgen.load(run.dir), [str(organized / "test")], str(tmp_path / "x.csv"), str(other))
    assert not (tmp_path / "x.csv").exists()


def test_submission_validation_rejects_bad_rows():
    from disgen.report.submission import validate

    classes, ids = ["a", "b"], ["1", "2"]
    validate(["id", "b", "a"], [["1", "0.5", "0.5"], ["2", "1", "0"]], classes, ids)
    with pytest.raises(DisgenError, match="summing to 0.900000"):
        validate(["id", "a", "b"], [["1", "0.5", "0.4"], ["2", "1", "0"]], classes, ids)
    with pytest.raises(DisgenError, match="missing \\['2'\\].*repeated \\['1'\\]"):
        validate(["id", "a", "b"], [["1", "0.5", "0.5"], ["1", "1", "0"]], classes, ids)
    with pytest.raises(DisgenError, match="missing \\['b'\\]"):
        validate(["id", "a", "c"], [["1", "0.5", "0.5"], ["2", "1", "0"]], classes, ids)
