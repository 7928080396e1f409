"""--gan-loss and the GAN penalties: each table entry against its formula, the step wiring them
from the model config it receives (never from attributes of the networks), and the CLI refusals."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from disgen import models
from disgen.cli import main
from disgen.models import get_model
from disgen.objectives import bound_step, get_objective
from disgen.objectives.gan import latent
from disgen.objectives.gan_losses import (
    GAN_LOSSES,
    LOSSES,
    PENALTIES,
    Settings,
    gradient_penalty,
    r1_penalty,
    settings,
)
from disgen.objectives.optim import make_optimizer

ROOT = Path(__file__).resolve().parent.parent
REAL = torch.tensor([[2.0], [-0.5], [0.3], [1.5]])
FAKE = torch.tensor([[-1.0], [0.7], [-2.5], [0.1]])


def test_every_choice_of_the_option_has_a_loss_and_bce_is_the_default():
    assert set(GAN_LOSSES) == set(models.GAN_LOSSES)
    assert {loss for loss, _ in GAN_LOSSES.values()} == set(LOSSES)
    assert {p for _, p in GAN_LOSSES.values() if p} <= set(PENALTIES)
    for name in ("gan2d", "dcgan28", "dcgan64"):
        assert settings(get_model(name).model_config()) == Settings()  # bce, no penalty: the seeds' step


def test_bce_is_the_mean_of_the_seeds_two_cross_entropies_and_g_is_non_saturating():
    # BCE(l, t) = softplus(l) - t l; D: (BCE(real, 0.9) + BCE(fake, 0)) / 2; G: BCE(fake, 1)
    want_d = ((F.softplus(REAL) - 0.9 * REAL).mean() + F.softplus(FAKE).mean()) / 2
    assert LOSSES["bce"].d(REAL, FAKE, 0.9).item() == pytest.approx(want_d.item(), rel=1e-6)
    assert LOSSES["bce"].g(FAKE).item() == pytest.approx(F.softplus(-FAKE).mean().item(), rel=1e-6)


def test_hinge_and_wasserstein_losses_against_their_formulas():
    # hinge: mean(max(0, 1 - r)) + mean(max(0, 1 + f)) = (0 + 1.5 + 0.7 + 0) / 4 + (0 + 1.7 + 0 + 1.1) / 4
    assert LOSSES["hinge"].d(REAL, FAKE, 1.0).item() == pytest.approx(2.2 / 4 + 2.8 / 4)
    assert LOSSES["hinge"].g(FAKE).item() == pytest.approx(2.7 / 4)  # -mean(f)
    # Wasserstein critic: mean(f) - mean(r) = -2.7 / 4 - 3.3 / 4
    assert LOSSES["wasserstein"].d(REAL, FAKE, 1.0).item() == pytest.approx(-6.0 / 4)
    assert LOSSES["wasserstein"].g(FAKE).item() == pytest.approx(2.7 / 4)
    assert LOSSES["hinge"].classifies and not LOSSES["wasserstein"].classifies


def test_penalties_of_a_linear_critic_are_its_weight_norm():
    """D(x) = w.x + b has gradient w everywhere: R1 = ||w||^2 = 9 and GP = (||w|| - 1)^2 = 4."""
    d = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    with torch.no_grad():
        d[1].weight.copy_(torch.full((1, 12), 3.0 / 12**0.5))  # ||w|| = 3
    x = torch.randn(5, 3, 2, 2).requires_grad_(True)
    fake = torch.randn(5, 3, 2, 2)
    same = lambda t: t  # noqa: E731
    assert r1_penalty(d, x, fake, d(x), same).item() == pytest.approx(9.0, rel=1e-5)
    assert gradient_penalty(d, x, fake, None, same).item() == pytest.approx(4.0, rel=1e-5)
    with torch.no_grad():
        d[1].weight.mul_(1 / 3)  # ||w|| = 1: a 1-Lipschitz critic costs nothing
    assert gradient_penalty(d, x, fake, None, same).item() == pytest.approx(0.0, abs=1e-10)


def keras_nets(seed: int = 0):
    """seed 002's dcgan28 nets: a D without batch norm, so D's outputs are a function of its input."""
    spec = get_model("dcgan28")
    torch.manual_seed(seed)
    return spec.build(spec.model_config({"arch": "keras"}), (1, 28, 28), 10)


@pytest.mark.parametrize("gan_loss", ["bce", "hinge", "wasserstein-gp"])
def test_the_step_takes_the_loss_the_model_config_names(gan_loss):
    """D's loss of one step equals the table's formula (plus 10 x GP for wasserstein-gp) on D's
    outputs for the same z, recomputed by hand."""
    spec = get_model("dcgan28")
    model_cfg = spec.model_config({"arch": "keras", "gan_loss": gan_loss})
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    nets = keras_nets()
    g, d = nets["generator"], nets["discriminator"]
    torch.manual_seed(5)
    fake = g(latent(g, 8))
    real_out, fake_out = d(x), d(fake)
    name, penalty = GAN_LOSSES[gan_loss]
    want = LOSSES[name].d(real_out, fake_out, 1.0)
    if penalty:
        want = want + 10.0 * gradient_penalty(d, x, fake, real_out, lambda t: t)
    nets = keras_nets()
    opts = {k: make_optimizer(m.parameters(), cfg) for k, m in nets.items() for cfg in [_train_cfg()]}
    torch.manual_seed(5)
    out = bound_step(get_objective("gan").step, model_cfg)(nets, opts, (x, None))
    assert out["d_loss"].item() == pytest.approx(want.item(), rel=1e-5, abs=1e-6)
    assert ("d_acc" in out) == (gan_loss != "wasserstein-gp")  # a critic's score has no decision at 0
    assert ("gp" in out) == (gan_loss == "wasserstein-gp")
    if "gp" in out:
        assert out["gp"].item() >= 0 and torch.isfinite(out["gp"])


def _train_cfg():
    from disgen.models import resolve

    return resolve("dcgan28", {})


def test_bad_gan_loss_and_a_bce_target_with_another_loss_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "dcgan28", "--gan-loss", "wgan", "--run-dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "disgen: error: dcgan28 --gan-loss 'wgan': choose one of bce, hinge, wasserstein-gp" in err
    args = ["train", "dcgan28", "--gan-loss", "hinge", "--real-label", "0.9", "--max-steps", "1"]
    assert main(args + ["--run-dir", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "--real-label 0.9 is a target of the bce loss" in capsys.readouterr().err


@pytest.mark.slow
def test_the_docs_gan_loss_commands_run_as_written(tmp_path):
    """docs/gans.md's --gan-loss block, as written, in an empty folder: each run's metrics say
    which loss it took (a critic logs no d_acc, and its gp)."""
    doc = (ROOT / "docs" / "gans.md").read_text()
    commands = doc[doc.index("### Losses: `--gan-loss`") :].split("```bash\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DISGEN_HOME": str(tmp_path)}
    env.update(OMP_NUM_THREADS="1", DISGEN_PROGRESS_SECONDS="1000")
    done = subprocess.run(["bash", "-ec", commands], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for run, critic in (("hinge", False), ("wgan-gp", True)):
        config = json.loads((tmp_path / "runs" / run / "config.json").read_text())
        assert config["model_args"]["gan_loss"] == ("wasserstein-gp" if critic else "hinge")
        first = json.loads((tmp_path / "runs" / run / "metrics.jsonl").read_text().splitlines()[0])
        assert ("train_d_acc" in first) != critic and ("train_gp" in first) == critic


@pytest.mark.parametrize("gan_loss", ["hinge", "wasserstein-gp"])
def test_gan2d_trains_with_another_loss_and_draws_the_critics_score(gan_loss, tmp_path):
    """gan2d --gan-loss: one epoch trains (finite losses, gp logged for the critic), and the
    decision surface shows D's score, not a sigmoid of it: `disgen sample --out x.png` draws it."""
    from conftest import subset

    import disgen
    from disgen.data import load_dataset

    run = disgen.train(
        "gan2d",
        dataset_obj=subset(load_dataset("gaussian2d"), 200, 200),
        epochs=1,
        progress=False,
        model_args={"gan_loss": gan_loss},
        run_dir=str(tmp_path / "run"),
    )
    first = run.history[0]
    assert all(math.isfinite(first[k]) for k in ("train_d_loss", "train_g_loss", "val_w2_squared"))
    assert ("train_gp" in first) == (gan_loss == "wasserstein-gp")
    assert (tmp_path / "run" / "images" / "decision_after.png").is_file()
    assert main(["sample", str(tmp_path / "run"), "--n", "50", "--out", str(tmp_path / "x.png")]) == 0
    assert (tmp_path / "x.png").stat().st_size > 1000


def test_the_decision_surface_is_a_probability_for_bce_and_a_score_otherwise(tmp_path, monkeypatch):
    from disgen.objectives.gan import bce_logits
    from disgen.viz import gan as viz_gan

    spec = get_model("gan2d")
    assert bce_logits(spec.model_config()) and not bce_logits(spec.model_config({"gan_loss": "hinge"}))
    seen = {}
    monkeypatch.setattr(viz_gan, "save_figure", lambda fig, path: seen.setdefault("label", fig.axes[1].get_ylabel()))
    d = nn.Linear(2, 1)
    viz_gan.save_decision_surface(d, torch.randn(20, 2), torch.randn(20, 2), tmp_path / "a.png", probability=False)
    assert seen.pop("label") == "D(x), a score (real > generated)"
    viz_gan.save_decision_surface(d, torch.randn(20, 2), torch.randn(20, 2), tmp_path / "b.png")
    assert seen.pop("label") == "D(x) = P(real)"
