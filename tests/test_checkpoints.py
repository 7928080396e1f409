"""Crafted checkpoints: well-formed files (their SHA-256 recomputed, as anyone can) whose contents
are not a disgen run's: missing keys, wrong types and ranges, and tensors that do not fit their
parameters (a wrong-shaped Adam exp_avg once made ``train --resume`` segfault). Each ends in one
``disgen: error:`` line, exit 2, with nothing written; fuzzed with hypothesis on the structure and
the tensor shapes. Faults are counted as in test_hardening.py."""

from __future__ import annotations

import copy
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import cli_error, last_line, run_disgen
from hypothesis import example, given
from hypothesis import strategies as st
from test_fuzz import fuzz
from test_hardening import Forked, metrics
from test_trainer import Payload, assert_same_training

import disgen
from disgen.cli import main
from disgen.errors import DisgenError
from disgen.models.weights import read_weights
from disgen.runs import checkpoint


@pytest.fixture(scope="module")
def resumable_runs(tmp_path_factory, idx_dir) -> dict[str, Path]:
    """One epoch of mlp-classifier with Adam (a cosine schedule) and with SGD (momentum buffers)."""
    out = {}
    for opt in ("adam", "sgd"):
        d = tmp_path_factory.mktemp("crafted") / opt
        assert (
            main(
                [
                    "train",
                    "mlp-classifier",
                    "--dataset",
                    str(idx_dir),
                    "--epochs",
                    "1",
                    "--hidden",
                    "16",
                    "--optimizer",
                    opt,
                    "--no-progress",
                    "--run-dir",
                    str(d),
                ]
            )
            == 0
        )
        out[opt] = d
    return out


def craft(run: Path, tmp_path: Path, change) -> Path:
    """A copy of ``run`` whose last.pt is ``change(state)``, saved with a fresh digest, and no best.pt
    (so nothing falls back to a good checkpoint)."""
    d = tmp_path / "crafted"
    shutil.copytree(run, d)
    state = checkpoint.load(d / "checkpoints" / "last.pt")
    change(state)
    state.pop("sha256")
    checkpoint.save(d / "checkpoints" / "last.pt", state)
    (d / "checkpoints" / "best.pt").unlink()
    return d


def resume_and_eval(d: Path, idx_dir: Path) -> list[tuple[int, str]]:
    """(exit code, stderr) of ``train --resume`` and of ``eval`` in real processes (a native crash
    is an exit status here); eval runs first, on the crafted file."""
    out = []
    for args in (
        ["eval", str(d)],
        [
            "train",
            "mlp-classifier",
            "--dataset",
            str(idx_dir),
            "--epochs",
            "2",
            "--resume",
            "--no-progress",
            "--run-dir",
            str(d),
        ],
    ):
        proc = run_disgen(*args)
        out.append((proc.returncode, proc.stderr))
    return out[::-1]


TENSOR_MISMATCHES = {
    "Adam exp_avg of the wrong shape": (
        "adam",
        lambda s: s["opts"]["model"]["state"][0].update(exp_avg=torch.zeros(3)),
        "opts.model state 0.exp_avg shape (3,) != its parameter's shape (16, 784)",
    ),
    "Adam exp_avg_sq transposed": (
        "adam",
        lambda s: s["opts"]["model"]["state"][2].update(
            exp_avg_sq=s["opts"]["model"]["state"][2]["exp_avg_sq"].t().contiguous()
        ),
        "state 2.exp_avg_sq shape (16, 10) != its parameter's shape (10, 16)",
    ),
    "Adam exp_avg in float64": (
        "adam",
        lambda s: s["opts"]["model"]["state"][1].update(exp_avg=s["opts"]["model"]["state"][1]["exp_avg"].double()),
        "state 1.exp_avg shape (16,) torch.float64",
    ),
    "SGD momentum_buffer of the wrong shape": (
        "sgd",
        lambda s: s["opts"]["model"]["state"][0].update(momentum_buffer=torch.zeros(16, 783)),
        "state 0.momentum_buffer shape (16, 783) != its parameter's",
    ),
    "a param group of fewer parameters": (
        "adam",
        lambda s: (s["opts"]["model"]["param_groups"][0].update(params=[0, 1, 2]), s["opts"]["model"]["state"].pop(3)),
        "param groups of [3] parameters != [4]",
    ),
    "Adam's maximize flag None": (  # the fused step's TypeError, found by test_fuzzed_checkpoints
        "adam",
        lambda s: s["opts"]["model"]["param_groups"][0].update(maximize=None),
        "opts.model.param_groups[0].maximize is None, not a value like False",
    ),
    "a network weight of the wrong shape": (
        "adam",
        lambda s: s["nets"]["model"].update({"fc.weight": torch.zeros(10, 17)}),
        "model.fc.weight shape (10, 17) != (10, 16)",
    ),
}


DEFAULT_MISMATCHES = {"Adam exp_avg of the wrong shape", "Adam's maximize flag None"}  # seen crash; the rest: -m slow


@pytest.mark.parametrize(
    "case",
    [c if c in DEFAULT_MISMATCHES else pytest.param(c, marks=pytest.mark.slow) for c in sorted(TENSOR_MISMATCHES)],
)
def test_checkpoint_tensors_that_do_not_fit_are_refused_before_use(
    case, resumable_runs, tmp_path, idx_dir, reliability
):
    """A wrong-shaped Adam exp_avg once reached the fused kernel: a segmentation fault (exit 139)."""
    opt, change, words = TENSOR_MISMATCHES[case]
    d = craft(resumable_runs[opt], tmp_path, change)
    before = (d / "checkpoints" / "last.pt").read_bytes()
    (train_code, train_err), (eval_code, eval_err) = resume_and_eval(d, idx_dir)
    line = last_line(train_err)
    assert train_code == 2 and line.startswith("disgen: error: ") and len(train_err.splitlines()) <= 2, train_err
    assert "the checkpoint does not fit this model: " in line and words in line, line
    assert (d / "checkpoints" / "last.pt").read_bytes() == before and [r["epoch"] for r in metrics(d)] == [1]
    if case.startswith("a network"):  # eval loads the networks only
        assert eval_code == 2 and words in last_line(eval_err)
    else:
        assert eval_code == 0, eval_err
    reliability.record(
        "loading",
        "crafted checkpoint: a tensor that does not fit its parameter (Adam, SGD, networks; train --resume and eval)",
        "one clear error naming the tensor and both shapes; nothing written",
        1,
    )


STRUCTURE = {  # case: (change, words of the error, whether eval refuses it too)
    "missing data": (lambda s: s.pop("data"), "'data' missing", True),
    "missing opts": (lambda s: s.pop("opts"), "'opts' missing", True),
    "missing rng": (lambda s: s.pop("rng"), "'rng' missing", True),
    "epoch a string": (lambda s: s.update(epoch="abc"), "'epoch' is str", True),
    "epoch a bool": (lambda s: s.update(epoch=True), "'epoch' is bool", True),
    "a negative epoch": (lambda s: s.update(epoch=-3), "epoch -3 is not in 0..", True),
    "a best_rank of NaN": (
        lambda s: s.update(best_rank=[float("nan"), 0.0]),
        "'best_rank' is not a list of two numbers",
        True,
    ),
    "a best_rank of one string": (lambda s: s.update(best_rank="x"), "'best_rank' is not a list of two numbers", True),
    "image shape 1x100000x100000": (
        lambda s: s["data"].update(image_shape=[1, 100000, 100000]),
        "data.image_shape [1, 100000, 100000] is not a data shape",
        True,
    ),
    "image shape of strings": (
        lambda s: s["data"].update(image_shape=["1", "28", "28"]),
        "data.image_shape ['1', '28', '28'] is not a data shape",
        True,
    ),
    "no classes": (lambda s: s["data"].update(classes=[]), "data.classes is not a list of 1..100,000", True),
    "a torch RNG state of 10 bytes": (
        lambda s: s["rng"].update(torch=torch.zeros(10, dtype=torch.uint8)),
        "rng.torch is not a generator state (a uint8 vector of 5056 bytes)",
        True,
    ),
    "a loader RNG state of floats": (
        lambda s: s["rng"].update(loader=torch.zeros(5056)),
        "rng.loader is not a generator state",
        True,
    ),
    "a step of -1": (
        lambda s: s["opts"]["model"]["state"][0].update(step=torch.tensor(-1.0)),
        "state 0.step is -1.0, not a count of steps",
        True,
    ),
    "a step that is a vector": (
        lambda s: s["opts"]["model"]["state"][3].update(step=torch.ones(5)),
        "state 3.step is a tensor of shape (5,), not a count of steps",
        True,
    ),
    "an Adam state without exp_avg": (
        lambda s: s["opts"]["model"]["state"][0].pop("exp_avg"),
        "opts.model state 0 lacks exp_avg",
        False,
    ),
    "a NaN learning rate": (
        lambda s: s["opts"]["model"]["param_groups"][0].update(lr=float("nan")),
        "param_groups[0].lr is nan, not a value like",
        False,
    ),
    "betas of three numbers": (
        lambda s: s["opts"]["model"]["param_groups"][0].update(betas=(0.9, 0.9, 0.9)),
        "param_groups[0].betas is (0.9, 0.9, 0.9), not a value like",
        False,
    ),
    "a schedule with an attribute of its own": (
        lambda s: s["scheds"]["model"].update(step=5),
        "scheds.model has unexpected key(s) step",
        False,
    ),
}


@pytest.mark.parametrize("case", sorted(STRUCTURE))
def test_checkpoint_structure_is_checked_before_use(case, resumable_runs, tmp_path, capsys, reliability):
    change, words, eval_refuses = STRUCTURE[case]
    d = craft(resumable_runs["adam"], tmp_path, change)
    last = d / "checkpoints" / "last.pt"
    code, err = cli_error(
        capsys, "train", "mlp-classifier", "--epochs", "2", "--resume", "--no-progress", "--run-dir", d
    )
    assert code == 2 and words in err, err
    if eval_refuses:  # the structure: refused on load, by every command
        assert err.startswith(
            f"disgen: error: no usable checkpoint in {d / 'checkpoints'}: checkpoint {last} is "
            "not a valid disgen checkpoint: "
        ), err
    else:  # what only --resume uses: optimizer hyperparameters and schedules
        assert err.startswith("disgen: error: the checkpoint does not fit this model: "), err
    code, err = cli_error(capsys, "eval", d)
    if eval_refuses:
        assert code == 2 and err.startswith(f"disgen: error: checkpoint {last} is not a valid disgen checkpoint: ")
        assert words in err
    else:
        assert code == 0, err
    assert [r["epoch"] for r in metrics(d)] == [1]
    reliability.record(
        "loading",
        "crafted checkpoint: missing keys, wrong types, negative epochs, absurd image "
        "shapes, bad RNG states, steps, learning rates, schedules",
        "one clear error naming the key and value",
        1,
    )


# ---- fuzzed: any value of the state replaced, removed, or a tensor reshaped or retyped ---------------


def sites(state, path=()) -> list[tuple]:
    """Every key path into a checkpoint's state (dicts and lists), its digest left out."""
    out = []
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, list) else []
    for k, v in items:
        if k == "sha256":
            continue
        out.append((*path, k))
        if len(path) < 5:
            out += sites(v, (*path, k))
    return out


@pytest.fixture(scope="module")
def fuzz_runs(resumable_runs) -> dict[str, tuple[Path, dict, list[tuple]]]:
    """Each run's directory, its last.pt's state and every key path into it."""
    out = {}
    for opt, base in resumable_runs.items():
        state = checkpoint.load(base / "checkpoints" / "last.pt")
        out[opt] = base, state, sorted(sites(state), key=repr)
    return out


DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool, torch.complex64]
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=6)
    | st.builds(
        lambda shape, dtype: torch.zeros(shape, dtype=dtype),
        st.lists(st.integers(0, 6), max_size=3),
        st.sampled_from(DTYPES),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4) | st.integers(-2, 8), inner, max_size=3)
    ),
    max_leaves=5,
)
changes = st.one_of(
    st.tuples(st.just("remove"), st.none()),
    st.tuples(st.just("replace"), values),
    st.tuples(st.just("reshape"), st.lists(st.integers(0, 20), max_size=3)),  # tensors: other shape, same dtype
    st.tuples(st.just("retype"), st.sampled_from(DTYPES)),
)


def mutate(state: dict, path: tuple, change: tuple) -> str:
    """Apply ``change`` at ``path``; returns what was done, for the count."""
    *parents, key = path
    holder = state
    for k in parents:
        holder = holder[k]
    kind, arg = change
    old = holder[key]
    if kind == "remove":
        holder.pop(key) if isinstance(holder, dict) else holder.pop(key)
    elif kind == "replace":
        holder[key] = arg
    elif not isinstance(old, torch.Tensor):
        holder[key] = None
        kind = "replace"
    elif kind == "reshape":
        holder[key] = torch.zeros(arg, dtype=old.dtype)
    else:
        holder[key] = old.to(arg)
    return kind


@pytest.mark.slow
@fuzz(80)
@given(data=st.data(), change=changes)
@example(data=None, change=("reshape", [3]))  # the exp_avg that segfaulted
@example(data=None, change=("replace", None))  # an exp_avg of None: a TypeError deep in Adam's step
def test_fuzzed_checkpoints(fuzz_runs, tmp_path_factory, idx_dir, reliability, data, change):
    """One value anywhere in last.pt of an Adam or an SGD run changed (and the digest recomputed):
    ``eval`` and ``train --resume`` in real (forked) processes each end in a result or one
    ``disgen: error:`` line; a refusal leaves the run as it was."""
    base, state, paths = fuzz_runs["adam" if data is None else data.draw(st.sampled_from(sorted(fuzz_runs)))]
    path = ("opts", "model", "state", 0, "exp_avg") if data is None else data.draw(st.sampled_from(paths))
    d = tmp_path_factory.mktemp("fuzzed") / "run"
    shutil.copytree(base, d)
    (d / "checkpoints" / "best.pt").unlink()  # no good checkpoint to fall back to
    crafted = copy.deepcopy(state)
    done = mutate(crafted, path, change)
    crafted.pop("sha256", None)
    if "format" in crafted and crafted.get("version") == checkpoint.VERSION:
        checkpoint.save(d / "checkpoints" / "last.pt", crafted)
    else:  # save() would stamp them back
        torch.save(crafted, d / "checkpoints" / "last.pt")
    before = (d / "checkpoints" / "last.pt").read_bytes()
    outcomes = []
    for args in (
        ["eval", str(d)],
        [
            "train",
            "mlp-classifier",
            "--dataset",
            str(idx_dir),
            "--epochs",
            "2",
            "--resume",
            "--no-progress",
            "--run-dir",
            str(d),
        ],
    ):  # eval reads it first
        code, err = Forked(args).wait()
        assert code in (0, 2), f"{path} {done}: exit {code}: {err[-2000:]}"
        assert "Traceback" not in err, err
        if code == 2:
            lines = [line for line in err.splitlines() if line.startswith("disgen:")]
            assert len(lines) == 1 and lines[0] == err.strip().splitlines()[-1], err
            assert lines[0].startswith("disgen: error: ") and ("checkpoint" in lines[0]), lines[0]
            if args[0] == "train":
                assert (d / "checkpoints" / "last.pt").read_bytes() == before
                assert [r["epoch"] for r in metrics(d)] == [1]
        outcomes.append("refused" if code else "ran")
    outcome = {
        ("refused", "refused"): "one clear error from eval and from --resume",
        ("ran", "refused"): "eval ran; --resume refused it (what only training uses)",
        ("ran", "ran"): "both ran: a value neither uses (the saved config, best, a schedule's flag)",
        ("refused", "ran"): "eval refused it; --resume ran",
    }[tuple(outcomes)]
    assert tuple(outcomes) != ("refused", "ran") or path[0] == "data", (path, done)  # resume reads the dataset
    reliability.record(
        "loading",
        "crafted checkpoint (hypothesis): one value anywhere removed, replaced by "
        "random JSON-like values or tensors, or a tensor reshaped or retyped; digest recomputed",
        outcome,
    )


def test_a_damaged_checkpoints_message_ends_on_a_whole_sentence(tmp_path, classifier_run):
    """The warning cut torch's message at 200 characters, mid-sentence ("... to do so you have
    two options, do those steps only if you trust the source of the checkpoint. (1) In PyTorch 2.6
    we changed the default value of the `weights_only` argu"): now its first sentence."""
    from disgen.errors import DisgenError, brief

    path = tmp_path / "last.pt"
    data = bytearray((classifier_run.run_dir / "checkpoints" / "last.pt").read_bytes())
    data[100:200] = b"x" * 100  # inside the pickle: torch reads it and refuses it
    path.write_bytes(bytes(data))
    with pytest.raises(DisgenError) as err:
        checkpoint.load(path)
    message = str(err.value)
    assert f"checkpoint {path} cannot be loaded safely (" in message and "argu)" not in message
    inner = message.split("(", 1)[1].split(")", 1)[0]
    assert inner.endswith("failed") or inner.endswith("directory"), inner  # a whole phrase of torch's
    long = "Weights only load failed. This file can still be loaded, to do so you have two options, " * 5
    assert brief(long) == "Weights only load failed"
    assert brief("word " * 100) == ("word " * 40).strip() + "..." and len(brief("x" * 500)) == 203


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_truncated_or_garbage_checkpoint_is_one_error_and_writes_nothing(capsys, tmp_path, classifier_run, damage):
    """`disgen eval --checkpoint last` of a run whose last.pt is cut short or garbage: one line
    naming the file, and no eval.json written."""
    d = tmp_path / "copy"
    shutil.copytree(classifier_run.dir, d)
    last = d / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"\x00" * 100)
    (d / "eval.json").unlink(missing_ok=True)
    code, err = cli_error(capsys, "eval", d, "--checkpoint", "last")
    assert code == 2 and err.startswith("disgen: error: ") and str(last) in err and "cannot be loaded safely" in err
    assert not (d / "eval.json").exists()


# ---- checksums: damaged checkpoints are detected, and resume uses a good one ----------------------


def flip_tensor_bit(path: Path) -> None:
    """Flip one bit inside the largest tensor's bytes: the zip and pickle stay valid, so
    ``torch.load`` alone reads the damaged values without noticing."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE = {
    "one flipped bit in a tensor": flip_tensor_bit,
    "truncated to half": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "zero bytes": lambda p: p.write_bytes(b""),
    "a crafted pickle that runs code": lambda p: torch.save(
        {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "x": Payload(p.parent / "pwned")}, p
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_last_checkpoint_is_detected_and_resume_uses_best(
    tmp_path, tiny_data, mlp_val_reference, mlp_first_two_epochs, damage, reliability, capsys
):
    d = tmp_path / "run"
    shutil.copytree(mlp_first_two_epochs, d)
    options = dict(preset="seed", val_split=0.1, dataset_obj=tiny_data, progress=False, run_dir=str(d))
    last, best = d / "checkpoints" / "last.pt", d / "checkpoints" / "best.pt"
    stored_epoch = checkpoint.load(best)["epoch"]
    DAMAGE[damage](last)
    if damage == "one flipped bit in a tensor":
        torch.load(last, weights_only=True)  # torch alone does not notice
    with pytest.raises(DisgenError) as err:
        checkpoint.load(last)
    assert str(last) in str(err.value) and ("corrupt" in str(err.value) or "not a disgen" in str(err.value))
    disgen.train("mlp-classifier", epochs=3, resume=True, **options)
    log = capsys.readouterr().err
    assert f"warning: checkpoint {last}" in log and f"continuing from {best} (epoch {stored_epoch})" in log
    assert not (d / "checkpoints" / "pwned").exists()
    assert_same_training(mlp_val_reference, d)
    reliability.record(
        "checksum",
        f"last.pt damaged: {damage}",
        "detected, named in a warning; resumed from best.pt to bit-identical final weights",
    )


def test_every_checkpoint_damaged_is_one_clear_error(tmp_path, idx_dir, capsys, reliability):
    d = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "mlp-classifier",
                "--dataset",
                str(idx_dir),
                "--epochs",
                "1",
                "--no-progress",
                "--run-dir",
                str(d),
            ]
        )
        == 0
    )
    for name in ("last.pt", "best.pt"):
        flip_tensor_bit(d / "checkpoints" / name)
    code, err = cli_error(capsys, "train", "mlp-classifier", "--epochs", "2", "--resume", "--run-dir", d)
    assert code == 2 and err.startswith("disgen: error: no usable checkpoint in")
    assert err.count("do not match the SHA-256 digest") == 2 and "new --run-dir" in err
    code, err = cli_error(capsys, "eval", d, "--checkpoint", "last")
    assert code == 2 and str(d / "checkpoints" / "last.pt") in err and "SHA-256" in err
    reliability.record("checksum", "last.pt and best.pt both damaged", "one clear error naming both files")


def test_checkpoint_digest_covers_every_value(tmp_path):
    state = {
        "nets": {"model": {"w": torch.arange(6.0).view(2, 3)}},
        "epoch": 3,
        "best": 0.5,
        "opts": {"model": {"state": {0: {"step": torch.tensor(7.0)}}, "param_groups": [{"lr": 1e-3}]}},
    }
    path = tmp_path / "c.pt"
    checkpoint.save(path, state)
    saved = checkpoint.load(path, validate=False)  # a few values, not a whole run's state
    assert saved["sha256"] == checkpoint.digest(saved) and len(saved["sha256"]) == 64
    assert (saved["disgen"], saved["torch"]) == (disgen.__version__, str(torch.__version__))
    for change in (
        lambda s: s["nets"]["model"]["w"].__setitem__((1, 2), 5.5),
        lambda s: s.update(epoch=4),
        lambda s: s["opts"]["model"]["param_groups"][0].update(lr=2e-3),
        lambda s: s["nets"]["model"].update(w=s["nets"]["model"]["w"].double()),
    ):
        copy = checkpoint.load(path, validate=False)
        change(copy)
        assert checkpoint.digest(copy) != saved["sha256"]


# ---- safe loading -----------------------------------------------------------------------------------


def test_crafted_pickle_as_weights_file_is_refused(tmp_path, reliability):
    marker, path = tmp_path / "pwned", tmp_path / "resnet18.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": Payload(marker)}, path)
    with pytest.raises(DisgenError, match="cannot read weights") as err:
        read_weights(path)
    assert str(path) in str(err.value) and not marker.exists()
    assert "would run code" in str(err.value) and "weights_only" not in str(err.value)
    reliability.record("loading", "crafted pickle that runs code, as --weights FILE", "refused, code never ran")


def test_crafted_pickle_as_run_checkpoint_is_refused_by_eval(tmp_path, classifier_run, capsys, reliability):
    d = tmp_path / "run"
    shutil.copytree(classifier_run.dir, d)
    marker = tmp_path / "pwned"
    torch.save(
        {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "x": Payload(marker)},
        d / "checkpoints" / "last.pt",
    )
    code, err = cli_error(capsys, "eval", d, "--checkpoint", "last")
    assert code == 2 and "cannot be loaded safely: it is not a disgen checkpoint, it holds Python objects" in err
    assert "do not load it" in err and "weights_only" not in err and not marker.exists()
    reliability.record(
        "loading",
        "crafted pickle that runs code, as a run's last.pt (disgen eval)",
        "refused with one clear error, code never ran",
    )


def test_checkpoint_of_another_disgen_version_lists_what_differs(tmp_path, classifier_run, capsys, reliability):
    d = tmp_path / "run"
    shutil.copytree(classifier_run.dir, d)
    last = d / "checkpoints" / "last.pt"
    state = checkpoint.load(last)
    state.update(version=checkpoint.VERSION + 1, disgen="9.0.0")
    torch.save(state, last)
    code, err = cli_error(capsys, "eval", d, "--checkpoint", "last")
    assert code == 2 and f"format version {checkpoint.VERSION + 1}, this disgen reads version" in err
    assert f"disgen 9.0.0 (this one: {disgen.__version__})" in err and "upgrade disgen" in err
    assert "torch" not in err.split(":", 3)[-1]  # the same torch is not listed as a difference
    reliability.record(
        "loading",
        "checkpoint of a newer disgen (format version 2)",
        "one clear error listing format version and disgen version",
    )


def test_checkpoint_of_another_model_lists_the_mismatch(tmp_path, classifier_run, autoencoder_run, capsys, reliability):
    d = tmp_path / "run"
    shutil.copytree(autoencoder_run.dir, d)
    shutil.copy(classifier_run.dir / "checkpoints" / "last.pt", d / "checkpoints" / "last.pt")
    shutil.copy(classifier_run.dir / "split.json", d / "split.json")  # the checkpoint is checked, not the split
    code, err = cli_error(capsys, "train", "mlp-autoencoder", "--resume", "--epochs", "6", "--run-dir", d)
    assert code == 2 and "the checkpoint does not fit this model: " in err
    assert "model 'mlp-classifier' != 'mlp-autoencoder'" in err and "unexpected in the checkpoint" in err
    assert "model.decoder.2.weight missing from the checkpoint" in err
    reliability.record(
        "loading",
        "a classifier's checkpoint in an autoencoder's run (--resume)",
        "one clear error listing model and tensor mismatches",
    )
