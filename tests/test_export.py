"""`disgen export`: real one-epoch runs on mnist-mini digits exported as ONNX (run in onnxruntime
sessions here, at two batch sizes, against disgen's predict / sample / reconstruct), TorchScript
and safetensors (loaded back), the model card's front matter and figures against the run
directory, and the folders and errors a user can get wrong."""

from __future__ import annotations

import json
import shutil
import sys

import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import run_disgen, subset

import disgen
from disgen import runs
from disgen.cli import main
from disgen.errors import DisgenError
from disgen.export import export_run
from disgen.export.folder import read_manifest
from disgen.export.weights import load_networks
from disgen.models import get_model, list_models
from disgen.objectives import get_objective
from disgen.objectives.gan import latent
from disgen.training.trainer import Trainer

TOLERANCE = 1e-4
SMALL = {"hidden": (64, 64), "d_hidden": (32,)}
RECIPES = {  # name: (model, options of disgen.train)
    "mlp-classifier": ("mlp-classifier", {}),
    "cnn-classifier": ("cnn-classifier", {}),
    # ema: the export must take the weight average that `disgen sample` draws from
    "dcgan28": ("dcgan28", {"batch_size": 50, "model_args": {"g_width": 8, "d_width": 8, "ema": 0.99}}),
    # ema: the export must take the encoder's and decoder's weight averages, as predict and sample do
    "aae": ("aae", {"model_args": {**SMALL, "ema": 0.99}}),
    "aae-supervised": ("aae", {"model_args": {**SMALL, "mode": "supervised"}}),
    "mlp-autoencoder": ("mlp-autoencoder", {}),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_mini):
    """name -> the run directory of a one-epoch run of RECIPES[name] on 100 digits, made once."""
    root, made = tmp_path_factory.mktemp("export-runs"), {}
    data = subset(mnist_mini, 100, 100)  # 100 digits: dcgan28's reference classifier trains in seconds
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISGEN_HOME", str(tmp_path_factory.mktemp("home")))
        # The runs' pictures (matplotlib: most of a one-epoch run's time) are not what an export reads.
        mp.setattr(Trainer, "draw", lambda self, ctx, tag, draw=None: None)

        def get(name: str):
            if name not in made:
                model, options = RECIPES[name]
                disgen.train(model, dataset_obj=data, epochs=1, progress=False, run_dir=str(root / name), **options)
                made[name] = root / name
            return made[name]

        yield get


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """(name, format) -> the folder of that run's export, made once; its own check passed."""
    made = {}

    def get(name: str, fmt: str):
        if (name, fmt) not in made:
            out = tmp_path_factory.mktemp("exports") / f"{name}-{fmt}"
            export_run(trained(name), fmt, out)
            checks = read_manifest(out)["checks"]
            assert checks and all(c["max_abs_diff"] <= TOLERANCE for c in checks)
            made[name, fmt] = out
        return made[name, fmt]

    return get


@pytest.fixture(scope="module")
def digits(mnist_mini):
    return mnist_mini.test.images[:64], mnist_mini.test.labels[:64]


def session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(sess: ort.InferenceSession, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    outs = sess.run(None, {k: v.float().numpy() for k, v in inputs.items()})
    return {o.name: torch.from_numpy(a) for o, a in zip(sess.get_outputs(), outs)}


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a.float() - b.float()).abs().max().item()


def export_cli(run_dir, fmt, out, capsys) -> dict:
    assert main(["export", str(run_dir), "--format", fmt, "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert all(c["max_abs_diff"] <= TOLERANCE for c in result["checks"]) and result["checks"]
    return result


def onnx_outputs(name: str, run: disgen.Run, out, x: torch.Tensor, y: torch.Tensor, rows: slice):
    """(the ONNX files' outputs, disgen's own) on the digits ``x[rows]`` or latent draws."""
    if name in ("mlp-classifier", "cnn-classifier"):
        got = run_onnx(session(out / "classifier.onnx"), images=run.as_batch(x[rows]))
        return {"probabilities": got["probabilities"]}, {"probabilities": run.predict(x[rows])}
    if name == "dcgan28":
        z = latent(run.nets["generator"], 64, torch.Generator().manual_seed(7), "cpu")[rows]
        return run_onnx(session(out / "generator.onnx"), z=z), {"images": run.sample(len(z), z=z)}
    enc = run_onnx(session(out / "encoder.onnx"), images=run.as_batch(x[rows]))
    decoder = session(out / "decoder.onnx")
    if name == "mlp-autoencoder":
        return run_onnx(decoder, z=enc["z"]), {"images": run.reconstruct(x[rows])}
    if name == "aae-supervised":  # the decoder takes the one-hot label beside the style z
        from disgen.objectives.aae import reconstruct_with

        got = run_onnx(decoder, z=enc["z"], y=F.one_hot(y[rows], 10).float())
        return got, {"images": reconstruct_with(run.nets, run.as_batch(x[rows]), y[rows])}
    # semi-supervised aae: class probabilities as predict, reconstructions, and samples of the
    # prior: z ~ N(0, prior_std^2) beside one-hot classes 0, 1, ..., 9 (the model card's recipe)
    eps = latent(run.nets["decoder"], 64, torch.Generator().manual_seed(7), "cpu")[rows]
    y_prior = F.one_hot(torch.arange(len(eps)) % 10, 10).float()
    sample = run_onnx(decoder, z=eps * run.nets["encoder"].cfg.prior_std, y=y_prior)["images"]
    recon = run_onnx(decoder, z=enc["z"], y=enc["class_probabilities"])["images"]
    got = {"probabilities": enc["class_probabilities"], "reconstructions": recon, "samples": sample}
    want = {"probabilities": run.predict(x[rows]), "reconstructions": run.reconstruct(x[rows])}
    return got, want | {"samples": run.sample(len(eps), z=eps)}


FILES = {
    "mlp-classifier": ["classifier.onnx"],
    "cnn-classifier": ["classifier.onnx"],
    "dcgan28": ["generator.onnx"],
    "aae": ["decoder.onnx", "encoder.onnx"],
    "aae-supervised": ["decoder.onnx", "encoder.onnx"],
    "mlp-autoencoder": ["decoder.onnx", "encoder.onnx"],
}
SLOW = {"aae-supervised", "mlp-autoencoder"}  # the same export code as aae's; 5 s more each


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in RECIPES])
def test_onnx_computes_what_disgen_does(name, trained, exported, digits):
    """In onnxruntime, at batch sizes 64 and 3, within 1e-4 of disgen on real digits."""
    out = exported(name, "onnx")
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES[name] + ["README.md", "disgen-export.json"])
    run = disgen.load(trained(name))
    x, y = digits
    for rows in (slice(None), slice(0, 3)):
        got, want = onnx_outputs(name, run, out, x, y, rows)
        assert set(got) >= set(want)
        for key in want:
            assert max_diff(got[key], want[key]) <= TOLERANCE, (name, key, rows)
    if name == "dcgan28":  # the weight average, as `disgen sample` draws from, not the raw generator
        z = latent(run.nets["generator"], 64, torch.Generator().manual_seed(7), "cpu")
        onnx = run_onnx(session(out / "generator.onnx"), z=z)["images"]
        with torch.no_grad():
            raw = ((run.nets["generator"].eval()(z) + 1) / 2).clamp(0, 1)
        assert max_diff(onnx, raw) > 20 * max(max_diff(onnx, run.sample(64, z=z)), 1e-7)


@pytest.mark.parametrize("fmt", ["torchscript", "safetensors"])
@pytest.mark.parametrize("name", ["cnn-classifier", "aae"])
def test_torchscript_and_safetensors_load_back_to_the_same_outputs(name, fmt, trained, digits, tmp_path, capsys):
    run_dir, out = trained(name), tmp_path / "out"
    export_cli(run_dir, fmt, out, capsys)
    run = disgen.load(run_dir)
    x, _ = digits
    xf = run.as_batch(x)
    if fmt == "torchscript":
        if name == "aae":
            z, probs = torch.jit.load(str(out / "encoder.pt"))(xf)
            images = torch.jit.load(str(out / "decoder.pt"))(z, probs)
            assert max_diff(images, run.reconstruct(x)) <= TOLERANCE
        else:
            probs = torch.jit.load(str(out / "classifier.pt"))(xf[:5])
        assert max_diff(probs, run.predict(x[: len(probs)])) <= TOLERANCE
        return
    nets, meta = load_networks(out / "model.safetensors")
    assert sorted(nets) == (["decoder_ema", "encoder_ema"] if name == "aae" else ["model"])
    assert meta["model"] == name and json.loads(meta["classes"]) == run.classes
    for role, net in nets.items():  # the same weights, rebuilt from the file and its metadata alone
        theirs = run.nets[role].state_dict()
        assert all(torch.equal(v, theirs[k]) for k, v in net.state_dict().items())
    with torch.no_grad():
        logits = nets["encoder_ema"](xf)[0] if name == "aae" else nets["model"](xf)
    assert max_diff(logits.softmax(1), run.predict(x)) <= TOLERANCE
    if name == "aae":  # the averages, not the last weights, are what predict reads
        with torch.no_grad():
            last = run.nets["encoder"].eval()(xf)[0].softmax(1)
        assert max_diff(last, run.predict(x)) > 3 * TOLERANCE  # 2 steps: the two are near, not equal


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_model_card_front_matter_and_figures_come_from_the_run(trained, exported):
    run_dir, out = trained("mlp-classifier"), exported("mlp-classifier", "onnx")
    card = (out / "README.md").read_text()
    head = front_matter(card)
    assert head["library_name"] == "disgen" and head["pipeline_tag"] == "image-classification"
    assert head["datasets"] == ["mnist-mini"] and {"disgen", "mlp-classifier", "onnx"} <= set(head["tags"])
    final = runs.read_final(run_dir)
    epoch = next(r for r in runs.read_metrics(run_dir) if r["epoch"] == final["checkpoint_epoch"])
    found = {
        (r["dataset"]["split"], m["type"]): m["value"] for r in head["model-index"][0]["results"] for m in r["metrics"]
    }
    assert found == {
        **{("validation", k[4:]): v for k, v in epoch.items() if k.startswith("val_")},
        **{("test", k[5:]): v for k, v in final.items() if k.startswith("test_")},
    }
    assert set(head["metrics"]) == {"accuracy", "loss"}
    (check,) = read_manifest(out)["checks"]
    assert f"| probabilities | 256 and 1 | {check['max_abs_diff']:.3g} |" in card  # the check's figure
    assert "| input | images | (N, 1, 28, 28) | [0, 1] |" in card and "| output | probabilities | (N, 10) |" in card
    assert f"torch {torch.__version__}" in card and f"onnxruntime {ort.__version__}" in card
    assert f"disgen export {run_dir} --format onnx --out {out} --checkpoint auto" in card
    assert json.dumps(disgen.load(run_dir).config.to_dict(), indent=2, sort_keys=True) in card


def test_card_of_a_generator_and_of_weights(exported):
    out = exported("dcgan28", "safetensors")
    card = (out / "README.md").read_text()
    head = front_matter(card)
    assert head["pipeline_tag"] == "unconditional-image-generation" and "safetensors" in head["tags"]
    assert 'nets["generator_ema"](z)' in card and "not Inception's" in card
    nets, _ = load_networks(out / "model.safetensors")
    assert list(nets) == ["generator_ema"]


def listing(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_folder_of_the_users_is_never_overwritten(trained, tmp_path, capsys):
    run_dir = trained("mlp-classifier")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    before = listing(mine)
    with pytest.raises(DisgenError, match="not a disgen export folder.*notes.txt.*nothing was written"):
        export_run(run_dir, "safetensors", mine)
    assert listing(mine) == before
    (tmp_path / "a-file").write_text("mine too")
    with pytest.raises(DisgenError, match="is a file"):
        export_run(run_dir, "safetensors", tmp_path / "a-file")
    assert (tmp_path / "a-file").read_text() == "mine too"

    out = tmp_path / "out"  # a previous export: its files are replaced, a file added beside them is kept
    export_cli(run_dir, "torchscript", out, capsys)
    (out / "notes.txt").write_text("kept")
    export_cli(run_dir, "safetensors", out, capsys)
    assert sorted(listing(out)) == ["README.md", "disgen-export.json", "model.safetensors", "notes.txt"]
    (out / "classifier.onnx").write_text("the user's, not the export's")
    with pytest.raises(DisgenError, match="classifier.onnx there is not a file of the previous export"):
        export_run(run_dir, "onnx", out)
    assert (out / "classifier.onnx").read_text() == "the user's, not the export's"


def test_errors_are_one_line(trained, tmp_path, capsys, monkeypatch):
    run_dir = trained("mlp-classifier")
    said = {}
    for where, fmt in ((run_dir, "tflite"), (tmp_path, "onnx")):  # an unknown format; a folder that is no run
        done = run_disgen("export", str(where), "--format", fmt)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("disgen: error: ")
        said[fmt] = done.stderr
    assert "'tflite' is not an export format" in said["tflite"] and "onnx, torchscript, safetensors" in said["tflite"]
    assert f"{tmp_path} is not a disgen run directory" in said["onnx"]
    damaged = tmp_path / "damaged"
    shutil.copytree(run_dir, damaged)
    for ckpt in (damaged / "checkpoints").glob("*.pt"):
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert main(["export", str(damaged), "--format", "safetensors"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "best.pt" in err
    assert not (damaged / "exports").exists()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(DisgenError, match=r"missing: onnxruntime.*pip install 'disgen\[export\]'"):
        export_run(run_dir, "onnx", tmp_path / "none")
    assert not (tmp_path / "none").exists()


# Models no recipe above names, whose networks take 28x28 digits (or adapt to them): exported with
# their default options, so a model added to the registry is exported and checked here unasked.
UNLISTED = [
    m
    for m in list_models()
    if m not in {model for model, _ in RECIPES.values()}
    and get_objective(get_model(m).objective).export is not None
    and get_model(m).data_shape(get_model(m).model_config()) in (None, (1, 28, 28))
]


@pytest.mark.parametrize("model", UNLISTED)
def test_every_registered_model_exports_and_passes_its_check(model, mnist_mini, tmp_path, monkeypatch):
    monkeypatch.setenv("DISGEN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(Trainer, "draw", lambda self, ctx, tag, draw=None: None)
    data = subset(mnist_mini, 100, 100)
    disgen.train(model, dataset_obj=data, epochs=1, progress=False, run_dir=str(tmp_path / "run"))
    written = export_run(tmp_path / "run", "onnx", tmp_path / "out")
    manifest = read_manifest(tmp_path / "out")
    assert manifest["checks"] and all(c["max_abs_diff"] <= TOLERANCE for c in manifest["checks"])
    assert {p.name for p in written} >= {"README.md", *manifest["files"]}
    card = (tmp_path / "out" / "README.md").read_text()
    assert f'- "{model}"' in card and "## Check" in card


def test_check_catches_a_wrong_export(trained, tmp_path, monkeypatch):
    """The export's own check fails, and removes the files (and the folder it made), when they
    compute something else."""
    from disgen.export import networks

    monkeypatch.setattr(networks.Probabilities, "forward", lambda self, x: self.model(x).float())  # no softmax
    out = tmp_path / "out"
    with pytest.raises(DisgenError, match="do not reproduce disgen's outputs within 0.0001.*were removed"):
        export_run(trained("mlp-classifier"), "torchscript", out)
    assert not out.exists()  # the folder it made, removed with its files
