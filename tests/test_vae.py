"""The vae: its loss against the ELBO's formula, the unsupervised aae's sizes, and a short run that
learns; the commands (sample, reconstruct, export, report, serve) are covered over the registry
(test_models, test_export, test_serve, test_hardening) and by docs/aae.md's commands."""

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
from conftest import subset
from PIL import Image

import disgen
from disgen.models import get_model, resolve
from disgen.objectives import bound_step, get_objective
from disgen.objectives.optim import make_optimizer
from disgen.objectives.vae import kl_to_prior

SHAPE = (1, 28, 28)
ROOT = Path(__file__).resolve().parent.parent


def build(seed: int = 0, **options):
    spec = get_model("vae")
    torch.manual_seed(seed)
    return spec.build(spec.model_config(options), SHAPE, 10)


def test_kl_is_the_closed_form_of_two_gaussians():
    # KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1) / 2 - log s, per dimension, summed
    mu, log_var = torch.tensor([[0.5, -2.0]]), torch.tensor([[math.log(4.0), 0.0]])
    want = (0.25 + 4 - 1) / 2 - math.log(2.0) + (4 + 1 - 1) / 2
    assert kl_to_prior(mu, log_var).item() == pytest.approx(want, rel=1e-6)
    assert kl_to_prior(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0  # q = the prior


def test_sizes_are_the_unsupervised_aaes():
    vae = build()
    aae_spec = get_model("aae")
    aae = aae_spec.build(aae_spec.model_config({"mode": "unsupervised"}), SHAPE, 10)
    linears = lambda m: [(x.in_features, x.out_features) for x in m.modules() if isinstance(x, torch.nn.Linear)]  # noqa: E731
    assert linears(vae["decoder"]) == linears(aae["decoder"])  # 10-1000-1000-784
    assert linears(vae["encoder"])[:2] == linears(aae["encoder"])[:2] == [(784, 1000), (1000, 1000)]
    assert linears(vae["encoder"])[2:] == [(1000, 10), (1000, 10)]  # mu and log sigma^2 heads (the aae: z)
    assert "seed" not in get_model("vae").presets  # no source document


def test_the_step_minimises_the_negative_elbo_with_one_reparameterised_draw():
    """The step's loss = sum-over-pixels BCE of decoder(mu + sigma eps) + beta * KL, eps drawn as
    the step draws it (torch.randn_like after the same seed)."""
    x = torch.rand(8, *SHAPE, generator=torch.Generator().manual_seed(1))
    for beta in (1.0, 4.0):
        nets = build()
        with torch.no_grad():
            mu, log_var = nets["encoder"](x)
            torch.manual_seed(3)
            z = mu + (0.5 * log_var).exp() * torch.randn_like(mu)
            recon = F.binary_cross_entropy_with_logits(nets["decoder"](z), x, reduction="sum") / len(x)
            kl = (0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var).sum(1)).mean()
        nets = build()
        cfg = resolve("vae", {})
        opts = get_objective("vae").optimizers(nets, cfg, get_model("vae").model_config({"beta": beta}))
        torch.manual_seed(3)
        step = bound_step(get_objective("vae").step, get_model("vae").model_config({"beta": beta}))
        out = step(nets, opts, (x, None))
        assert out["recon_loss"].item() == pytest.approx(recon.item(), rel=1e-5)
        assert out["kl"].item() == pytest.approx(kl.item(), rel=1e-5)
        assert out["loss"].item() == pytest.approx(recon.item() + beta * kl.item(), rel=1e-5)
    assert isinstance(opts["vae"], type(make_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)))


def test_a_short_run_learns_and_samples(tmp_path, mnist_mini):
    """Ten epochs on 1000 digits: the validation bound falls well below the untrained one, the
    reconstructions beat the mean image, and samples are images in [0, 1]."""
    run = disgen.train(
        "vae",
        dataset_obj=subset(mnist_mini, 1000, 200),
        epochs=10,
        progress=False,
        model_args={"hidden": (256,)},
        run_dir=str(tmp_path / "run"),
    )
    first, last = run.history[0]["val_neg_elbo"], run.history[-1]["val_neg_elbo"]
    assert last < first < 545  # 784 ln 2 = 543: a decoder that says 0.5 everywhere
    x = mnist_mini.test.images[:200].float() / 255
    assert run.evaluate()["mse"] < F.mse_loss(x, x.mean(0, keepdim=True).expand_as(x)).item()
    samples = run.sample(16, seed=1)
    assert samples.shape == (16, *SHAPE) and 0 <= samples.min() and samples.max() <= 1
    assert not torch.equal(samples, run.sample(16, seed=2))


@pytest.mark.slow
def test_the_docs_vae_commands_run_as_written(tmp_path):
    """docs/aae.md's vae block, as written, in an empty folder."""
    doc = (ROOT / "docs" / "aae.md").read_text()
    commands = doc[doc.index("## vae:") :].split("```bash\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DISGEN_HOME": str(tmp_path)}
    env.update(OMP_NUM_THREADS="1", DISGEN_PROGRESS_SECONDS="1000")
    done = subprocess.run(["bash", "-ec", commands], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    history = [json.loads(line) for line in (tmp_path / "runs" / "vae" / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 6 and history[4]["val_neg_elbo"] < history[0]["val_neg_elbo"]  # 5 epochs, then the test
    with Image.open(tmp_path / "vae_walk.png") as im:
        assert im.size[0] > 10 * 28 and im.size[1] > 2 * 28  # two rows of ten
    assert (tmp_path / "runs" / "vae" / "exports" / "onnx" / "decoder.onnx").is_file()
