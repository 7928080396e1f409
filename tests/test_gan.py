"""GANs: the seed architectures, every GAN model's step and checkpoint, gan2d training like seed
003, the 2-D datasets, collapse warnings, and the weight average."""

from __future__ import annotations

import pytest
import torch
from conftest import build_nets
from torch import nn

import disgen
from disgen.data import load_dataset
from disgen.data.gaussian2d import SEED_A, SEED_B
from disgen.errors import DisgenError
from disgen.models import get_model, list_models, resolve, update_ema
from disgen.objectives import get_objective
from disgen.objectives.gan import latent, warnings

GANS = [m for m in list_models() if get_model(m).objective == "gan"]
GAN_PRESETS = [(m, p) for m in GANS for p in get_model(m).presets]
SMALL = {"dcgan64": {"width": 8}}  # keeps the 64x64 nets fast on a CPU


def real_batch(model: str, n: int = 8) -> torch.Tensor:
    spec = get_model(model)
    shape = spec.data_shape(spec.model_config())
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_gan_models_are_registered():
    assert {"gan2d", "dcgan28", "dcgan64"} <= set(GANS)


@pytest.mark.parametrize("model,preset", GAN_PRESETS)
def test_generator_and_discriminator_shapes(model, preset):
    """G maps a latent batch to the data's shape, D a data batch to one logit each (every model's
    step and checkpoint round trip are tested in test_models, over the registry)."""
    nets = build_nets(model, preset, **SMALL.get(model, {}))
    g, d = nets["generator"], nets["discriminator"]
    x = real_batch(model)
    assert g(latent(g, 8)).shape == x.shape and d(x).shape == (8, 1)


def test_gan2d_seed_matches_seed_003():
    nets = build_nets("gan2d", "seed")
    g, d = nets["generator"], nets["discriminator"]
    assert [(m.in_features, m.out_features) for m in g.modules() if isinstance(m, nn.Linear)] == [(2, 2)]
    kinds = [type(m) for m in d.net]
    assert kinds == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear]
    assert [(m.in_features, m.out_features) for m in d.net if isinstance(m, nn.Linear)] == [(2, 5), (5, 3), (3, 1)]
    for m in [*g.modules(), *d.modules()]:
        if isinstance(m, nn.Linear):
            assert torch.count_nonzero(m.bias) == 0 and m.weight.abs().max() < 0.1
    cfg = resolve("gan2d", {"preset": "seed"})
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs, cfg.dataset) == ("adam", 0.005, 8, 20, "gaussian2d")
    opts = get_objective("gan").optimizers(nets, cfg, get_model("gan2d").model_config(cfg.model_args))
    assert opts["discriminator"].param_groups[0]["lr"] == 0.05
    assert opts["generator"].param_groups[0]["lr"] == 0.005


def test_dcgan28_seed_matches_seed_002():
    nets = build_nets("dcgan28", "seed")
    g, d = nets["generator"], nets["discriminator"]
    assert g.noise_std == 0.3 and g.latent_dim == 100
    linears = [(m.in_features, m.out_features) for m in g.modules() if isinstance(m, nn.Linear)]
    assert linears == [(100, 1024), (1024, 6272)]
    convs = [(m.in_channels, m.out_channels, m.kernel_size) for m in g.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [(128, 64, (5, 5)), (64, 1, (5, 5))]
    # Keras' UpSampling2D + Conv2D, computed in one convolution (same function, test below)
    from disgen.models.dcgan28 import UpsampledConv2d

    assert sum(isinstance(m, UpsampledConv2d) for m in g.modules()) == 2
    assert sum(isinstance(m, nn.MaxPool2d) for m in d.modules()) == 2
    assert [(m.in_features, m.out_features) for m in d.modules() if isinstance(m, nn.Linear)] == [
        (3200, 1024),
        (1024, 1),
    ]
    cfg = resolve("dcgan28", {"preset": "seed"})
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.nesterov, cfg.batch_size) == ("sgd", 0.0005, 0.9, True, 64)
    assert get_model("dcgan28").value_range == (-1.0, 1.0)


@pytest.mark.parametrize("ci,co,size", [(128, 64, 7), (64, 1, 14), (3, 5, 5)])
def test_upsampled_conv_is_nearest_upsampling_then_the_5x5_conv(ci, co, size):
    """UpsampledConv2d folds the 5x5 kernel into four 3x3 phase kernels: outputs and gradients
    (input, weight, bias) equal those of nn.Upsample(2) + nn.Conv2d(5, padding=2) with its weights."""
    from disgen.models.dcgan28 import UpsampledConv2d

    torch.manual_seed(0)
    fused = UpsampledConv2d(ci, co)
    plain = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(ci, co, 5, padding=2))
    plain[1].load_state_dict(fused.state_dict())
    x = torch.randn(4, ci, size, size, dtype=torch.float64, requires_grad=True)
    fused, plain = fused.double(), plain.double()
    a, b = fused(x), plain(x)
    assert a.shape == (4, co, 2 * size, 2 * size)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(a)
    for u, v in zip(
        torch.autograd.grad(a, [x, fused.weight, fused.bias], g),
        torch.autograd.grad(b, [x, plain[1].weight, plain[1].bias], g),
    ):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-10)
    assert set(fused.state_dict()) == {"weight", "bias"}  # checkpoints as the plain conv's


def test_dcgan64_seed_matches_seed_003():
    g = build_nets("dcgan64", "seed")["generator"]
    convt = [(m.in_channels, m.out_channels, m.stride) for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert convt == [(100, 512, (1, 1)), (512, 256, (2, 2)), (256, 128, (2, 2)), (128, 64, (2, 2)), (64, 3, (2, 2))]
    assert all(m.eps == 0.8 for m in g.modules() if isinstance(m, nn.BatchNorm2d))
    assert resolve("dcgan64", {"preset": "seed"}).betas == (0.5, 0.999)


def test_wrong_image_size_is_refused():
    spec = get_model("dcgan28")
    with pytest.raises(DisgenError, match="dcgan28 takes 28x28 images.*dcgan64"):
        spec.build(spec.model_config(), (3, 64, 64), 1)


def test_gaussian2d_datasets():
    data = load_dataset("gaussian2d")
    assert data.train.images.shape == (1000, 2) and data.train.images.dtype == torch.float32
    test = data.test.images.double()
    assert torch.allclose(test.mean(0), SEED_B, atol=1e-5)  # the moment-matched test split
    assert torch.allclose(torch.cov(test.T), SEED_A.T @ SEED_A, atol=1e-4)
    ring = load_dataset("gaussian2d-ring8")
    assert ring.classes == [f"mode{i}" for i in range(8)]
    assert torch.bincount(ring.train.labels).tolist() == [250] * 8
    assert torch.allclose(ring.train.images.norm(dim=1).mean(), torch.tensor(2.0), atol=0.01)


@pytest.mark.slow
def test_gan2d_seed_preset_settles_like_seed_003(tmp_path):
    """Seed 003: "losses settle at 0.693 and generated points overlap the data"."""
    run = disgen.train(
        "gan2d", preset="seed", progress=False, run_dir=str(tmp_path / "run"), test_every_epoch=True
    )  # a test curve: the seed preset has no validation split
    last = run.history[-1]
    assert len(run.history) == 20 and "val_w2_squared" not in last
    assert abs(last["train_d_loss"] - 0.693) < 0.01 and abs(last["train_g_loss"] - 0.693) < 0.02
    assert run.final["test_w2_squared"] < 0.3  # the seed's own runs range 0.013 to 0.15 (docs/gans.md)
    assert run.final["checkpoint"] == "last" and run.final["test_w2_squared"] == last["test_w2_squared"]
    assert run.history[0]["test_w2_squared"] > 1.0  # and it starts far away
    assert (tmp_path / "run" / "images" / "decision_after.png").is_file()
    points = run.sample(5000, seed=0)
    assert points.shape == (5000, 2)
    assert torch.allclose(points.mean(0).double(), SEED_B, atol=0.3)


@pytest.mark.parametrize("decay", [0.99, 0.5])
def test_weight_average_warms_up_and_lags(decay):
    """G's average against its closed form, step by step: ema_k = d_k * ema_(k-1) + (1 - d_k) * g_k
    with d_k = min(decay, k / (9 + k)) from ema_0 = g_0 (TensorFlow's warm-up: 0.1, 2/11, 3/12...;
    with decay 0.5 the cap holds from step 9 on)."""
    nets = build_nets("gan2d", "default", ema=decay)
    ema, g = nets["generator_ema"], nets["generator"]
    cfg = resolve("gan2d", {"preset": "default"})
    objective = get_objective("gan")
    model_cfg = get_model("gan2d").model_config({**cfg.model_args, "ema": decay})
    opts = objective.optimizers(nets, cfg, model_cfg)
    x = real_batch("gan2d", 32) + 3
    expected = [p.detach().double().clone() for p in g.parameters()]  # ema_0 = g_0
    decays = []
    for k in range(1, 31):
        objective.step(nets, opts, (x, torch.zeros(32, dtype=torch.int64)), cfg=model_cfg)
        d = min(decay, k / (9 + k))
        decays.append(d)
        expected = [d * e + (1 - d) * p.detach().double() for e, p in zip(expected, g.parameters())]
        assert int(ema.ema_updates) == k
        for got, want, now in zip(ema.parameters(), expected, g.parameters()):
            torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-6)
            assert not torch.equal(got, now)  # it lags behind G
    assert decays[0] == pytest.approx(0.1) and decays[1] == pytest.approx(2 / 11)
    assert (decays[-1] == 0.5) if decay == 0.5 else decays[-1] == pytest.approx(30 / 39)
    assert not any(p.requires_grad for p in ema.parameters())


def test_a_negative_count_of_updates_starts_the_average_afresh():
    """A checkpoint's ``ema_updates`` below 0 (crafted: training only counts up) neither divides by
    zero (-10) nor makes the decay negative (-5, a step past the weights): it counts as 0."""
    for count in (-10, -5):
        nets = build_nets("gan2d", "default", ema=0.999)
        ema, g = nets["generator_ema"], nets["generator"]
        with torch.no_grad():
            for p in g.parameters():
                p.add_(1.0)
        before = [p.detach().clone() for p in ema.parameters()]
        ema.ema_updates.fill_(count)
        update_ema(nets, 0.999)
        for got, old, new in zip(ema.parameters(), before, g.parameters()):
            torch.testing.assert_close(got, 0.1 * old + 0.9 * new)  # the first step's decay, 0.1
        assert int(ema.ema_updates) == count + 1


def test_collapse_warnings():
    history = [
        {"epoch": 1, "train_d_acc": 0.7, "val_class_entropy": 2.2},
        {"epoch": 2, "train_d_acc": 0.995, "val_class_entropy": 0.9},
    ]
    msgs = warnings(history)
    assert len(msgs) == 2
    assert "99.5%" in msgs[0] and "diverging or collapsing" in msgs[0]
    assert "fell from 2.20 to 0.90" in msgs[1]
    assert warnings(history[:1]) == []
    assert (
        "modes covered fell from 8 to 3"
        in warnings([{"epoch": 1, "val_modes_covered": 8.0}, {"epoch": 2, "val_modes_covered": 3.0}])[0]
    )
    # The test split decides nothing: a test curve (--test-every-epoch) raises no warning.
    assert (
        warnings(
            [
                {"epoch": 1, "test_modes_covered": 8.0},
                {"epoch": 2, "test_modes_covered": 3.0},
                {"epoch": 3, "test_class_entropy": 2.2},
                {"epoch": 4, "test_class_entropy": 0.1},
            ]
        )
        == []
    )


def test_diffaugment_shifts_and_cuts_out_real_and_fake_alike():
    from disgen.data.augment import cutout, translate

    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28) * 2 - 1
    shifted = translate(x)
    assert shifted.shape == x.shape
    for i in range(8):  # every image is x moved by at most 4 pixels, filled with the background -1
        found = False
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                ys, xs = slice(max(dy, 0), 28 + min(dy, 0)), slice(max(dx, 0), 28 + min(dx, 0))
                src = x[i, 0, max(-dy, 0) : 28 - max(dy, 0), max(-dx, 0) : 28 - max(dx, 0)]
                if torch.equal(shifted[i, 0, ys, xs], src):
                    found = True
                    assert (shifted[i] == -1).sum() >= 28 * (abs(dy) + abs(dx)) - abs(dy * dx)
        assert found, f"image {i} is not a shift of its input"
    cut = cutout(torch.ones(256, 1, 28, 28))
    zeros = (cut == 0).sum((1, 2, 3)).float()
    assert zeros.max() == 14 * 14 and zeros.min() > 0  # a 14x14 square, partly off the edge at times
    # The gradient flows through both to the fake images.
    fake = x.clone().requires_grad_(True)
    cutout(translate(fake)).sum().backward()
    assert fake.grad.abs().sum() > 0


def test_discriminator_options_of_dcgan28():
    nets = build_nets("dcgan28", "default", diffaugment=True, minibatch_std=True)
    d = nets["discriminator"]
    x = real_batch("dcgan28", 16)
    d.eval()  # no augmentation outside training: D's logits are a function of x
    assert torch.equal(d(x), d(x))
    # The minibatch-std channel: a batch of one image repeated has zero spread, so D's logit for it
    # differs from the same image in a varied batch.
    same = x[:1].repeat(16, 1, 1, 1)
    assert not torch.allclose(d(same)[0], d(torch.cat([x[:1], x[1:]]))[0])
    # DiffAugment is the step's (the model config's --diffaugment), not D's: D alone is a function of x
    d.train()
    assert torch.equal(d(x), d(x))


def test_packed_and_spectrally_normalised_discriminators_of_dcgan28():
    """--pack K: D scores K images stacked as channels (one logit per pack, a remainder left out),
    so a pack's logit depends on every image in it; --spectral-norm: no batch norm, and each
    layer's weight has largest singular value about 1 after a few power iterations."""
    d = build_nets("dcgan28", "default", pack=4, minibatch_std=False)["discriminator"].eval()
    x = real_batch("dcgan28", 18)
    assert d(x).shape == (4, 1)  # 18 images: 4 packs of 4, 2 left out
    changed = x.clone()
    changed[5] = -changed[5]
    diff = (d(changed) - d(x)).abs().squeeze(1)
    assert diff[1] > 0 and diff[0] == 0 and diff[2] == 0  # image 5 is in the second pack only
    with pytest.raises(DisgenError, match="--pack 0"):
        build_nets("dcgan28", "default", pack=0)

    d = build_nets("dcgan28", "default", spectral_norm=True)["discriminator"]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    for _ in range(30):  # power iterations run in training-mode forwards
        d(real_batch("dcgan28", 8))
    d.eval()
    for m in d.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
            assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_minibatch_std_groups_deeper_generator_and_label_smoothing():
    from disgen.models.dcgan28 import MinibatchStd
    from disgen.objectives.optim import make_optimizer

    h = torch.randn(8, 3, 2, 2)
    whole = MinibatchStd(0)(h)[:, 3, 0, 0]  # one group: the batch's spread, the same for all
    torch.testing.assert_close(whole, (h.var(0, unbiased=False) + 1e-8).sqrt().mean().expand(8))
    grouped = MinibatchStd(4)(h)[:, 3, 0, 0]  # groups of 4: images {0, 2, 4, 6} and {1, 3, 5, 7}
    for i in range(2):
        members = h[i::2]
        torch.testing.assert_close(grouped[i::2], (members.var(0, unbiased=False) + 1e-8).sqrt().mean().expand(4))
    assert MinibatchStd(4)(h[:6]).shape == (6, 4, 2, 2)  # 6 images: groups of 3

    g = build_nets("dcgan28", "default", g_depth=2)["generator"]
    assert sum(isinstance(m, nn.Conv2d) for m in g.modules()) == 4  # 2 per stage
    assert g(torch.randn(5, 100)).shape == (5, 1, 28, 28)

    # --real-label 0.9 (one-sided smoothing): BCE(l, t) = softplus(l) - t l, so D's loss (the mean
    # over real and fake) grows by 0.1 * mean(real logit) / 2 against target 1.
    x = real_batch("dcgan28", 16)
    losses, logits = [], None
    for target in (1.0, 0.9):
        nets = build_nets("dcgan28", "default", real_label=target, minibatch_std=False)
        if logits is None:
            logits = nets["discriminator"](x).detach()
        cfg = resolve("dcgan28", {})
        opts = {k: make_optimizer(m.parameters(), cfg) for k, m in nets.items()}
        torch.manual_seed(0)
        model_cfg = get_model("dcgan28").model_config({"real_label": target})
        losses.append(get_objective("gan").step(nets, opts, (x, None), cfg=model_cfg)["d_loss"].item())
    assert losses[1] - losses[0] == pytest.approx(0.05 * logits.mean().item(), abs=1e-5)


def test_a_per_sample_discriminator_scores_real_and_fake_in_one_batch():
    """Seed 002's D has no batch norm, so one forward of [real; fake] gives the logits of two
    forwards; D with batch norm or the minibatch-std channel keeps separate batches."""
    from disgen.models import per_sample

    spec = get_model("dcgan28")
    keras = spec.build(spec.model_config({"arch": "keras"}), (1, 28, 28), 10)["discriminator"]
    ours = spec.build(spec.model_config({"minibatch_std": True}), (1, 28, 28), 10)["discriminator"]
    assert per_sample(keras) and not per_sample(ours)
    plain = spec.build(spec.model_config({}), (1, 28, 28), 10)["discriminator"]
    assert not per_sample(plain)  # batch norm
    x, fake = torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28)
    together = keras(torch.cat([x, fake]))
    torch.testing.assert_close(together, torch.cat([keras(x), keras(fake)]), rtol=1e-5, atol=1e-5)


def test_r1_penalty_is_the_squared_input_gradient_and_stays_finite_in_bf16():
    """R1 adds gamma/2 * E||grad_x D(x)||^2 on real images; with the minibatch-std channel its
    double backward must stay finite in bfloat16 (a zero batch spread once gave NaN)."""
    from disgen.objectives.optim import make_optimizer

    torch.manual_seed(0)
    nets = build_nets("dcgan28", "default", r1=10.0, minibatch_std=True)
    cfg = resolve("dcgan28", {})
    opts = {k: make_optimizer(m.parameters(), cfg) for k, m in nets.items()}
    x = real_batch("dcgan28", 32)
    d = nets["discriminator"]
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(xr).sum(), xr)
    expected = grad.pow(2).flatten(1).sum(1).mean()
    torch.manual_seed(0)
    model_cfg = get_model("dcgan28").model_config({"r1": 10.0, "minibatch_std": True})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = get_objective("gan").step(nets, opts, (x, None), cfg=model_cfg)
    assert torch.isfinite(out["r1"]) and torch.isfinite(out["d_loss"]) and torch.isfinite(out["g_loss"])
    assert out["r1"].item() == pytest.approx(expected.item(), rel=0.2)  # bf16 against fp32
    assert out["d_loss"].item() > 5 * out["r1"].item() * 0.8  # gamma/2 * r1 is in D's loss


def test_gan2d_validation_and_test_are_independent_samples(tmp_path, capsys):
    """val_w2_squared and test_w2_squared were equal to nine digits at every epoch (the same
    generator draws against the same true moments), so best.pt was chosen on the test figure. Each
    split now has draws of its own, the same at every evaluation of that split: `disgen eval`
    gives back the figures the run logged."""
    run = disgen.train("gan2d", epochs=2, test_every_epoch=True, progress=False, run_dir=str(tmp_path / "run"))
    err = capsys.readouterr().err  # 2-D points are counted as points ("test split (1000 images" was said)
    assert "validation split: 1000 points (the dataset's own)" in err and "test split (1000 points, evaluated" in err
    for r in run.history:
        assert abs(r["val_w2_squared"] - r["test_w2_squared"]) > 1e-6 * r["test_w2_squared"]
    chosen = run.history[run.final["checkpoint_epoch"] - 1]
    assert run.evaluate(split="val")["w2_squared"] == chosen["val_w2_squared"]
    assert run.evaluate()["w2_squared"] == run.final["test_w2_squared"]
