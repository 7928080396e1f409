"""Hostile and broken inputs, fuzzed with hypothesis (derandomized: CI tries the same cases each
run): IDX files, images, Kaggle's labels.csv, config files and command-line values. Each input
gives a result or one DisgenError naming the problem: never another exception, a traceback,
memory in proportion to what a header declares, or a hang. The cases tried are counted in
benchmarks/results/reliability.json (see test_hardening.py)."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import os
import struct
import tracemalloc
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_images import png_declaring
from test_kaggle import make_competition

from disgen.cli import main
from disgen.cli.train import SKIP
from disgen.config import CHOICES, TrainConfig, field_types
from disgen.data.idx import IDX_DTYPES, MAX_DECODED_BYTES, decoded_bytes, read_idx
from disgen.data.image_folder import load_image_folder
from disgen.data.images import load_image
from disgen.data.kaggle import organize, read_labels
from disgen.errors import DisgenError
from disgen.models import resolve


def fuzz(n: int):
    """``n`` derandomized examples and no example database; an example taking 10 s (a hang, on a
    shared CPU where a few milliseconds can become a second) fails."""
    return settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=timedelta(seconds=10),
        suppress_health_check=[HealthCheck.too_slow],
    )


def refused(fn, path: Path) -> str | None:
    """None if ``fn()`` succeeds, else its DisgenError message, which must name ``path``."""
    try:
        fn()
    except DisgenError as err:
        assert str(path) in str(err), err
        return str(err)
    return None


# ---- IDX files --------------------------------------------------------------------------------

idx_like = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda code, ndim, rest: bytes([0, 0, code, ndim]) + rest,
        st.sampled_from(sorted(IDX_DTYPES)),
        st.integers(0, 4),
        st.binary(max_size=200),
    ),
)


@fuzz(150)
@given(data=idx_like, gz=st.booleans())
@example(data=b"", gz=False)
@example(data=b"\x01\x02\x08\x01\x00\x00\x00\x04abcd", gz=True)
def test_idx_random_bytes(scratch, reliability, data, gz):
    path = scratch / "random-idx1-ubyte"
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    message = refused(lambda: read_idx(path), path)
    reliability.record(
        "inputs",
        "IDX file: random bytes, raw and gzip (hypothesis)",
        "read (a valid file)" if message is None else "one DisgenError naming the file",
    )


@fuzz(120)
@given(
    code=st.sampled_from(sorted(IDX_DTYPES)),
    dims=st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)), max_size=5),
    body=st.binary(max_size=64),
    gz=st.booleans(),
)
@example(code=0x0E, dims=[2**32 - 1] * 3, body=b"", gz=False)
@example(code=0x08, dims=[MAX_DECODED_BYTES // 6 - 1], body=bytes(16), gz=True)  # just under the cap
@example(code=0x0C, dims=[0, 783698, 783952, 3753112], body=b"", gz=False)  # empty, yet no array can hold the rest
def test_idx_declared_dimensions_never_allocate_what_they_declare(scratch, reliability, code, dims, body, gz):
    data = struct.pack(f">BBBB{len(dims)}I", 0, 0, code, len(dims), *dims) + body
    path = scratch / "declared-idx3-ubyte"
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    tracemalloc.start()
    try:
        result: list = []
        message = refused(lambda: result.append(read_idx(path)), path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, (dims, peak)  # the file holds < 300 bytes, whatever it declares
    declared = math.prod(dims) * IDX_DTYPES[code].itemsize
    # A zero dimension empties the body but not the others: they are held to the limit as if it were one.
    over = decoded_bytes(tuple(max(d, 1) for d in dims), IDX_DTYPES[code]) > MAX_DECODED_BYTES
    if message is None:
        assert tuple(result[0].shape) == tuple(dims) and declared == len(body)
    else:
        assert declared != len(body) or over
        assert ("limit" in message) == over
    reliability.record(
        "inputs",
        "IDX header declaring up to 2^32-1 per dimension (hypothesis)",
        "refused, peak memory under 4 MiB" if message else "read: the body matched the header",
    )


# ---- images -----------------------------------------------------------------------------------

MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBP"]
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")


@pytest.fixture(scope="module")
def real_images() -> dict[str, bytes]:
    """A 23x17 RGB noise picture in each format, as bytes."""
    pixels = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    out = {}
    for fmt in FORMATS:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, fmt)
        out[fmt] = buf.getvalue()
    return out


@fuzz(100)
@given(magic=st.sampled_from(MAGIC), rest=st.binary(max_size=300))
@example(magic=b"", rest=b"")
def test_image_random_bytes(scratch, reliability, magic, rest):
    path = scratch / "random.png"
    path.write_bytes(magic + rest)
    message = refused(lambda: load_image(path, (1, 28, 28)), path)
    assert message is None or "cannot read image" in message
    reliability.record(
        "inputs",
        "image file: random bytes after a PNG/JPEG/GIF/BMP/TIFF/WebP magic (hypothesis)",
        "decoded" if message is None else "one DisgenError naming the file",
    )


@fuzz(120)
@given(fmt=st.sampled_from(FORMATS), cut=st.floats(0.0, 0.999))
def test_truncated_image(scratch, reliability, real_images, fmt, cut):
    data = real_images[fmt]
    path = scratch / f"cut.{fmt.lower()}"
    path.write_bytes(data[: int(len(data) * cut)])
    message = refused(lambda: load_image(path, (3, 16, 16)), path)
    reliability.record(
        "inputs",
        "image file truncated at a random byte (6 formats, hypothesis)",
        "decoded (only trailing bytes were cut)" if message is None else "one DisgenError naming the file",
    )


@fuzz(60)
@given(width=st.integers(0, 2**31 - 1), height=st.integers(0, 2**31 - 1))
@example(width=100_000, height=100_000)
@example(width=0, height=0)
@example(width=8000, height=7000)  # 56 M pixels: Pillow only warns here; disgen refuses
@example(width=10_000, height=10_000)  # exactly Pillow's limit: the message names the image's 100,000,000
def test_image_declared_dimensions_decompression_bomb(scratch, reliability, width, height):
    path = scratch / "bomb.png"
    path.write_bytes(png_declaring(width, height))  # 8 x 8 pixels' worth of data at most
    tracemalloc.start()
    try:
        message = refused(lambda: load_image(path, (1, 28, 28)), path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20
    if width * height > Image.MAX_IMAGE_PIXELS:
        assert (
            message is not None
            and f"it has {width * height:,} pixels, over the limit of 50,000,000 pixels" in message
            and message.count("limit") == 1
            and "limit of 100,000,000" not in message  # Pillow's own (twice disgen's), never named
        )
        outcome = "refused before decoding, peak memory under 50 MiB"
    elif width * height == 0:
        assert message is not None
        outcome = "zero-size image refused"
    else:
        outcome = "decoded or refused as truncated"
    reliability.record("inputs", "PNG header declaring up to 2^31 x 2^31 pixels (hypothesis)", outcome)


def test_image_folder_skips_bombs_and_broken_files(tmp_path, real_images, capsys, reliability):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "good.png").write_bytes(real_images["PNG"])
    (folder / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    (folder / "cut.jpg").write_bytes(real_images["JPEG"][:100])
    (folder / "empty.gif").write_bytes(b"")
    data = load_image_folder(folder, (3, 16, 16), cache=False)
    assert len(data.train) == 1 and data.extra["skipped"] == ["bomb.png", "cut.jpg", "empty.gif"]
    assert "skipped 3 unreadable image file(s) of 4" in capsys.readouterr().err
    reliability.record(
        "inputs",
        "image folder holding a bomb, a truncated and an empty file",
        "the 3 skipped and named in one warning; the good image loaded",
    )


def test_damaged_image_cache_is_decoded_again(tmp_path, real_images, monkeypatch, capsys, reliability):
    monkeypatch.setenv("DISGEN_HOME", str(tmp_path / "home"))
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(real_images["PNG"])
    first = load_image_folder(folder, (3, 16, 16))
    [entry] = (tmp_path / "home" / "decoded").iterdir()
    cached = entry / "images.u8"
    want = first.train.images.contiguous()
    del first  # (its mapping of the file)
    cached.write_bytes(cached.read_bytes()[:100])
    again = load_image_folder(folder, (3, 16, 16))
    assert f"ignoring the damaged image cache {entry}" in capsys.readouterr().err
    assert torch.equal(again.train.images.contiguous(), want) and cached.stat().st_size == 3 * 3 * 16 * 16
    reliability.record("inputs", "decoded-image cache file truncated", "warned, decoded again and rewritten")


# ---- Kaggle labels.csv ------------------------------------------------------------------------

name = st.one_of(
    st.sampled_from(["a1", "b2", "c3", "dingo", "husky", "pug"]),
    st.sampled_from(["", " ", "..", ".", "../up", "a/b", "a\\b", ".hidden", "x\x00y", "çà", "a,b", 'q"t']),
    st.text(max_size=6),
)
rows = st.lists(st.tuples(name, name), max_size=6)
header = st.sampled_from(
    [["id", "breed"], ["ID", "Breed"], ["id"], ["breed", "id"], [], ["id", "breed", "x"], ["name", "label"]]
)


def labels_text(head: list[str], body: list[tuple[str, str]], crlf: bool) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n" if crlf else "\n").writerows([head, *body])
    return buf.getvalue()


def read_or_error(path: Path):
    try:
        return read_labels(path)
    except DisgenError as err:
        assert str(path) in str(err)
        return type(err)


@fuzz(150)
@given(head=header, body=rows, bom=st.booleans(), crlf=st.booleans())
@example(head=["id", "breed"], body=[("a1", "pug"), ("a1", "husky")], bom=False, crlf=False)
@example(head=["id", "breed"], body=[("a1", "../../etc")], bom=True, crlf=True)
def test_labels_csv(scratch, reliability, head, body, bom, crlf):
    path, plain = scratch / "labels.csv", scratch / "plain.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + labels_text(head, body, crlf).encode())
    plain.write_bytes(labels_text(head, body, False).encode())
    got = read_or_error(path)
    assert got == read_or_error(plain)  # a byte-order mark and CRLF line ends change nothing
    if isinstance(got, dict):
        for i, breed in got.items():
            for part in (i, breed):
                assert part and part == part.strip() and not part.startswith(".")
                assert not {"/", "\\", "\0"} & set(part)
        assert list(got.items()) == [(i.strip(), b.strip()) for i, b in body if i.strip() or b.strip()]
    reliability.record(
        "inputs",
        "labels.csv: random rows, headers, hostile names, duplicates, BOM, CRLF (hypothesis)",
        "read, BOM/CRLF accepted" if isinstance(got, dict) else "one DisgenError naming the file",
    )


def test_labels_csv_errors_name_the_problem(tmp_path, reliability):
    cases = {
        "id,breed\na1,pug\na1,husky\n": "line 3: id a1 is labelled twice",
        "id\na1\n": "must start with the header id,breed",
        "id,breed\na1\n": "line 2: expected id,breed",
        "id,breed\na1,../../outside\n": "breed '../../outside' cannot be a file or folder name",
        "": "must start with the header id,breed",
    }
    path = tmp_path / "labels.csv"
    for text, words in cases.items():
        path.write_text(text)
        with pytest.raises(DisgenError, match=words.replace(".", r"\.")):
            read_labels(path)
    path.write_bytes(b"id,breed\r\n\xff\xfe,pug\r\n")
    with pytest.raises(DisgenError, match="not a readable UTF-8 CSV"):
        read_labels(path)
    path.write_bytes(b"\xef\xbb\xbfid,breed\r\na1,pug\r\n\r\nb2,husky\r\n")
    assert read_labels(path) == {"a1": "pug", "b2": "husky"}
    reliability.record(
        "inputs",
        "labels.csv: duplicate id, missing column, path in a breed, not UTF-8",
        "one DisgenError naming file, line and value",
        5,
    )
    reliability.record("inputs", "labels.csv with a byte-order mark, CRLF and a blank line", "accepted")


def test_organize_refuses_unknown_breeds_and_accepts_bom_crlf(tmp_path, reliability):
    root, _ = make_competition(tmp_path / "comp", per_class=3, n_test=2)
    labels = root / "labels.csv"
    plain = organize(root, tmp_path / "plain", 0.3)
    labels.write_bytes(b"\xef\xbb\xbf" + labels.read_bytes().replace(b"\n", b"\r\n"))
    assert organize(root, tmp_path / "bom", 0.3) == plain
    labels.write_bytes(labels.read_bytes().replace(b",dots\r\n", b",dotz\r\n", 1))
    with pytest.raises(DisgenError, match=r"breed\(s\) dotz in labels.csv are not columns of .*sample_sub"):
        organize(root, tmp_path / "typo", 0.3)
    assert not (tmp_path / "typo").exists()
    reliability.record("inputs", "labels.csv breed missing from sample_submission.csv", "one DisgenError naming it")


# ---- config files and command-line values ------------------------------------------------------

key_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=6)  # keys are not repr'd
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(key_text, inner, max_size=3),
    max_leaves=6,
)
config_keys = st.sampled_from(sorted(field_types()) + ["hidden", "bogus"])
config_docs = st.one_of(st.dictionaries(config_keys, json_values, max_size=5), json_values)


@fuzz(200)
@given(doc=config_docs)
@example(doc={"epochs": -3})
@example(doc={"batch_size": 0})
@example(doc={"preset": "bogus"})
@example(doc={"lr": float("inf")})
@example(doc={"epochs": float("inf")})
@example(doc={"model": "not a dict"})
@example(doc={"preset": ["seed"]})
def test_config_file(scratch, reliability, doc):
    path = scratch / "config.json"
    path.write_text(json.dumps(doc))
    try:
        cfg = resolve("mlp-classifier", None, str(path))
    except DisgenError as err:
        assert "\n" not in str(err)
        outcome = "one DisgenError"
    else:
        assert isinstance(cfg, TrainConfig) and cfg.epochs >= 1 and cfg.batch_size >= 1
        assert 0 < cfg.lr < math.inf
        assert all(getattr(cfg, k) in v for k, v in CHOICES.items()) and isinstance(cfg.epochs, int)
        outcome = "accepted: every value valid"
    reliability.record(
        "inputs", "config file: random JSON, wrong types, NaN/inf, negative values (hypothesis)", outcome
    )


# Not --dataset: a name that exists would train. Model options last: they come with mlp-classifier.
FLAGS = sorted({k.replace("_", "-") for k, t in field_types().items() if t is not bool and k not in SKIP} - {"dataset"})
cli_values = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats().map(repr),
    st.text(max_size=12),
    st.sampled_from(["0", "-1", "1e400", "nan", "inf", "", "seed", "bogus", "1,2,3"]),
)


@pytest.mark.timeout(300)
@fuzz(150)
@given(flag=st.sampled_from(FLAGS + ["hidden", "act", "dropout"]), value=cli_values)
@example(flag="epochs", value="-3")
@example(flag="batch-size", value="0")
@example(flag="preset", value="bogus")
@example(flag="device", value="cuda\nx")
def test_cli_values(scratch, reliability, flag, value):
    """Every value goes in with a dataset that does not exist, so nothing trains: the run stops at
    the first problem, which must be the value's (naming the flag) or the dataset's."""
    args = [
        "train",
        "mlp-classifier",
        "--no-progress",
        "--run-dir",
        str(scratch / "cli-run"),
        "--dataset",
        str(scratch / "no-such-dataset"),
        f"--{flag}={value}",
    ]
    out, err, here = io.StringIO(), io.StringIO(), sorted(os.listdir())  # a relative --run-dir lands here
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    lines = err.getvalue().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("disgen: error: "), err.getvalue()
    assert out.getvalue() == ""
    if "unknown dataset" not in lines[0]:  # the value's error: it names the flag (the value may be "" or "1")
        assert f"--{flag}" in lines[0], lines[0]
    assert not (scratch / "cli-run").exists() and sorted(os.listdir()) == here  # nothing left behind
    reliability.record(
        "inputs",
        "train flag values: random numbers and text for each flag (hypothesis)",
        "a valid value: stopped at the missing dataset, one line, exit 2"
        if "unknown dataset" in lines[0]
        else "one 'disgen: error:' line naming it, exit 2",
    )
