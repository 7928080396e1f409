"""Hostile inputs end to end through the command line: model sizes (flags and a run's
config.json), config files (depth, size, names), IDX files and images for ``predict`` (content
decides the format; no images, NaN, declared sizes against memory, decompression bombs) and every
output path. Each ends in one ``disgen: error:`` line and exit 2, or works. Faults are counted as
in test_hardening.py."""

from __future__ import annotations

import gzip
import json
import math
import shutil
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SUBPROCESS_ENV, cli_error
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image
from test_fuzz import fuzz
from test_hardening import metrics

from disgen.cli import main
from disgen.config import MAX_CONFIG_BYTES, MAX_JSON_DEPTH, field_types
from disgen.data.idx import MAX_DECODED_BYTES, decoded_bytes, read_idx
from disgen.errors import DisgenError
from disgen.models import MAX_SIZE, check_size, get_model, resolve

# ---- model sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags,words",
    [
        (["--hidden=-5"], "mlp-classifier --hidden (-5,): a size must be a whole number in 0..16,777,216 (got -5)"),
        (
            ["--hidden", "200000,200000"],
            "mlp-classifier with --hidden (200000, 200000) has 40,159,200,010 parameters, over the ",
        ),
        (["--hidden", ",".join(["8"] * 101)], "--hidden: 101 layers, over the limit of 100"),
        (["--dropout", "5"], "ValueError: dropout probability has to be between 0 and 1, but got 5.0"),
        (["--dropout", "nan"], "mlp-classifier --dropout nan: must be a finite number"),
    ],
)
def test_absurd_model_sizes_on_the_command_line(tmp_path, idx_dir, capsys, reliability, flags, words):
    d = tmp_path / "run"
    code, err = cli_error(
        capsys,
        "train",
        "mlp-classifier",
        "--dataset",
        idx_dir,
        "--epochs",
        "1",
        "--no-progress",
        "--run-dir",
        d,
        *flags,
    )
    assert code == 2 and err.startswith("disgen: error: ") and words in err, err
    assert not (d / "checkpoints").exists()
    reliability.record(
        "inputs",
        "model sizes: negative, absurd (160 GB of weights), 101 layers, NaN or out of range (flags)",
        "one clear error naming the option, the number and the limit",
    )


def test_absurd_model_size_in_a_run_config(tmp_path, classifier_run, capsys, reliability):
    """A run's config.json with hidden [1000000000, 50] (3 TB of weights): eval, predict and
    --resume refuse it before allocating anything."""
    d = tmp_path / "run"
    shutil.copytree(classifier_run.dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_args"]["hidden"] = [1_000_000_000, 50]
    (d / "config.json").write_text(json.dumps(cfg))
    digits = d / "digits-idx3-ubyte"
    from disgen.data.idx import write_idx

    write_idx(digits, torch.zeros(2, 28, 28, dtype=torch.uint8))
    for args in (["eval", d], ["predict", d, digits], ["train", "mlp-classifier", "--resume", "--run-dir", d]):
        code, err = cli_error(capsys, *args)
        assert code == 2 and err == (
            "disgen: error: mlp-classifier --hidden (1000000000, 50): a size must be a whole "
            "number in 0..16,777,216 (got 1,000,000,000)"
        ), (args, err)
    cfg["model_args"]["hidden"] = [10_000_000, 50]  # in range, but 8.35 billion weights
    (d / "config.json").write_text(json.dumps(cfg))
    code, err = cli_error(capsys, "eval", d)
    assert code == 2 and "with --hidden (10000000, 50) has 8,350,000,560 parameters, over the " in err, err
    reliability.record(
        "inputs",
        "model sizes in a run's config.json (eval, predict, --resume)",
        "one clear error naming the option, the number and the limit",
        4,
    )


# ---- config files -----------------------------------------------------------------------------------

CONFIGS = {  # what: (file contents, words of the error)
    "nested 100,000 deep": ('{"model_args": ' + "[" * 100_000 + "]" * 100_000 + "}", "nests its values over 32 deep"),
    "nested 40 deep": ('{"model_args": {"hidden": ' + "[" * 40 + "]" * 40 + "}}", "nests its values over 32 deep"),
    "a 50 MB dataset name": (json.dumps({"dataset": "x" * (50 << 20)}), "is over 1,048,576 bytes"),
    "a 300,000-character dataset name": (
        json.dumps({"dataset": "d" * 300_000}),
        "--dataset 'dddddddddddddddddddddddddddddddddddddddd'... (300,000 characters) is not a name or path",
    ),
    "a 300-byte folder name": (
        json.dumps({"dataset": "a/" + "é" * 150}),
        "is not a name or path: at most 4096 characters, 255 bytes between slashes",
    ),
    "a NUL in a path": (
        json.dumps({"dataset": "data/a\u0000b"}),
        "--dataset 'data/a\\x00b' (8 characters) is not a name or path",
    ),
    "not UTF-8": (b"\xff\xfe{}", "is not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_hostile_config_files(tmp_path, classifier_run, capsys, reliability, case):
    """As --config FILE and as a run's config.json (eval, --resume): one line, exit 2."""
    text, words = CONFIGS[case]
    config = tmp_path / "config.json"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, err = cli_error(capsys, "train", "mlp-classifier", "--config", config, "--run-dir", tmp_path / "new")
    assert code == 2 and err.startswith("disgen: error: ") and words in err, err
    assert not (tmp_path / "new").exists()
    d = tmp_path / "run"
    shutil.copytree(classifier_run.dir, d)
    saved = json.loads((d / "config.json").read_text())
    if case.startswith(("nested", "a 50 MB", "not UTF-8")):
        shutil.copy(config, d / "config.json")
    else:
        (d / "config.json").write_text(json.dumps({**saved, **json.loads(text)}))
    for args in (["eval", d], ["train", "mlp-classifier", "--resume", "--epochs", "6", "--run-dir", d]):
        code, err = cli_error(capsys, *args)
        assert code == 2 and err.startswith("disgen: error: ") and words in err, (args, err)
    assert [r["epoch"] for r in metrics(d)] == [1, 2, 3, 4, 5]
    reliability.record(
        "inputs",
        "config file nested 100,000 deep, over 1 MiB, with a 50 MB or 300-byte-component "
        "path, a NUL, not UTF-8 (--config and a run's config.json)",
        "one clear error naming the file or value",
        3,
    )


# ---- inputs: IDX files and images for predict, and every output path ----------------------------------


def predict_line(capsys, run: Path, *args) -> tuple[int, str]:
    return cli_error(capsys, "predict", run, *args)


def test_idx_or_image_is_decided_by_content_not_name(tmp_path, classifier_run, mnist_mini, capsys, reliability):
    digits = mnist_mini.test.images[:3, 0]
    photo = tmp_path / "my_idx_photo.png"  # an image whose name says idx
    Image.fromarray(digits[0].numpy()).save(photo)
    from disgen.data.idx import write_idx

    idx = write_idx(tmp_path / "digits.png", digits)  # IDX bytes named .png
    code, out, _ = main(["predict", str(classifier_run.dir), str(photo), str(idx)]), *capsys.readouterr()
    rows = out.strip().splitlines()[1:]
    assert code == 0 and [r.split(",")[0] for r in rows] == [str(photo), "0", "1", "2"]
    expected = classifier_run.predict(torch.cat([digits[:1], digits])).argmax(1).tolist()
    assert [int(r.split(",")[1]) for r in rows] == expected
    reliability.record(
        "inputs",
        "predict: a PNG named my_idx_photo.png and IDX bytes named .png",
        "each read by its content (magic number), predicted as the same digits",
    )


def test_idx_with_no_images_or_values_outside_pixels(tmp_path, classifier_run, capsys, reliability):
    from disgen.data.idx import write_idx

    cases = {
        "empty-idx3-ubyte": (torch.zeros(0, 28, 28, dtype=torch.uint8), "holds no images (its header declares 0)"),
        "nan-idx3-ubyte": (
            torch.full((3, 28, 28), float("nan")),
            "holds float32 values outside the pixel range 0..255 (2,352 of 2,352, e.g. nan)",
        ),
        "inf-idx3-ubyte": (
            torch.full((1, 28, 28), 7.0).index_fill_(1, torch.tensor([3]), float("inf")),
            "(28 of 784, e.g. inf)",
        ),
        "negative-idx3-ubyte": (torch.full((2, 28, 28), -1, dtype=torch.int16), "holds int16 values outside"),
        "big-idx3-ubyte": (torch.full((2, 28, 28), 256.0, dtype=torch.float64), "holds float64 values outside"),
    }
    for name, (x, words) in cases.items():
        path = write_idx(tmp_path / name, x)
        code, err = predict_line(capsys, classifier_run.dir, path)
        assert code == 2 and err.startswith(f"disgen: error: IDX file {path} ") and words in err, err
    path = write_idx(tmp_path / "float-idx3-ubyte", torch.full((2, 28, 28), 127.6))  # floats in 0..255: fine
    assert main(["predict", str(classifier_run.dir), str(path)]) == 0
    ref = classifier_run.predict(torch.full((2, 28, 28), 128, dtype=torch.uint8))
    assert capsys.readouterr().out.splitlines()[1].split(",")[2:] == [f"{v:.6f}" for v in ref[0].tolist()]
    reliability.record(
        "inputs",
        "predict: an IDX file of 0 images, of NaN, infinity or values outside 0..255",
        "one clear error naming the file, the type and the values",
        len(cases),
    )


def test_idx_declaring_more_than_its_decoded_cost_allows(tmp_path, classifier_run, capsys, reliability):
    """A 2 MB .gz declaring 2,738,000 images of 28x28 (2.1 GB of bytes, 12 GiB as the uint8 and
    float32 images predict makes): refused from its header, before decompressing anything."""
    import gzip

    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 2_738_000, 28, 28))
        f.write(bytes(64 << 20))  # the rest would follow; the header decides
    code, err = predict_line(capsys, classifier_run.dir, path)
    assert code == 2 and err == (
        f"disgen: error: IDX file {path} declares shape (2738000, 28, 28) of uint8 "
        "(2,146,592,000 values: 12.0 GiB decoded, as uint8 and float32 images), over the "
        "limit of 2 GiB: its header is corrupt, or split the file into smaller ones"
    )
    reliability.record(
        "inputs",
        "predict: a .gz declaring 2,738,000 images (12 GiB decoded)",
        "refused from its header, nothing decompressed",
    )


def peak_rss_mib(*args) -> tuple[int, float]:
    """Exit code and peak resident memory (MiB) of ``python -m disgen ARGS`` in a fresh process."""
    code = (
        "import resource, subprocess, sys; p = subprocess.run([sys.executable, '-m', 'disgen', *sys.argv[1:]], "
        "stdout=subprocess.DEVNULL); print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=300
    ).stdout.split()
    return int(out[0]), int(out[1]) / 1024


@pytest.mark.slow  # 12 s on 2 cores
def test_predict_memory_follows_the_images(tmp_path, classifier_run, reliability):
    """100,000 images of 28x28 (78 MB, 7 kB gzipped) under the cap: predict holds the body about
    once, makes float batches a chunk at a time and writes the CSV a chunk at a time; before, it
    held it 3 times over and then a float32 copy of all of it (7 times the bytes)."""
    import gzip

    from disgen.data.idx import write_idx

    small, big = tmp_path / "one-idx3-ubyte", tmp_path / "many-idx3-ubyte.gz"
    write_idx(small, torch.zeros(1, 28, 28, dtype=torch.uint8))
    n, raw = 100_000, 100_000 * 784
    with gzip.open(big, "wb", compresslevel=1) as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, n, 28, 28) + bytes(raw))
    code, base = peak_rss_mib("predict", classifier_run.dir, small, "--out", tmp_path / "one.csv")
    assert code == 0
    code, peak = peak_rss_mib("predict", classifier_run.dir, big, "--out", tmp_path / "many.csv")
    assert code == 0 and len((tmp_path / "many.csv").read_text().splitlines()) == n + 1
    grew = peak - base
    # the body once (read into one buffer, no copy for a single file) and the CSV a few thousand
    # rows at a time: from 1.25x to 3.4x the body over runs on 2-core machines (the allocator's
    # arenas vary; a CI run read 4.0x); a float32 copy of all images would add 4x on top of the
    # body (5x and more), and the old path held 7x
    assert grew < 4 * raw / 2**20 + 40, (base, peak)
    reliability.record(
        "inputs",
        "predict: 100,000 images in a 7 kB .gz (78 MB of pixels)",
        f"read in a stream; peak memory {grew / (raw / 2**20):.1f}x the pixels' bytes over a 1-image run",
    )


def test_predictions_piped_into_a_reader_that_leaves(tmp_path, classifier_run):
    """`disgen predict RUN FILE | head -3`: the rows come out in order, and when the reader
    leaves, predict stops with status 1 and no error message (no traceback, no "Broken pipe")."""
    from disgen.data.idx import write_idx

    images = tmp_path / "many-idx3-ubyte"
    write_idx(images, torch.randint(0, 256, (5_000, 28, 28), dtype=torch.uint8))  # 500 kB of CSV: over a pipe's buffer
    proc = subprocess.Popen(
        [sys.executable, "-m", "disgen", "predict", str(classifier_run.dir), str(images)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=SUBPROCESS_ENV,
    )
    head = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()  # the reader leaves
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == "", err
    assert head[0].startswith(b"input,label,0,1,") and [r.split(b",")[0] for r in head[1:]] == [b"0", b"1"]


def test_decompression_bomb_names_the_one_limit(tmp_path, classifier_run, capsys, reliability):
    from test_images import png_declaring

    for w, h in ((8000, 7000), (100_000, 100_000)):  # Pillow warns past 50 M pixels, raises past 100 M
        path = tmp_path / f"bomb{w}.png"
        path.write_bytes(png_declaring(w, h))
        code, err = predict_line(capsys, classifier_run.dir, path)
        assert code == 2 and err == (
            f"disgen: error: cannot read image {path}: it has {w * h:,} pixels, over the "
            "limit of 50,000,000 pixels (a decompression bomb, or far larger than a model "
            "needs): shrink it first"
        )
    reliability.record(
        "inputs",
        "predict: PNGs declaring 56 M and 10,000 M pixels",
        "one error naming the image's pixels and the one limit that applies",
        2,
    )


OUTPUTS = {  # command: its arguments (RUN: a run of that kind), the output flag
    "predict": (["predict", "{classifier}", "{idx}"], "--out"),
    "predict --format kaggle": (["predict", "{classifier}", "{pngs}", "--format", "kaggle"], "--out"),
    "reconstruct": (["reconstruct", "{autoencoder}", "{idx}"], "--out"),
    "sample": (["sample", "{gan}", "--n", "4"], "--out"),
    "sample --out-dir": (["sample", "{gan}", "--n", "4"], "--out-dir"),
    "report": (["report", "{classifier}"], "--out"),
}


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory, idx_dir) -> Path:
    """A generator of images: a tiny aae, whose decoder draws digits."""
    d = tmp_path_factory.mktemp("gan") / "aae"
    assert (
        main(
            [
                "train",
                "aae",
                "--dataset",
                str(idx_dir),
                "--hidden",
                "16",
                "--d-hidden",
                "8",
                "--z-dim",
                "2",
                "--epochs",
                "1",
                "--no-progress",
                "--run-dir",
                str(d),
            ]
        )
        == 0
    )
    return d


@pytest.mark.parametrize("command", sorted(OUTPUTS))
def test_every_output_path(
    tmp_path, command, classifier_run, autoencoder_run, gan_run, mnist_mini, capsys, reliability
):
    """Each command's output in a folder that does not exist yet is made (the folder created);
    one that cannot be made, a folder given as the file and a read-only folder are one error each."""
    from disgen.data.idx import write_idx

    pngs = tmp_path / "pngs"
    pngs.mkdir()
    Image.fromarray(mnist_mini.test.images[0, 0].numpy()).save(pngs / "a1.png")
    names = {
        "classifier": classifier_run.dir,
        "autoencoder": autoencoder_run.dir,
        "gan": gan_run,
        "idx": write_idx(tmp_path / "x-idx3-ubyte", mnist_mini.test.images[:3, 0]),
        "pngs": pngs,
    }
    args, flag = OUTPUTS[command]
    args = [a.format(**names) for a in args]
    name = "grid.csv" if command.startswith("predict") else "out.html" if command == "report" else "grid.png"
    made = tmp_path / "missing" / "dir" / name
    assert main([*args, flag, str(made)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert (made.is_dir() and len(list(made.iterdir())) == 4) if flag == "--out-dir" else made.stat().st_size > 0
    (tmp_path / "a-file").write_text("mine")
    blocked = tmp_path / "a-file" / "sub" / name  # a file where a folder would be
    code, err = cli_error(capsys, *args, flag, blocked)
    assert code == 2 and err.startswith(f"disgen: error: {flag} {blocked}: cannot make the folder "), err
    assert (tmp_path / "a-file").read_text() == "mine"
    if flag == "--out":
        code, err = cli_error(capsys, *args, flag, tmp_path)
        assert code == 2 and err.startswith(f"disgen: error: --out {tmp_path} is a folder: give a file name"), err
    reliability.record(
        "inputs",
        "every output path (predict, kaggle submission, reconstruct, sample, report): a "
        "missing folder, a file in the way, a folder as the file",
        "the missing folder made; one clear error for the others",
        3 if flag == "--out" else 2,
    )


def test_sample_options_out_of_range(tmp_path, gan_run, capsys, reliability):
    d = tmp_path / "gan2d"
    assert main(["train", "gan2d", "--epochs", "1", "--no-progress", "--run-dir", str(d)]) == 0
    capsys.readouterr()
    cases = [
        ([d, "--label", "3"], "--label 3: a gan2d run draws no chosen class"),
        ([gan_run, "--label", "10"], "--label 10: this run has classes 0 to 9"),
        ([gan_run, "--n", "0"], "--n must be in 1..100,000 (got 0)"),
        ([gan_run, "--n", "1000000000"], "--n must be in 1..100,000 (got 1000000000)"),
    ]
    for args, words in cases:
        code, err = cli_error(capsys, "sample", *args, "--out", tmp_path / "s.png")
        assert code == 2 and words in err, err
    code, err = cli_error(capsys, "eval", gan_run, "--n-samples", "-5")
    assert code == 2 and "--n-samples must be in 1..100,000 (got -5)" in err
    reliability.record(
        "inputs",
        "sample --label for a model without classes or past them, --n and eval --n-samples out of range",
        "one clear error naming the option",
        len(cases) + 1,
    )


# ---- fuzzed: config files (depth, size, ranges) and IDX headers (declared sizes against memory) -----


@fuzz(60)
@given(
    depth=st.one_of(st.integers(1, 40), st.integers(1, 3000)),
    where=st.sampled_from(["top", "model_args", "hidden"]),
    kind=st.booleans(),
)
@example(depth=100_000, where="model_args", kind=True)
@example(depth=32, where="top", kind=False)
def test_config_nesting(scratch, reliability, depth, where, kind):
    """A value nested ``depth`` deep (lists or objects): refused past 32 whatever the depth,
    from a RecursionError of the parser or after parsing; a shallower one gives a result or an
    error about the value."""
    inner = ("[" * depth + "]" * depth) if kind else ('{"a": ' * depth + "1" + "}" * depth)
    doc = {
        "top": inner,
        "model_args": f'{{"model_args": {inner}}}',
        "hidden": f'{{"model_args": {{"hidden": {inner}}}}}',
    }[where]
    path = scratch / "nested.json"
    path.write_text(doc)
    total = depth + {"top": 0, "model_args": 1, "hidden": 2}[where] - (0 if kind else 0)
    try:
        resolve("mlp-classifier", None, str(path))
    except DisgenError as err:
        message = str(err)
    else:
        message = None
    deep = total > MAX_JSON_DEPTH
    assert (message is not None and f"nests its values over {MAX_JSON_DEPTH} deep" in message) == deep, message
    assert deep or message is None or "\n" not in message
    reliability.record(
        "inputs",
        "config file nested 1 to 100,000 deep (hypothesis)",
        "refused past 32 deep, one DisgenError" if deep else "read: a result or one DisgenError",
    )


@fuzz(40)
@given(n=st.integers(0, 3 << 19), key=st.sampled_from(["dataset", "data_dir", "run_dir"]))
@example(n=50 << 20, key="dataset")
def test_config_sizes(scratch, reliability, n, key):
    path = scratch / "sized.json"
    path.write_text(json.dumps({key: "d" * n}))
    size = path.stat().st_size
    try:
        cfg = resolve("mlp-classifier", None, str(path))
    except DisgenError as err:
        message = str(err)
    else:
        message, outcome = None, "accepted: a name of at most 255 characters"
        assert getattr(cfg, key) == "d" * n
    if size > MAX_CONFIG_BYTES:
        assert message and f"is over {MAX_CONFIG_BYTES:,} bytes" in message
        outcome = "refused before parsing: over 1 MiB"
    elif n > 255:
        assert message and f"--{key.replace('_', '-')} 'dddd" in message and "is not a name or path" in message
        outcome = "refused: a name or path over its length"
    else:
        assert message is None or n == 0, message
        outcome = "accepted: a name of at most 255 characters" if message is None else "one DisgenError"
    reliability.record("inputs", "config file holding a name of 0 to 50 M characters (hypothesis)", outcome)


NUMERIC = sorted(k for k, t in field_types().items() if t in (int, float) and k != "seed") + ["seed"]


@fuzz(80)
@given(
    values=st.dictionaries(
        st.sampled_from(NUMERIC + ["hidden"]),
        st.one_of(st.integers(-(10**12), 10**12), st.floats(), st.lists(st.integers(-10, 10**9), max_size=4)),
        max_size=4,
    )
)
@example(values={"hidden": [1_000_000_000, 50]})
@example(values={"hidden": [200_000, 200_000]})
@example(values={"hidden": [-5]})
def test_config_ranges(scratch, reliability, values):
    """Random numbers for every numeric option and mlp-classifier's layer sizes: accepted only
    when every value is in its range and the network fits this machine (checked on the meta
    device), else one DisgenError naming the option."""
    path = scratch / "ranges.json"
    model = {"hidden": values.pop("hidden")} if "hidden" in values else {}
    path.write_text(json.dumps({**values, "model_args": model}))
    spec = get_model("mlp-classifier")
    try:
        cfg = resolve("mlp-classifier", None, str(path))
        check_size(spec, spec.model_config(cfg.model_args), (1, 28, 28), 10)
    except DisgenError as err:
        names = [*values, *model]
        assert "\n" not in str(err) and any(k.replace("_", "-") in str(err) or k in str(err) for k in names), err
        outcome = "one DisgenError naming the option"
    else:
        assert cfg.epochs >= 1 and cfg.batch_size >= 1 and cfg.lr_period >= 1 and 0 < cfg.lr < math.inf
        assert cfg.labels >= 0 and 0 <= cfg.seed < 2**63 and cfg.weight_decay >= 0
        assert all(math.isfinite(getattr(cfg, k)) for k in ("momentum", "weight_decay", "lr_decay"))
        assert all(0 <= h <= MAX_SIZE for h in cfg.model_args.get("hidden", ()))
        outcome = "accepted: every value in range, the network within this machine's memory"
    reliability.record(
        "inputs", "config file: random numbers for every numeric option and the layer sizes (hypothesis)", outcome
    )


@fuzz(80)
@given(
    dims=st.lists(st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1)), min_size=1, max_size=3),
    held=st.integers(0, 4 << 20),
    channels=st.sampled_from([1, 3]),
)
@example(dims=[2_738_000, 28, 28], held=4 << 20, channels=1)
@example(dims=[5000, 28, 28], held=5000 * 784, channels=3)
def test_idx_declared_sizes_against_memory(scratch, reliability, dims, held, channels):
    """A gzip IDX declaring ``dims`` (up to 2^32-1 each) and holding ``held`` bytes of body: refused
    from its header when its decoded tensors (at ``channels``) would cost over 2 GiB, else read
    in a stream: peak memory follows the bytes the file holds, never the declared size."""
    declared = math.prod(dims)
    body = bytes(min(held, declared))
    path = scratch / "declared-idx3-ubyte.gz"
    path.write_bytes(
        gzip.compress(struct.pack(f">BBBB{len(dims)}I", 0, 0, 8, len(dims), *dims) + body, compresslevel=1, mtime=0)
    )
    cost = decoded_bytes(tuple(dims), np.dtype(np.uint8), channels)
    tracemalloc.start()
    try:
        try:
            x = read_idx(path, channels=channels)
            message = None
        except DisgenError as err:
            message = str(err)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < (4 << 20) + 2.5 * len(body), (dims, len(body), peak)
    if cost > MAX_DECODED_BYTES:
        assert message and "over the limit of 2 GiB" in message and f"{cost / 2**30:,.1f} GiB decoded" in message
        outcome = "refused from its header: decoded cost over 2 GiB"
    elif len(body) < declared:
        assert message and "truncated IDX file" in message
        outcome = "refused: the body is shorter than declared (read no further than it holds)"
    else:
        assert message is None and tuple(x.shape) == tuple(dims)
        outcome = "read: the body matched the header"
    reliability.record(
        "inputs",
        "IDX .gz headers declaring up to 2^32-1 per dimension, against the decoded "
        "cost and the bytes held (hypothesis)",
        outcome,
    )
