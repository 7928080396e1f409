"""Hostile values in what disgen reads: a metrics.jsonl of millions of lines, Hugging Face datasets
with missing images, no rows or wrong array types, layers of zero width, checkpoints and exports
holding NaN, infinite or integer weights or crafted metadata, memory limits below the machine's
(a cgroup, ulimit -v), and class names holding control characters. Each ends in one ``disgen:
error:`` line or keeps working, its memory bounded. Faults are counted as in test_hardening.py."""

from __future__ import annotations

import importlib.util
import json
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SUBPROCESS_ENV, cli_error, run_disgen

from disgen import runs
from disgen.models import get_model, list_models
from disgen.runs import checkpoint


def disgen_limited(args: list, limit: int | None = None, timeout: float = 300, setup=None) -> tuple[int, str, str]:
    """``python -m disgen ARGS`` in a subprocess whose address space is limited to ``limit`` bytes
    (``setup``: what else the child does before it starts): its exit status, stderr and last line,
    after checking that no traceback was printed."""

    def start() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if setup is not None:
            setup()

    done = subprocess.run(
        [sys.executable, "-m", "disgen", *map(str, args)],
        env=SUBPROCESS_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=start,
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    return done.returncode, done.stderr, (done.stderr.strip().splitlines() or [""])[-1]


# ---- metrics.jsonl of millions of lines ----------------------------------------------------------


def big_metrics(run_dir: Path, lines: int) -> None:
    """``lines`` epoch records appended to a run's metrics.jsonl (its final record kept last)."""
    records = runs.read_metrics(run_dir)
    final = runs.read_final(run_dir)
    rec = json.dumps({**records[-1], "epoch": 1}) + "\n"
    with open(run_dir / "metrics.jsonl", "w") as f:
        for start in range(0, lines, 100_000):
            f.write(rec * min(100_000, lines - start))
        f.write(json.dumps(final) + "\n")


READ_METRICS = r"""
import json, resource, sys
from disgen import runs

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
history, final = runs.read_metrics(sys.argv[1]), runs.read_final(sys.argv[1])
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(json.dumps({"grown": grown, "records": len(history), "final": final}))
"""


def test_metrics_of_millions_of_lines_are_read_in_bounded_memory(tmp_path, classifier_run, reliability):
    """``report`` on a metrics.jsonl of 3,000,000 lines (386 MB) reached 5.4 GB and a MemoryError
    traceback. Now it is read a line at a time and thinned past 100,000 records: reading 300,000
    lines (47 MB) grows a fresh process's peak by under 150 MiB (all of them took 360 MiB), and
    the final record is still found."""
    run = tmp_path / "run"
    shutil.copytree(classifier_run.dir, run)
    big_metrics(run, 300_000)
    assert (run / "metrics.jsonl").stat().st_size > 40e6
    done = subprocess.run(
        [sys.executable, "-c", READ_METRICS, str(run)], env=SUBPROCESS_ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["grown"] < 150 * 2**20, result["grown"]
    assert result["records"] == 75_000 and result["final"] == classifier_run.final
    assert (
        "holds 300,000 epoch records, more than are read (100,000, 32 MiB): every 4th is kept (75,000)" in done.stderr
    )
    reliability.record(
        "inputs",
        "metrics.jsonl of 300,000 records (47 MB) read by report, eval and predict",
        "read a line at a time, thinned to 75,000 with a warning; a fresh process's peak grew under 150 MiB",
    )


@pytest.mark.slow  # 60 s on 2 cores: 3 million lines written and read twice
def test_report_of_three_million_metrics_lines_ends_in_a_report(tmp_path, classifier_run, reliability):
    run = tmp_path / "run"
    shutil.copytree(classifier_run.dir, run)
    big_metrics(run, 3_000_000)
    code, err, _ = disgen_limited(["report", run, "--out", tmp_path / "r.html"], 4 << 30, timeout=600)
    assert code == 0, err[-2000:]
    assert (tmp_path / "r.html").stat().st_size > 10_000
    reliability.record(
        "inputs",
        "report on a metrics.jsonl of 3,000,000 lines (386 MB), under a 4 GiB address-space limit",
        "a report, the records thinned with a warning",
    )


# ---- Hugging Face datasets: missing images, no rows, array types --------------------------------


HF_SCRIPT = r"""
import io, json, sys, warnings
from pathlib import Path

import datasets
import numpy as np
from PIL import Image


def png(value, size=8):
    out = io.BytesIO()
    Image.fromarray(np.full((size, size), value, np.uint8)).save(out, format="PNG")
    return out.getvalue()


root = Path(sys.argv[1])
image = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
rows = [{"bytes": png(10 * i), "path": None} if i % 3 else None for i in range(12)]
labels = [i % 2 for i in range(12)]
datasets.Dataset.from_dict({"image": rows, "label": labels}, features=image).save_to_disk(root / "none")
empty = datasets.Dataset.from_dict({"image": [], "label": []}, features=image)
empty.save_to_disk(root / "empty")
empty.to_parquet(root / "empty.parquet")
int16 = datasets.Features({"pixels": datasets.Array2D((4, 4), "int16"), "label": datasets.Value("int64")})
pixels = [np.full((4, 4), 300, np.int16)] * 3
datasets.Dataset.from_dict({"pixels": pixels, "label": [0, 1, 0]}, features=int16).save_to_disk(root / "int16")
rows_of = datasets.Sequence(datasets.Sequence(datasets.Value("uint8")))
nested = datasets.Features({"pixels": rows_of, "label": datasets.Value("int64")})
arrays = [[], [[1, 2], [3, 4]], [[5, 6], [7, 8]], [[9, 9], [9]], [[1, 1], [1, 1]]]
datasets.Dataset.from_dict({"pixels": arrays, "label": [0, 1, 0, 1, 1]}, features=nested).save_to_disk(root / "ragged")
bomb = [{"bytes": png(40, 8), "path": None}] * 5 + [{"bytes": png(40, 160), "path": None}]
datasets.Dataset.from_dict({"image": bomb, "label": [0, 1, 0, 1, 0, 1]}, features=image).save_to_disk(root / "bomb")
"""

HF_CASES = {  # the dataset, and the error it must give (None: it trains, the rows without an image skipped)
    "None in the image column": ("none", None),
    "0 rows (save_to_disk)": ("empty", "holds no rows in its train split (0 images)"),
    "0 rows (Parquet)": ("empty.parquet", "holds no rows in its train split (0 images)"),
    "int16 arrays over 255": ("int16", "holds arrays of int16, not uint8 pixels in 0..255 (e.g. 300)"),
    "an empty and a ragged array": ("ragged", None),
}


@pytest.fixture(scope="module")
def hf_saved(tmp_path_factory) -> tuple[Path, dict]:
    """The datasets of HF_SCRIPT, made in a subprocess (``datasets`` is never imported here: test_hf
    imports it after setting HF_HOME) and the environment that reads them offline."""
    if importlib.util.find_spec("datasets") is None:
        pytest.skip("needs the datasets library (pip install disgen[hf])")
    root = tmp_path_factory.mktemp("hf")
    env = {**SUBPROCESS_ENV, "HF_HOME": str(root / "hf-home"), "DISGEN_HOME": str(root / "home")}
    env.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", HF_SCRIPT, str(root)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return root, env


@pytest.mark.slow
def test_hostile_hugging_face_datasets_end_in_one_line(hf_saved, reliability):
    """A None in the image column was a TypeError traceback; 0 rows, "the datasets library cannot
    read it (IndexError...)"; int16 arrays were reported as int64, an empty array as "object"."""
    root, env = hf_saved
    for what, (name, words) in HF_CASES.items():
        path = root / name
        done = run_disgen(
            "train", "mlp-classifier", "--dataset", str(path), "--epochs", "1", "--hidden", "4", "--no-progress",
            "--val-split", "0", "--run-dir", str(root / "runs" / name), env=env,
        )  # fmt: skip
        assert "Traceback" not in done.stderr, (what, done.stderr[-2000:])
        if words is None:
            assert done.returncode == 0 and "unreadable image(s)" in done.stderr, (what, done.stderr[-2000:])
        else:
            line = done.stderr.strip().splitlines()[-1]
            assert done.returncode == 2 and line.startswith(f"disgen: error: dataset {path}") and words in line, line
        reliability.record(
            "inputs",
            "Hugging Face dataset: None in the image column, 0 rows, int16 arrays, empty and ragged arrays",
            "one clear error naming the dtype or the empty split; rows without an image skipped and counted",
        )


BOMB_SCRIPT = r"""
import json, sys, warnings
from PIL import Image
from disgen.data import images, load_dataset

Image.MAX_IMAGE_PIXELS = 20_000  # the dataset's 160x160 image is a bomb
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    data = load_dataset(sys.argv[1])  # its images' own size: their headers are read first
print(json.dumps({"warned": [str(w.category.__name__) for w in caught], "images": len(data.train) + len(data.test)}))
"""


def test_a_hugging_face_bomb_is_not_warned_about_on_the_terminal(hf_saved):
    """Reading the images' sizes let Pillow's DecompressionBombWarning reach stderr; the decode then
    refused the image anyway. Now only disgen's own warning names it."""
    root, env = hf_saved
    done = subprocess.run(
        [sys.executable, "-c", BOMB_SCRIPT, str(root / "bomb")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "DecompressionBombWarning" not in result["warned"] and result["images"] == 5, result
    assert "skipped 1 unreadable image(s) of 6" in done.stderr and "DecompressionBombWarning" not in done.stderr


# ---- layers of zero width -----------------------------------------------------------------------


def zero_width_options(name: str) -> list[tuple[str, object]]:
    """Each size option of ``name``'s config set to 0 (or a tuple holding 0), where the model then
    builds (on the meta device) a parameter of no elements."""
    import dataclasses

    from disgen.models import check_size

    spec = get_model(name)
    shape = spec.data_shape(spec.model_config()) or (1, 28, 28)
    found = []
    for f in dataclasses.fields(spec.config_cls):
        value = getattr(spec.model_config(), f.name)
        zero = (0,) * len(value) if isinstance(value, tuple) and value and isinstance(value[0], int) else 0
        if not (isinstance(value, int) and not isinstance(value, bool) or zero != 0) or f.name.endswith(
            ("depth", "convs")
        ):
            continue
        try:
            cfg = spec.model_config({f.name: zero})
            with torch.device("meta"):
                nets = spec.builder(cfg, shape, 10)
        except Exception:  # refused already (a check of the model's own, or torch's)
            continue
        if any(p.numel() == 0 for m in nets.values() for p in m.parameters()):
            found.append((f.name, zero))
            from disgen.errors import DisgenError

            with pytest.raises(DisgenError, match="has a layer of zero width"):
                check_size(spec, cfg, shape, 10)
    return found


def test_a_layer_of_zero_width_is_refused_for_every_model(tmp_path, idx_dir, capsys, reliability):
    """``--hidden 0`` trained a network with a zero-width layer (10% accuracy, exit 0). Every size
    option of every registered model that builds such a layer is refused, naming the layer; one
    end to end through the command line."""
    tried = {name: zero_width_options(name) for name in list_models()}
    assert ("hidden", (0, 0)) in tried["mlp-classifier"] and ("latent_dim", 0) in tried["dcgan28"]
    assert sum(map(len, tried.values())) >= 10, tried
    code, err = cli_error(
        capsys, "train", "mlp-classifier", "--dataset", idx_dir, "--hidden", "0", "--run-dir", tmp_path / "r"
    )
    assert code == 2 and err == (
        "disgen: error: mlp-classifier with --hidden (0,) has a layer of zero width (model.body.1.weight (0, 784)): "
        "every layer needs at least one unit or channel; choose sizes of 1 or more"
    )
    assert not (tmp_path / "r").exists()
    reliability.record(
        "inputs",
        f"a size option of 0 for every model ({sum(map(len, tried.values()))} options building a zero-width layer)",
        "one clear error naming the layer",
        sum(map(len, tried.values())) + 1,
    )


# ---- NaN, infinite and integer weights; crafted export metadata ---------------------------------


def crafted_run(tmp_path: Path, run_dir: Path, change) -> Path:
    """A copy of ``run_dir`` whose checkpoints' first network tensor is changed, digests recomputed."""
    d = tmp_path / "crafted"
    shutil.copytree(run_dir, d)
    for path in (d / "checkpoints").glob("*.pt"):
        state = checkpoint.load(path)
        net = state["nets"]["model"]
        key = next(k for k, v in net.items() if v.is_floating_point())
        net[key] = change(net[key])
        checkpoint.save(path, state)
    return d


def test_finite_weights_that_overflow_never_give_rows_of_nan(tmp_path, classifier_run, mnist_mini, capsys, reliability):
    """Weights of 3e38 are finite and pass every check, but overflow: predict would write rows of
    nan. The outputs are checked too: one error naming the checkpoint."""
    from disgen.data.idx import write_idx

    d = crafted_run(tmp_path, classifier_run.dir, lambda t: torch.full_like(t, 3e38))
    write_idx(tmp_path / "x-idx3-ubyte", mnist_mini.test.images[:4, 0])
    code, err = cli_error(capsys, "predict", d, tmp_path / "x-idx3-ubyte")
    assert code == 2 and "gives NaN or infinite outputs for 4 of 4 inputs: its weights are damaged" in err, err
    reliability.record(
        "loading", "checkpoint with finite weights of 3e38 (outputs overflow)", "predict: one clear error, no nan rows"
    )


WEIGHTS = {
    "NaN": lambda t: t.clone().fill_(float("nan")),
    "infinity": lambda t: torch.where(t > 0, float("inf"), t),
    "int32": lambda t: t.round().to(torch.int32),
}


@pytest.mark.parametrize("what", list(WEIGHTS))
def test_checkpoints_with_nan_inf_or_integer_weights_are_refused(
    tmp_path, classifier_run, mnist_mini, capsys, what, reliability
):
    """NaN or infinite weights passed validation: predict wrote rows of nan (exit 0), eval a bare
    NaN into eval.json, export a folder holding only its manifest, serve a 500 with a traceback in
    its log; int32 weights loaded and gave zeros. Each command now refuses the checkpoint, naming
    the tensor (serve before it listens)."""
    from disgen.data.idx import write_idx

    d = crafted_run(tmp_path, classifier_run.dir, WEIGHTS[what])
    write_idx(tmp_path / "x-idx3-ubyte", mnist_mini.test.images[:4, 0])
    words = "holds NaN or infinite values" if what != "int32" else "dtype torch.int32 != torch.float32"
    commands = (["eval"], ["predict", tmp_path / "x-idx3-ubyte"], ["export", "--format", "safetensors"])
    for command in (*commands, ["serve", "--port", "0"]):
        code, err = cli_error(capsys, command[0], d, *command[1:])
        assert code == 2 and "the checkpoint does not fit this model: model." in err and words in err, (command, err)
    assert not (d / "eval.json").exists() or "NaN" not in (d / "eval.json").read_text()
    assert not (d / "exports").exists()
    reliability.record(
        "loading",
        "checkpoint with NaN, infinite or int32 weights, digest recomputed (eval, predict, export, serve)",
        "one clear error naming the tensor; nothing written",
        4,
    )


def test_eval_json_never_holds_a_bare_nan(tmp_path):
    from disgen.files import write_json

    write_json(tmp_path / "e.json", {"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -float("inf")}})
    assert json.loads((tmp_path / "e.json").read_text(), parse_constant=pytest.fail) == {
        "a": None,
        "b": [None, 1.5],
        "c": {"d": None},
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory, classifier_run) -> Path:
    from disgen.export import export_run

    out = tmp_path_factory.mktemp("exported") / "out"
    export_run(classifier_run.dir, "safetensors", out)
    return out / "model.safetensors"


METADATA = {
    "roles": ["5", '"model"', "[5]", '["nope"]', "null"],
    "classes": ["5", "[]", "[1, 2]"],
    "image_shape": ['"x"', "[1, 28]", "[1, 99999, 28]", '[1, "a", 28]'],
    "model_args": ["[]", '{"hidden": "abc"}', '{"nope": 1}'],
    "model": ["no-such-model"],
}


def test_crafted_safetensors_metadata_is_one_error(tmp_path, exported, reliability):
    """A safetensors export whose metadata ``roles`` is ``"5"`` raised TypeError in load_networks;
    every field of the metadata, crafted, is now one DisgenError naming the file."""
    import safetensors.torch

    from disgen.errors import DisgenError
    from disgen.export.weights import load_networks

    tensors = safetensors.torch.load_file(str(exported))
    with safetensors.safe_open(str(exported), "pt") as f:
        meta = f.metadata()
    tries = 0
    for key, values in METADATA.items():
        for value in values:
            path = tmp_path / "m.safetensors"
            safetensors.torch.save_file(tensors, str(path), {**meta, key: value})
            with pytest.raises(DisgenError, match="m.safetensors"):
                load_networks(path)
            tries += 1
    for change, words in (
        (lambda v: v.clone().fill_(float("nan")), "holds NaN or infinite values"),
        (lambda v: v.round().to(torch.int32), "dtype torch.int32 != torch.float32"),  # loaded as whole numbers
    ):
        crafted = {k: change(v) if v.is_floating_point() else v for k, v in tensors.items()}
        safetensors.torch.save_file(crafted, str(tmp_path / "m.safetensors"), meta)
        with pytest.raises(DisgenError, match=words):
            load_networks(tmp_path / "m.safetensors")
    reliability.record(
        "loading",
        "safetensors export with crafted metadata (roles, classes, image shape, options, model), NaN or int32 weights",
        "one clear error naming the file",
        tries + 2,
    )


# ---- memory limits below the machine's ------------------------------------------------------------


def test_an_address_space_limit_bounds_the_model_size_check(tmp_path, idx_dir, reliability):
    """The model-size check read physical memory only: under ``ulimit -v`` (RLIMIT_AS) a network
    that fits the machine but not the limit ended in torch's "can't allocate memory" traceback.
    Now the limit (less what the process has mapped) is the memory it checks against."""
    args = ["train", "mlp-classifier", "--dataset", idx_dir, "--hidden", "30000,30000", "--epochs", "1"]
    code, err, line = disgen_limited([*args, "--run-dir", tmp_path / "r"], 6 << 30, timeout=120)
    assert code == 2, err[-2000:]
    assert line.startswith("disgen: error: mlp-classifier with --hidden (30000, 30000) has 923,880,010 parameters")
    assert "GiB of memory this process may use" in line
    reliability.record(
        "inputs",
        "a model that fits the machine but not ulimit -v 6 GiB (924 M parameters)",
        "one clear error naming the parameters and the limit",
    )


@pytest.mark.slow
def test_running_out_of_memory_mid_run_is_one_line(tmp_path, reliability):
    """An allocation that fails after every check (a batch of 4,000 through 256-channel stages under
    a 3 GiB address-space limit): torch's "DefaultCPUAllocator: can't allocate memory" was a
    traceback; it is one error saying what to make smaller."""
    args = ["train", "cnn-classifier", "--batch-size", "4000", "--widths", "256,256,256", "--epochs", "1"]
    code, err, line = disgen_limited([*args, "--no-progress", "--run-dir", tmp_path / "r"], 3 << 30)
    assert code == 2, err[-2000:]
    assert line.startswith("disgen: error: out of memory (") and "can't allocate memory" in line, line
    assert line.endswith("choose smaller sizes, a smaller --batch-size or image size, or free some memory")
    reliability.record(
        "inputs",
        "an allocation failing mid-run (batch 4,000 at 256 channels under ulimit -v 3 GiB)",
        "one clear error saying what to make smaller",
    )


def can_make_cgroup() -> Path | None:
    """A fresh memory cgroup below this process's own (cgroup v1 or v2), or None where none can be made."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            base, limit = Path("/sys/fs/cgroup"), "memory.max"
        elif "memory" in controllers.split(","):
            base, limit = Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"
        else:
            continue
        group = base / path.lstrip("/") / "disgen-test"
        try:
            group.mkdir(exist_ok=True)
        except OSError:
            continue
        if (group / limit).exists():
            return group
        group.rmdir()
    return None


def test_a_cgroup_memory_limit_bounds_the_model_size_check(tmp_path, idx_dir, reliability):
    group = can_make_cgroup()
    if group is None:
        pytest.skip("cannot make a memory cgroup here")
    name = "memory.max" if (group / "memory.max").exists() else "memory.limit_in_bytes"
    try:
        (group / name).write_text(str(2 << 30))
        args = ["train", "mlp-classifier", "--dataset", idx_dir, "--hidden", "20000,20000", "--epochs", "1"]
        join = lambda: (group / "cgroup.procs").write_text("0")  # noqa: E731  (the child joins the cgroup)
        code, err, line = disgen_limited([*args, "--run-dir", tmp_path / "r"], None, 120, join)
    finally:
        group.rmdir()
    assert code == 2, err[-2000:]
    assert "has 415,920,010 parameters, over the 134,217,728 this machine can train" in line, line
    assert "in the 2.0 GiB of memory this process may use" in line
    reliability.record(
        "inputs",
        "a model that fits the machine but not its cgroup's 2 GiB memory limit (416 M parameters)",
        "one clear error naming the parameters and the limit",
    )


# ---- class names holding control characters -----------------------------------------------------


def test_a_class_name_holding_nul_never_reaches_the_report(tmp_path, classifier_run):
    d = tmp_path / "run"
    shutil.copytree(classifier_run.dir, d)
    info = json.loads((d / "run.json").read_text())
    info["data"]["classes"] = ["zero\x00<b>", *info["data"]["classes"][1:]]
    (d / "run.json").write_text(json.dumps(info))
    done = run_disgen("report", str(d), "--checkpoint", "best")
    assert done.returncode == 0, done.stderr
    html = (d / "report.html").read_text()
    assert "\x00" not in html and "zero\\x00&lt;b&gt;" in html
