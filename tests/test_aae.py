"""The adversarial autoencoder: each phase changes only the parameters it should, the real/fake
roles, the priors, the three modes end to end on tiny data, and the run-reading commands."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SUBPROCESS_ENV, run_disgen, stop_after_epoch
from PIL import Image

import disgen
from disgen.errors import DisgenError
from disgen.models import get_model, resolve
from disgen.models.aae import mixture_means, sample_prior
from disgen.objectives import aae, get_objective
from disgen.objectives.aae import classification_phase, discriminator_phase, generator_phase, reconstruction_phase
from disgen.report.history import read_run
from disgen.report.sections import summary_html
from disgen.runs import checkpoint
from disgen.training.resume import replayed_rank

ROOT = Path(__file__).resolve().parents[1]
# A tiny aae, trained for a few steps: the default preset's warm-up of y (200 steps) would hold
# the decoder and the adversaries for the whole of such a run (tests that test it set it).
TINY = dict(hidden=(32,), d_hidden=(32,), z_dim=4, classifier_warmup=0)


def build(mode: str = "semi-supervised", seed: int = 0, **overrides):
    spec = get_model("aae")
    cfg = resolve("aae", {"model_args": {**TINY, "mode": mode, **overrides}})
    torch.manual_seed(seed)
    model_cfg = spec.model_config(cfg.model_args)
    nets = spec.build(model_cfg, (1, 28, 28), 10)
    return nets, aae.optimizers(nets, cfg, model_cfg), model_cfg


def tiny_batch(n: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def params(nets) -> dict[str, torch.Tensor]:
    return {f"{k}.{n}": p.detach().clone() for k, m in nets.items() for n, p in m.named_parameters()}


def changed(nets, before) -> set[str]:
    """Names of the networks (or encoder heads) any of whose parameters changed."""
    now = params(nets)
    out = set()
    for name, p in now.items():
        if not torch.equal(p, before[name]):
            net, _, rest = name.partition(".")
            out.add(f"encoder.{rest.split('.')[0]}" if net == "encoder" else net)
    return out


def test_reconstruction_phase_changes_encoder_and_decoder_only():
    nets, opts, cfg = build()
    x, y = tiny_batch()
    before = params(nets)
    loss = reconstruction_phase(nets, opts, x, y)
    assert torch.isfinite(loss) and loss > 0
    # y_head changes too: semi-supervised mode decodes from softmax(y).
    assert changed(nets, before) == {"encoder.body", "encoder.z_head", "encoder.y_head", "decoder"}


def test_discriminator_phase_changes_discriminators_only():
    nets, opts, cfg = build()
    before = params(nets)
    out = discriminator_phase(nets, opts, tiny_batch()[0], cfg=cfg)
    assert changed(nets, before) == {"d_gauss", "d_cat"}
    assert set(out) == {"d_gauss_loss", "d_gauss_acc", "d_cat_loss", "d_cat_acc"}
    assert all(torch.isfinite(v) for v in out.values())
    assert all(0 <= out[k] <= 1 for k in ("d_gauss_acc", "d_cat_acc"))


def test_generator_phase_changes_encoder_only_and_leaves_discriminators_trainable():
    nets, opts, cfg = build()
    before = params(nets)
    out = generator_phase(nets, opts, tiny_batch()[0], cfg=cfg)
    assert torch.isfinite(out["g_loss"])
    assert changed(nets, before) == {"encoder.body", "encoder.z_head", "encoder.y_head"}
    for d in ("d_gauss", "d_cat"):  # no gradient reached D's weights, and they train again next step
        assert all(p.grad is None and p.requires_grad for p in nets[d].parameters())


@pytest.mark.parametrize("through_body", [True, False])
def test_the_adversary_on_z_reaches_the_encoders_body_unless_told_not_to(through_body):
    # Unsupervised: d_gauss is the only adversary, so its loss alone moves the encoder here.
    nets, opts, cfg = build("unsupervised", z_adversary_body=through_body)
    before = params(nets)
    generator_phase(nets, opts, tiny_batch()[0], cfg=cfg)
    assert changed(nets, before) == ({"encoder.body", "encoder.z_head"} if through_body else {"encoder.z_head"})


def test_without_the_body_the_semi_supervised_adversaries_still_train_y():
    # d_cat's loss still reaches the body through y; only z's gradient stops at the z head.
    nets, opts, cfg = build(z_adversary_body=False)
    before = params(nets)
    generator_phase(nets, opts, tiny_batch()[0], cfg=cfg)
    assert changed(nets, before) == {"encoder.body", "encoder.z_head", "encoder.y_head"}
    nets["encoder"].zero_grad(set_to_none=True)
    x = tiny_batch()[0]
    logits, z = nets["encoder"](x, z_through_body=False)
    z.sum().backward()
    assert all(p.grad is None for p in nets["encoder"].body.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in nets["encoder"].z_head.parameters())


def test_classification_phase_changes_encoder_body_and_y_head_only():
    nets, opts, cfg = build()
    before = params(nets)
    out = classification_phase(nets, opts, *tiny_batch(), cfg=cfg)
    assert torch.isfinite(out["ce_loss"])
    assert changed(nets, before) == {"encoder.body", "encoder.y_head"}


@pytest.mark.parametrize(
    "mode,nets_,keys",
    [
        ("unsupervised", {"encoder", "decoder", "d_gauss"}, {"mse", "d_gauss_loss", "d_gauss_acc", "g_loss"}),
        ("supervised", {"encoder", "decoder", "d_gauss"}, {"mse", "d_gauss_loss", "d_gauss_acc", "g_loss"}),
        (
            "semi-supervised",
            {"encoder", "decoder", "d_gauss", "d_cat"},
            {
                "mse",
                "d_gauss_loss",
                "d_gauss_acc",
                "d_cat_loss",
                "d_cat_acc",
                "g_loss",
                "ce_loss",
                "label_acc",
                "consistency_loss",
            },
        ),  # the default preset's consistency term
    ],
)
def test_each_mode_steps_with_finite_losses(mode, nets_, keys):
    nets, opts, cfg = build(mode)
    assert set(nets) == nets_
    assert set(opts) == {"autoencoder", "discriminators", "generator"} | (
        {"classifier"} if mode == "semi-supervised" else set()
    )
    x, y = tiny_batch()
    out = aae.step(nets, opts, (x, y, *tiny_batch(8, seed=1)), cfg=cfg)
    assert set(out) == keys
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())


def test_supervised_decoder_uses_the_label():
    nets, _, _ = build("supervised")
    z = torch.zeros(2, TINY["z_dim"])
    imgs = aae.decode(nets, z, torch.tensor([3, 7]))
    assert imgs.shape == (2, 1, 28, 28) and not torch.equal(imgs[0], imgs[1])


def test_roles_discriminator_learns_prior_as_real_encoder_learns_to_fool_it():
    """D's logit is high on prior samples and low on codes after training it; then the encoder,
    trained against the frozen D, raises D's logit on its codes. Swapped roles fail both."""
    nets, opts, cfg = build("unsupervised", prior_std=1.0, g_lr=0.05)
    with torch.no_grad():  # codes far from the prior, so D's task is easy and its answer clear
        nets["encoder"].z_head.bias.fill_(4.0)
    x = tiny_batch(64)[0]
    for _ in range(60):
        out = discriminator_phase(nets, opts, x, cfg=cfg)
    d = nets["d_gauss"]
    with torch.no_grad():
        real = d(sample_prior(nets["encoder"].cfg, 512, "cpu")).mean()
        fake_before = d(nets["encoder"](x)[1]).mean()
    assert out["d_gauss_acc"] > 0.9 and real > 0 > fake_before
    for _ in range(10):
        generator_phase(nets, opts, x, cfg=cfg)
    with torch.no_grad():
        fake_after = d(nets["encoder"](x)[1]).mean()
    assert fake_after > fake_before + 1.0


def test_gaussian_and_mixture_priors():
    nets, _, _ = build("unsupervised", prior_std=5.0)
    z = sample_prior(nets["encoder"].cfg, 20000, "cpu", torch.Generator().manual_seed(0))
    assert abs(z.std().item() - 5.0) < 0.1 and abs(z.mean().item()) < 0.1
    nets, _, _ = build("unsupervised", prior="mixture", z_dim=2)
    z = sample_prior(nets["encoder"].cfg, 5000, "cpu", torch.Generator().manual_seed(0))
    nearest = torch.cdist(z, mixture_means()).argmin(1)
    assert nearest.bincount(minlength=10).min() > 400  # every component drawn, about equally
    assert torch.cdist(z, mixture_means()).min(1).values.median() < 1.0


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"mode": "weird"}, "--mode 'weird'"),
        ({"prior": "mixture", "z_dim": 3}, "--z-dim 2"),
        ({"ema": 1.0}, "--ema 1: a decay in"),
        ({"ema": -0.5}, "--ema -0.5: a decay in"),
    ],
)
def test_bad_options_are_refused(overrides, match):
    with pytest.raises(DisgenError, match=match):
        build(**overrides)


def test_labels_need_semi_supervised_mode():
    spec = get_model("aae")
    cfg = resolve("aae", {"labels": 100, "model_args": {**TINY, "mode": "unsupervised"}})
    nets = spec.build(spec.model_config(cfg.model_args), (1, 28, 28), 10)
    with pytest.raises(DisgenError, match="--labels 100 needs --mode semi-supervised"):
        aae.optimizers(nets, cfg, spec.model_config(cfg.model_args))


def train_tiny(tmp_path, data, name, **options):
    return disgen.train(
        "aae",
        dataset_obj=data,
        progress=False,
        run_dir=str(tmp_path / name),
        batch_size=50,
        model_args={**TINY, **options.pop("model_args", {})},
        **options,
    )


def test_semi_supervised_run_logs_accuracies_and_pictures(tmp_path, tiny_data):
    # constant lr: 18 steps of the preset's cosine decay leave the reconstructions untrained
    run = train_tiny(tmp_path, tiny_data, "semi", epochs=3, labels=50, lr_schedule="none")
    rec = run.history[-1]
    for key in ("val_accuracy", "val_mse", "train_d_gauss_acc", "train_d_cat_acc", "train_ce_loss"):
        assert key in rec and rec[key] == rec[key], key
    assert 0 <= rec["val_accuracy"] <= 1 and 0 < rec["val_mse"] < 0.2
    # A semi-supervised AAE is a classifier: best.pt is its best validation accuracy, and the test
    # split (evaluated once, with best.pt) agrees with that epoch's validation figures.
    accs = [r["val_accuracy"] for r in run.history]
    chosen = min((r for r in run.history if r["val_accuracy"] == max(accs)), key=lambda r: r["val_mse"])
    assert run.final["checkpoint_epoch"] == chosen["epoch"]
    assert 0 <= run.final["test_accuracy"] <= 1 and abs(run.final["test_mse"] - chosen["val_mse"]) < 0.02
    images = {p.name for p in (run.dir / "images").iterdir()}
    assert {
        "latent_after.png",
        "z_hist_after.png",
        "style_grid_test.png",
        "style_grid_prior.png",
        "reconstructions_after.png",
        "samples.png",
        "curves.png",
    } <= images
    probs = disgen.load(run.dir).predict(tiny_data.test.images[:5])
    assert probs.shape == (5, 10) and torch.allclose(probs.sum(1), torch.ones(5))


def test_best_pt_breaks_a_tie_of_validation_accuracy_by_the_lower_reconstruction_error(tmp_path, tiny_data):
    """30 validation digits: accuracy ties. Seed 3 reaches its best accuracy at epoch 2 and holds it
    to epoch 8 while the reconstructions improve; best.pt is the epoch of the lowest val_mse among
    them (the first of them, epoch 2, was best.pt before the tie-break), and the report says so."""
    run = train_tiny(tmp_path, tiny_data, "tie", epochs=8, labels=50, seed=3)
    accs = [r["val_accuracy"] for r in run.history]
    tied = [r for r in run.history if r["val_accuracy"] == max(accs)]
    assert len(tied) >= 3, accs  # the case this test is about
    chosen = min(tied, key=lambda r: r["val_mse"])
    assert chosen["epoch"] != tied[0]["epoch"]
    best = checkpoint.load(run.dir / "checkpoints" / "best.pt")
    assert best["epoch"] == run.final["checkpoint_epoch"] == chosen["epoch"]
    assert best["best"] == max(accs) and best["best_rank"] == [max(accs), -chosen["val_mse"]]
    files = read_run(run.dir)
    assert files.history[files.best_record]["epoch"] == chosen["epoch"]
    assert f"epoch {chosen['epoch']}, val_accuracy {max(accs):.4g}" in summary_html(files)
    # A checkpoint written before tie-breaks has no best_rank: a resume replays metrics.jsonl.
    objective = get_objective("aae")
    assert replayed_rank(objective, run.history, max(accs)) == (max(accs), -chosen["val_mse"])
    assert replayed_rank(objective, [], 0.5) == (float("inf"),) * 2  # metrics.jsonl lost: best.pt is kept


@pytest.mark.parametrize("warmup,ema", [(0, 0.0), (8, 0.0), (0, 0.9)])
def test_resume_with_labels_is_exact(tmp_path, tiny_data, monkeypatch, warmup, ema):
    """Stopped after epoch 1 of 2 and resumed: the same weights as a run straight through (the
    labelled batches, the consistency term's perturbations and the cosine schedule included; with
    --classifier-warmup 8 the warm-up ends in the second epoch, after the resume; with --ema the
    weight averages and their count of updates too)."""
    args = dict(epochs=2, labels=20, model_args={"classifier_warmup": warmup, "ema": ema})
    straight = train_tiny(tmp_path, tiny_data, "a", **args)
    with monkeypatch.context() as m:
        stop_after_epoch(m, 1)
        with pytest.raises(KeyboardInterrupt):
            train_tiny(tmp_path, tiny_data, "b", **args)
    resumed = disgen.train("aae", dataset_obj=tiny_data, progress=False, run_dir=str(tmp_path / "b"), resume=True)
    assert ("encoder_ema" in straight.nets) == bool(ema)
    for k in straight.nets:
        a, b = straight.nets[k].state_dict(), resumed.nets[k].state_dict()
        assert all(torch.equal(a[n], b[n]) for n in a), k
    assert json.loads((tmp_path / "a" / "labels.json").read_text()) == json.loads(
        (tmp_path / "b" / "labels.json").read_text()
    )


@pytest.mark.parametrize("schedule", ["none", "cosine"])
def test_classifier_warmup_holds_every_phase_but_classification(tmp_path, tiny_data, schedule):
    """--classifier-warmup N: for N steps only the encoder's body and y head learn (the labels and
    the consistency term); the decoder, the z head and both discriminators keep their initial
    weights. After them every network learns. With or without a learning-rate schedule."""
    initial = params(build(seed=0, classifier_warmup=1000)[0])
    held = train_tiny(
        tmp_path, tiny_data, "held", epochs=2, labels=20, lr_schedule=schedule, model_args={"classifier_warmup": 1000}
    )
    ended = train_tiny(
        tmp_path, tiny_data, "ended", epochs=2, labels=20, lr_schedule=schedule, model_args={"classifier_warmup": 3}
    )
    for run, moved in (
        (held, {"encoder.body", "encoder.y_head"}),
        (ended, {"encoder.body", "encoder.y_head", "encoder.z_head", "decoder", "d_gauss", "d_cat"}),
    ):
        last = disgen.load(run.dir, "last")
        assert changed(last.nets, initial) == moved, run.dir
    with pytest.raises(DisgenError, match="--classifier-warmup -1"):
        build(classifier_warmup=-1)


def test_no_discriminator_warning_while_the_warmup_holds_them(tmp_path, tiny_data, capsys):
    """Held by --classifier-warmup, the discriminators sit at chance, which the run's warnings
    would call a broken game: epochs begun during the warm-up are not watched."""
    run = train_tiny(tmp_path, tiny_data, "held", epochs=4, labels=20, model_args={"classifier_warmup": 1000})
    assert any("at chance" in m for m in aae.warnings(run.history))  # what they would have said
    err = capsys.readouterr().err
    assert "warning: d_gauss" not in err
    # What the user hears instead: the warm-up outlasts the run, and what to do about it.
    told = [line for line in err.splitlines() if "before they learn" in line]
    assert len(told) == 1 and "wait 1000 steps" in told[0] and "--classifier-warmup" in told[0], err
    assert told[0].split(" wait ")[0] == "warning: autoencoder, discriminators, generator"  # not the classifier


def test_a_short_warmup_is_not_warned_of(tmp_path, tiny_data, capsys):
    """A warm-up of at most half the run is the preset working as meant: no warning."""
    train_tiny(tmp_path, tiny_data, "short", epochs=2, labels=20, model_args={"classifier_warmup": 3})
    assert "before they learn" not in capsys.readouterr().err


@pytest.mark.slow
def test_reconstruct_of_a_supervised_aae_takes_a_label_on_the_command_line(tmp_path, tiny_data, idx_dir):
    """`disgen reconstruct` on a supervised aae told a command-line user to call a Python function.
    Its decoder takes a label: the error says how to give one, and --label K decodes every image
    as class K, exactly as the decoder given that label does."""
    run = train_tiny(tmp_path, tiny_data, "sup", epochs=1, model_args={"mode": "supervised"})
    images = str(idx_dir / "t10k-images-idx3-ubyte")
    r = run_disgen("reconstruct", str(run.dir), images, "--out", str(tmp_path / "g.png"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "python" not in r.stderr.split("(run.")[0].lower()
    assert "`disgen reconstruct RUN_DIR IMAGES --out GRID.png --label K`" in r.stderr
    r = run_disgen("reconstruct", str(run.dir), images, "--out", str(tmp_path / "g.png"), "--label", "3")
    assert r.returncode == 0, r.stderr
    x = tiny_data.test.images[:4]
    want = aae.reconstruct_with(run.nets, run.as_batch(x), torch.full((4,), 3))
    lo, hi = run.spec.value_range
    torch.testing.assert_close(run.reconstruct(x, label=3), (want - lo) / (hi - lo))
    with pytest.raises(DisgenError, match="this run has classes 0..9"):
        run.reconstruct(x, label=10)


def test_unsupervised_and_supervised_runs(tmp_path, tiny_data):
    for mode in ("unsupervised", "supervised"):
        run = train_tiny(tmp_path, tiny_data, mode, epochs=2, model_args={"mode": mode, "z_dim": 2})
        first, last = run.history
        assert "val_accuracy" not in last and last["val_mse"] < first["val_mse"]
        # The title said "encoded test z" of a picture of the validation split.
        latent = Image.open(run.dir / "images" / "latent_after.png")
        assert latent.text["Title"].startswith("encoded z of validation images (dims 0, 1); prior samples")
        loaded = disgen.load(run.dir)
        with pytest.raises(DisgenError, match="only semi-supervised runs classify"):
            loaded.predict(tiny_data.test.images[:2])
        x = loaded.sample(6, seed=1)
        assert x.shape == (6, 1, 28, 28) and torch.equal(x, loaded.sample(6, seed=1))
        if mode == "unsupervised":
            with pytest.raises(DisgenError, match="no labels to draw"):
                loaded.sample(2, label=3)
        else:
            threes, fives = loaded.sample(4, seed=1, label=3), loaded.sample(4, seed=1, label=5)
            assert not torch.equal(threes, fives)
            with pytest.raises(DisgenError, match="--label 10: this run has classes 0 to 9"):
                loaded.sample(2, label=10)
    assert (tmp_path / "supervised" / "images" / "style_grid_prior.png").exists()
    assert not (tmp_path / "unsupervised" / "images" / "style_grid_prior.png").exists()


@pytest.mark.slow
def test_cli_train_eval_predict_semi_supervised(tmp_path, idx_dir):
    run_dir = tmp_path / "cli"
    r = run_disgen(
        "train",
        "aae",
        "--dataset",
        str(idx_dir),
        "--epochs",
        "1",
        "--labels",
        "30",
        "--hidden",
        "32",
        "--d-hidden",
        "32",
        "--z-dim",
        "4",
        "--run-dir",
        str(run_dir),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    r = run_disgen("eval", str(run_dir))
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["final"] and metrics["checkpoint"] == last["checkpoint"] == "best"
    assert metrics["accuracy"] == pytest.approx(last["test_accuracy"], abs=1e-6)
    assert metrics["mse"] == pytest.approx(last["test_mse"], rel=1e-5)
    r = run_disgen("predict", str(run_dir), str(idx_dir / "t10k-images-idx3-ubyte"), "--out", str(tmp_path / "p.csv"))
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0].startswith("input,label,0,1,") and len(lines) == 101
    r = run_disgen(
        "train", "aae", "--labels", "15", "--epochs", "1", "--dataset", str(idx_dir), "--run-dir", str(tmp_path / "bad")
    )
    assert r.returncode == 2 and "--labels 15: must be a positive multiple of the 10 classes" in r.stderr


def test_label_conditioned_d_gauss_sees_the_label():
    """Supervised mode (label-conditioned by default): d_gauss gets [z, one-hot y], needs y, and
    each regularisation phase still changes only its own networks."""
    nets, opts, cfg = build("supervised", prior_std=1.0)
    d = nets["d_gauss"]
    assert d.label_dim == 10 and d.net[0].in_features == TINY["z_dim"] + 10
    x, _ = tiny_batch(64)
    y = torch.arange(64) % 2
    before = params(nets)
    out = discriminator_phase(nets, opts, x, y, cfg=cfg)
    assert changed(nets, before) == {"d_gauss"} and 0 <= out["d_gauss_acc"] <= 1
    before = params(nets)
    generator_phase(nets, opts, x, y, cfg=cfg)
    assert changed(nets, before) == {"encoder.body", "encoder.z_head"}
    with pytest.raises(ValueError, match="labels"):
        discriminator_phase(nets, opts, x, cfg=cfg)  # the labels are needed
    # Only supervised mode has labels for every image; semi-supervised d_gauss sees the predicted
    # class (the default preset's --y-conditioned, the next test) or z alone, unsupervised z alone.
    assert build("semi-supervised", y_conditioned=False)[0]["d_gauss"].label_dim == 0
    assert build("unsupervised")[0]["d_gauss"].label_dim == 0
    assert build("supervised", label_conditioned=False)[0]["d_gauss"].label_dim == 0


def test_y_conditioned_d_gauss_sees_the_predicted_class_never_the_true_label():
    """Semi-supervised --y-conditioned: d_gauss gets [z, one-hot argmax of the encoder's y], so the
    unlabelled images' true labels are never used; each phase still changes only its networks."""
    nets, opts, cfg = build("semi-supervised", y_conditioned=True, dropout=0.0)  # predictions repeatable
    d = nets["d_gauss"]
    assert d.label_dim == 10 and d.net[0].in_features == TINY["z_dim"] + 10
    x, y = tiny_batch(64)
    seen = []
    d.register_forward_hook(lambda m, args, out: seen.append(args[1].clone()))
    with torch.no_grad():
        predicted = nets["encoder"](x)[0].argmax(1)
    before = params(nets)
    discriminator_phase(nets, opts, x, y, cfg=cfg)
    assert changed(nets, before) == {"d_gauss", "d_cat"}
    before = params(nets)
    generator_phase(nets, opts, x, (y + 1) % 10, cfg=cfg)  # wrong labels: must make no difference
    assert changed(nets, before) == {"encoder.body", "encoder.y_head", "encoder.z_head"}
    assert not torch.equal(predicted, y)  # an untrained encoder: its classes are not the labels
    assert len(seen) == 2  # one forward in each phase
    for labels in seen:  # prior and encoded codes alike are paired with the predicted classes
        assert torch.equal(labels[-64:].argmax(1), predicted) and torch.equal(labels.sum(1), torch.ones(len(labels)))


def test_input_noise_is_added_in_training_only():
    nets, _, _ = build("semi-supervised", input_noise=0.3, dropout=0.0)  # the noise alone is random
    enc, x = nets["encoder"], tiny_batch(16)[0]
    enc.eval()
    torch.testing.assert_close(enc(x)[1], enc(x)[1])
    enc.train()
    torch.manual_seed(0)
    a = enc(x)[1]
    torch.manual_seed(1)
    assert not torch.allclose(a, enc(x)[1])


def test_consistency_term_uses_unlabelled_images_and_trains_y_only():
    """--consistency: the classification phase also pulls y on perturbed unlabelled images toward
    y on the images themselves; it changes the encoder's body and y head, never z or the others."""
    nets, opts, cfg = build(consistency=1.0, dropout=0.0)
    x_lab, y_lab = tiny_batch(8, seed=1)
    x = tiny_batch(16)[0]
    before = params(nets)
    out = classification_phase(nets, opts, x_lab, y_lab, x, cfg=cfg)
    assert changed(nets, before) == {"encoder.body", "encoder.y_head"}
    assert torch.isfinite(out["consistency_loss"]) and out["consistency_loss"] > 0
    # without unlabelled images (or with weight 0) there is no such term
    assert "consistency_loss" not in classification_phase(nets, opts, x_lab, y_lab, cfg=cfg)
    plain, popts, pcfg = build(consistency=0.0, dropout=0.0)
    assert "consistency_loss" not in classification_phase(plain, popts, x_lab, y_lab, x, cfg=pcfg)


def test_consistency_targets_sharpened_masked_or_from_the_weight_average():
    """The term against its definition, on one batch: mean over the unlabelled images of
    KL(softmax(teacher logits / T) || softmax(logits of the perturbed copy)), where images whose
    teacher's top probability is below the confidence count 0, and the teacher is the encoder
    itself or (--consistency-teacher average) its weight average. A dropout-free encoder and
    --consistency-augment none make the perturbed copy the image itself, so the value is exact."""
    x_lab, y_lab = tiny_batch(8, seed=1)
    x = tiny_batch(16)[0]

    def term(**options) -> tuple[float, float]:
        nets, opts, cfg = build(consistency=1.0, dropout=0.0, consistency_augment="none", **options)
        if "encoder_ema" in nets:  # a teacher unlike the student
            with torch.no_grad():
                for p in nets["encoder_ema"].parameters():
                    p.mul_(1.5)
        teacher = nets["encoder_ema"] if options.get("consistency_teacher") == "average" else nets["encoder"]
        with torch.no_grad():
            guess, student = teacher(x)[0], nets["encoder"](x)[0]
            t = options.get("consistency_sharpen", 1.0)
            target = (guess / t).softmax(1)
            kl = (target * (target.log() - student.log_softmax(1))).sum(1)
            keep = guess.softmax(1).amax(1) >= options.get("consistency_confidence", 0.0)
            expected = (kl * keep).sum().item() / len(x)
        got = classification_phase(nets, opts, x_lab, y_lab, x, cfg=cfg)["consistency_loss"].item()
        return got, expected

    plain = term()
    assert plain[1] < 1e-6 and plain[0] < 1e-6  # the same network on the same images: nothing to pull
    sharpened = term(consistency_sharpen=0.5)
    assert sharpened[1] > 1e-4 and sharpened[0] == pytest.approx(sharpened[1], rel=1e-4)
    nets, _, _ = build(dropout=0.0)
    with torch.no_grad():
        top = nets["encoder"](x)[0].softmax(1).amax(1)
    cut = float(top.median())  # about half the images count
    masked = term(consistency_sharpen=0.5, consistency_confidence=cut)
    assert 0 < masked[1] < sharpened[1] and masked[0] == pytest.approx(masked[1], rel=1e-4)
    teacher = term(ema=0.9, consistency_teacher="average")
    assert teacher[1] > 1e-4 and teacher[0] == pytest.approx(teacher[1], rel=1e-4)


def test_consistency_pulls_perturbed_predictions_together():
    """After 100 steps of the classification phase on two labelled images, y disagrees between
    images and their flipped, shifted copies far less with the term (weight 100) than without."""
    from disgen.data.augment import flip_shift

    x = tiny_batch(64)[0]

    def disagreement_after_training(weight: float) -> float:
        nets, opts, cfg = build(consistency=weight, dropout=0.0)
        enc = nets["encoder"]
        torch.manual_seed(3)
        for _ in range(100):
            classification_phase(nets, opts, x[:2], torch.tensor([0, 1]), x if weight else None, cfg=cfg)
        torch.manual_seed(5)
        with torch.no_grad():
            p, log_q = enc(x)[0].softmax(1), enc(flip_shift(x))[0].log_softmax(1)
        return torch.nn.functional.kl_div(log_q, p, reduction="batchmean").item()

    without, with_term = disagreement_after_training(0.0), disagreement_after_training(100.0)
    assert with_term < without / 4, (with_term, without)


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"consistency_augment": "rotate"}, "--consistency-augment 'rotate'"),
        ({"consistency": -1.0}, "--consistency -1"),
        ({"consistency_sharpen": 0.0}, "--consistency-sharpen 0: a temperature above 0"),
        ({"consistency_confidence": 1.0}, r"--consistency-confidence 1: a probability in \[0, 1\)"),
        ({"consistency_teacher": "average"}, "--consistency-teacher average .* give --ema too"),
    ],
)
def test_bad_consistency_options_are_refused(overrides, match):
    with pytest.raises(DisgenError, match=match):
        build(**overrides)


def test_one_hot_y_feeds_the_decoder_the_predicted_class_and_trains_the_y_head():
    """Semi-supervised --one-hot-y: the decoder gets exactly the one-hot of the encoder's argmax
    (a clean class signal, so it draws the digit from y), and the reconstruction's gradient still
    reaches the y head through the probabilities (straight through)."""
    nets, opts, cfg = build("semi-supervised", one_hot_y=True, dropout=0.0)
    x, y = tiny_batch(32)
    seen = []
    nets["decoder"].register_forward_hook(lambda m, args, out: seen.append(args[1].detach().clone()))
    with torch.no_grad():
        predicted = nets["encoder"](x)[0].argmax(1)
    before = params(nets)
    reconstruction_phase(nets, opts, x, y)
    assert torch.equal(seen[0], torch.nn.functional.one_hot(predicted, 10).float())
    assert {"encoder.y_head", "encoder.z_head", "decoder"} <= changed(nets, before)
    soft, _, _ = build("semi-supervised", one_hot_y=False, dropout=0.0)  # the paper's: the probabilities
    y_in = aae.decoder_input(soft, x, y, 10)[0].detach()
    assert torch.allclose(y_in.sum(1), torch.ones(len(x)))
    assert not torch.equal(y_in, torch.nn.functional.one_hot(y_in.argmax(1), 10).float())


def read_as(x: torch.Tensor, reference) -> torch.Tensor:
    """The reference classifier's classes for 28x28 images ``x`` (N, 28, 28) in [0, 1]."""
    return reference.predict_features(reference.features_of(x[:, None], (0.0, 1.0))).argmax(1)


def cells(grid: np.ndarray, n: int) -> torch.Tensor:
    """The ``n`` 28x28 images of a sample grid (disgen.viz.save_grid's layout, found from its size)."""
    rows = cols = int(round(n**0.5))
    pad_h, pad_w = (grid.shape[0] - 28 * rows) / (rows + 1), (grid.shape[1] - 28 * cols) / (cols + 1)
    out = []
    for r in range(rows):
        for c in range(cols):
            top, left = int(round(pad_h + r * (28 + pad_h))), int(round(pad_w + c * (28 + pad_w)))
            out.append(torch.from_numpy(grid[top : top + 28, left : left + 28].copy()))
    return torch.stack(out)


@pytest.mark.slow
def test_sample_label_k_of_the_default_semi_supervised_aae_draws_k(tmp_path, home, mnist_mini):
    """docs/aae.md's "Content in y" commands as written (the default preset on mnist-mini, then
    `disgen sample runs/aae --label 7 --n 64 --out sevens.png`), then `sample --label K` for every K:
    the reference classifier (the cnn-classifier that measures generators) reads most of each
    class's samples as K. The paper's settings (softmax y to the decoder, d_gauss on z alone,
    z ~ N(0, 5²) in 10-D) drew K one time in ten (10.8% over K, 2.2% for the worst): z carried the
    digit and the decoder ignored y. The bounds leave room for the seed-to-seed spread that
    benchmarks/results/aae_label_samples_mnist-mini_0.json measures (a run whose best.pt is an
    early epoch draws less faithfully); the bar of 90% for every K is the benchmark's, not this test's."""
    from disgen.evaluation.reference import get_reference
    from disgen.training.trainer import train_reference

    env = {"DISGEN_HOME": str(home), "OMP_NUM_THREADS": "2"}
    commands = re.search(r"## Content in y.*?```bash\n(.*?)```", (ROOT / "docs" / "aae.md").read_text(), re.S)
    lines = [line.split("#")[0].strip() for line in commands.group(1).splitlines()]
    assert lines == ["disgen train aae --run-dir runs/aae", "disgen sample runs/aae --label 7 --n 64 --out sevens.png"]
    for line in lines:
        done = subprocess.run(
            [sys.executable, "-m", "disgen", *shlex.split(line)[1:], *(["--no-progress"] if "train" in line else [])],
            cwd=tmp_path,
            env={**SUBPROCESS_ENV, **env},
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    train_reference(mnist_mini)  # the reference that `disgen eval` of a GAN trains, cached in home
    reference = get_reference(mnist_mini, torch.device("cpu"))
    grid = np.asarray(Image.open(tmp_path / "sevens.png").convert("L"), dtype=np.float32) / 255
    sevens = cells(grid, 64)
    assert (read_as(sevens, reference) == 7).float().mean() >= 0.7
    shares = []
    for k in range(10):
        out = tmp_path / f"label-{k}"
        sample = ("sample", "runs/aae", "--label", k, "--n", 200, "--seed", 1, "--out-dir", out)
        assert run_disgen(*map(str, sample), env=env, cwd=tmp_path).returncode == 0
        files = sorted(out.glob("*.png"))
        x = np.stack([np.asarray(Image.open(f).convert("L"), dtype=np.float32) / 255 for f in files])
        shares.append((read_as(torch.from_numpy(x), reference) == k).float().mean().item())
    assert sum(shares) / 10 >= 0.7 and min(shares) >= 0.4, f"share of sample --label K read as K, K = 0..9: {shares}"


def test_ema_averages_the_encoder_and_decoder_and_every_reader_uses_the_average(tmp_path, tiny_data):
    """--ema: encoder_ema and decoder_ema follow ema <- d * ema + (1 - d) * net after each step,
    with d = min(decay, (1 + n) / (10 + n)) (TensorFlow's warm-up), and evaluation, predict,
    reconstruct and sample read the averages, not the last weights."""
    nets, opts, cfg = build(ema=0.9)
    assert {"encoder_ema", "decoder_ema"} <= set(nets) and not any(
        p.requires_grad for r in ("encoder_ema", "decoder_ema") for p in nets[r].parameters()
    )
    x, y = tiny_batch()
    for n in range(3):
        before = {r: params({r: nets[f"{r}_ema"]}) for r in ("encoder", "decoder")}
        aae.step(nets, opts, (x, y), cfg)
        d = min(0.9, (1 + n) / (10 + n))
        for r in ("encoder", "decoder"):
            trained = params({r: nets[r]})
            for name, old in before[r].items():
                p = nets[f"{r}_ema"].get_parameter(name.partition(".")[2])
                expected = d * old + (1 - d) * trained[name]
                assert torch.allclose(p, expected, atol=1e-6), (r, name, n)
        assert int(nets["encoder_ema"].ema_updates) == n + 1
    assert not torch.equal(nets["encoder_ema"].y_head.weight, nets["encoder"].y_head.weight)

    run = train_tiny(tmp_path, tiny_data, "ema", epochs=2, labels=50, model_args={"ema": 0.9})
    loaded = disgen.load(run.dir)
    images = tiny_data.test.images[:20]
    xb = loaded.as_batch(images)
    with torch.no_grad():
        enc_avg, enc_last = (loaded.nets[r].eval() for r in ("encoder_ema", "encoder"))
        want = enc_avg(xb)[0].float().softmax(1)
        last = enc_last(xb)[0].float().softmax(1)
    assert (want - last).abs().max() > 1e-3  # the two differ, so the check below can tell them apart
    assert torch.allclose(loaded.predict(images), want, atol=1e-5)
    # evaluation (and so best.pt) reads the average: eval.json's test accuracy is the average's
    test_x, test_y = loaded.as_batch(tiny_data.test.images), tiny_data.test.labels
    with torch.no_grad():
        acc = (enc_avg(test_x)[0].argmax(1) == test_y).float().mean().item()
    assert abs(run.final["test_accuracy"] - acc) < 1e-6
    # sample: the averaged decoder on prior draws (N(0, 1) noise times the prior's std), classes 0..9
    eps = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    lo, hi = loaded.spec.value_range
    with torch.no_grad():
        codes, classes = eps * loaded.nets["encoder"].cfg.prior_std, torch.eye(10)
        want, last = (
            ((loaded.nets[r].eval()(codes, classes).float() - lo) / (hi - lo)).clamp(0, 1)
            for r in ("decoder_ema", "decoder")
        )
    assert (want - last).abs().max() > 1e-3
    assert torch.allclose(loaded.sample(10, 0, z=eps), want, atol=1e-5)
