"""Every registered model, from every preset: builds, forward shape, a training step, a checkpoint
round-trip; and the seed presets' architectures checked against their source documents."""

from __future__ import annotations

import dataclasses
import re
import tracemalloc

import pytest
import torch
from conftest import build_nets
from torch import nn

from disgen.errors import DisgenError
from disgen.models import MAX_LAYERS, MAX_SIZE, get_model, list_models, resolve
from disgen.objectives import bound_step, get_objective
from disgen.objectives.optim import make_optimizer
from disgen.runs import checkpoint
from disgen.training.trainer import build_optimizers

IMAGE_SHAPE = (1, 28, 28)  # mnist-mini; a model whose config fixes its data_shape() gets that instead
CLASSES = 10
MODELS = list_models()
MODEL_PRESETS = [(m, p) for m in MODELS for p in get_model(m).presets]
# Objectives whose networks map an image batch x to logits / to a reconstruction of x.
CHECKED = {"classify", "reconstruct"}


# Sizes that keep a model fast on a CPU, applied over every preset: resnet-transfer then decodes
# 36x36 images (its data_shape()), not 256x256.
SMALL = {"resnet-transfer": {"image_size": 32}}


def model_config(model: str, preset: str = "default"):
    spec = get_model(model)
    return spec.model_config({**resolve(model, {"preset": preset}).model_args, **SMALL.get(model, {})})


def shape_of(model: str, preset: str = "default") -> tuple[int, ...]:
    """The data shape the model is built for: its config's data_shape() (e.g. dcgan28's 1x28x28,
    resnet-transfer's from --image-size), else mnist-mini's."""
    return tuple(get_model(model).data_shape(model_config(model, preset)) or IMAGE_SHAPE)


def build(model: str, preset: str, seed: int = 0) -> dict[str, nn.Module]:
    return build_nets(model, preset, seed, CLASSES, **SMALL.get(model, {}))


def optimizers(model: str, preset: str, nets: dict[str, nn.Module]) -> dict:
    """The optimizers the Trainer makes (its own function: the objective's, or one per network over
    its trainable parameters)."""
    cfg = resolve(model, {"preset": preset})
    objective = get_objective(get_model(model).objective)
    return build_optimizers(objective, nets, cfg, model_config(model, preset))


def step(model: str, preset: str):
    """The objective's step as the Trainer calls it (given the model config where it takes one)."""
    return bound_step(get_objective(get_model(model).objective).step, model_config(model, preset))


def batch(model: str, n: int = 8, seed: int = 0, preset: str = "default") -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs in the model's value range, and labels."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = get_model(model).value_range
    x = torch.rand(n, *shape_of(model, preset), generator=gen) * (hi - lo) + lo
    return x, torch.randint(0, CLASSES, (n,), generator=gen)


def test_registry_is_not_empty_and_names_are_lower_case():
    assert {"mlp-classifier", "mlp-autoencoder", "cnn-classifier"} <= set(MODELS)
    assert all(m == m.lower() for m in MODELS)
    for m in MODELS:  # "seed" where a source document exists: most models, not a VAE's
        assert "default" in get_model(m).presets
    assert {"seed", "default"} <= set(get_model("mlp-classifier").presets)


def test_unknown_model_lists_known_ones():
    with pytest.raises(DisgenError, match="unknown model 'nope'") as err:
        get_model("nope")
    assert all(m in str(err.value) for m in MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_unknown_model_option_is_refused(model):
    with pytest.raises(DisgenError, match="no option bogus"):
        get_model(model).model_config({"bogus": 1})


@pytest.mark.parametrize("model,preset", MODEL_PRESETS)
def test_builds_from_every_preset(model, preset):
    nets = build(model, preset)
    assert nets and all(isinstance(m, nn.Module) for m in nets.values())
    for k, m in nets.items():
        params = list(m.parameters())
        assert params, f"{k} has no parameters"
        assert all(torch.isfinite(p).all() for p in params), k


@pytest.mark.parametrize("model,preset", MODEL_PRESETS)
def test_outputs_have_the_right_shape_and_are_finite(model, preset):
    """Raw forward for classify/reconstruct models; for every model, whichever of the objective's
    ``predict`` (probabilities), ``reconstruct`` and ``sample`` (generators with ``latent_dim``)
    it has, at the data shape the model is built for. Every preset of every model that has
    predict or reconstruct must give it: a refusal (DisgenError) fails the test."""
    spec = get_model(model)
    objective = get_objective(spec.objective)
    lo, hi = spec.value_range
    nets = build(model, preset)
    x, _ = batch(model, 8, preset=preset)
    checked = []
    if spec.objective in CHECKED:
        net = nets["model"].eval()
        with torch.no_grad():
            out = net(x)
        assert torch.isfinite(out).all()
        if spec.objective == "classify":
            assert out.shape == (8, CLASSES)  # logits
        else:
            assert out.shape == x.shape and out.min() >= lo and out.max() <= hi
        checked.append("forward")
    if objective.predict is not None:
        p = objective.predict(nets, x)
        assert p.shape == (8, CLASSES) and torch.isfinite(p).all()
        assert torch.allclose(p.sum(1), torch.ones(8), atol=1e-5) and p.min() >= 0
        checked.append("predict")
    if objective.reconstruct is not None:
        r = objective.reconstruct(nets, x)
        assert r.shape == x.shape and torch.isfinite(r).all()
        assert r.min() >= lo - 1e-6 and r.max() <= hi + 1e-6
        checked.append("reconstruct")
    generators = [m for m in nets.values() if hasattr(m, "latent_dim")]
    if getattr(objective, "sample", None) is not None and generators:
        z = torch.randn(8, generators[0].latent_dim)
        fake = objective.sample(nets, z)
        assert fake.shape == (8, *shape_of(model, preset)) and torch.isfinite(fake).all()
        if spec.value_range == (-1.0, 1.0):  # tanh output
            assert fake.min() >= -1 and fake.max() <= 1
        checked.append("sample")
    if not checked:
        pytest.skip(f"no output check applies to objective {spec.objective!r}")


@pytest.mark.parametrize("model,preset", [mp for mp in MODEL_PRESETS if get_model(mp[0]).objective == "classify"])
def test_classifier_features_and_head(model, preset):
    net = build(model, preset)["model"].eval()
    x, _ = batch(model, 6, preset=preset)
    with torch.no_grad():
        h = net.features(x)
        assert h.dim() == 2 and h.shape[0] == 6
        assert torch.equal(net.head(h), net(x))


def test_label_smoothing_is_the_loss_against_targets_spread_over_the_classes():
    """cnn-classifier --label-smoothing e: the step's loss is cross-entropy against targets of
    1 - e on the label plus e / classes on every class; out of [0, 1) it is refused, naming the flag."""
    spec = get_model("cnn-classifier")
    x, y = batch("cnn-classifier", 16)
    losses, logits = {}, None
    for e in (0.0, 0.2):
        torch.manual_seed(0)
        nets = spec.build(spec.model_config({"label_smoothing": e, "dropout": 0.0}), IMAGE_SHAPE, CLASSES)
        if logits is None:
            logits = nets["model"](x).detach()
        opts = {"model": make_optimizer(nets["model"].parameters(), resolve("cnn-classifier", {}))}
        model_cfg = spec.model_config({"label_smoothing": e, "dropout": 0.0})
        losses[e] = get_objective("classify").step(nets, opts, (x, y), cfg=model_cfg)["loss"].item()
    logp = logits.log_softmax(1)
    target = torch.full_like(logp, 0.2 / CLASSES).scatter_(1, y[:, None], 0.8 + 0.2 / CLASSES)
    assert losses[0.0] == pytest.approx(-logp.gather(1, y[:, None]).mean().item(), rel=1e-5)
    assert losses[0.2] == pytest.approx(-(target * logp).sum(1).mean().item(), rel=1e-5)
    assert abs(losses[0.2] - losses[0.0]) > 1e-3  # the smoothing is applied, not ignored
    for bad in (-0.1, 1.0, 3.0):
        with pytest.raises(DisgenError, match=rf"--label-smoothing {bad}: give a share in \[0, 1\)"):
            spec.build(spec.model_config({"label_smoothing": bad}), IMAGE_SHAPE, CLASSES)


def test_pooling_before_batch_norm_is_the_same_function_in_eval_mode_for_positive_scales():
    """--pool-first moves each stage's max pool between its last convolution and that batch norm.
    In eval mode batch norm with a positive scale, then ReLU, is increasing per channel, so it
    commutes with the max: the two orders with the same parameters give the same logits; in
    training mode batch norm's statistics are of other pixels, so they differ."""
    spec = get_model("cnn-classifier")
    torch.manual_seed(0)
    after = spec.build(spec.model_config({"dropout": 0.0}), IMAGE_SHAPE, CLASSES)["model"]
    first = spec.build(spec.model_config({"dropout": 0.0, "pool_first": True}), IMAGE_SHAPE, CLASSES)["model"]
    names = lambda m: [type(x).__name__ for x in m.body.modules() if not isinstance(x, nn.Sequential)]  # noqa: E731
    assert names(after).count("MaxPool2d") == names(first).count("MaxPool2d") == 2
    assert names(first)[:6] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "MaxPool2d", "BatchNorm2d"]
    a, b = after.state_dict(), first.state_dict()
    assert [v.shape for v in a.values()] == [v.shape for v in b.values()]
    for m in after.modules():  # running statistics and positive scales away from the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    first.load_state_dict(dict(zip(b, after.state_dict().values())))
    x, _ = batch("cnn-classifier", 8)
    with torch.no_grad():
        torch.testing.assert_close(first.eval()(x), after.eval()(x), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(first.train()(x), after.train()(x), atol=1e-3)


@pytest.mark.parametrize("model,preset", MODEL_PRESETS)
def test_one_step_finite_loss_changes_every_parameter(model, preset):
    nets = build(model, preset)
    opts = optimizers(model, preset, nets)
    before = {k: {n: p.detach().clone() for n, p in m.named_parameters()} for k, m in nets.items()}
    for m in nets.values():
        m.train()
    out = step(model, preset)(nets, opts, batch(model, 16, preset=preset))
    assert out, "a step returns its losses"
    for name, value in out.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    for k, m in nets.items():
        for n, p in m.named_parameters():
            if p.requires_grad:
                assert not torch.equal(p, before[k][n]), f"{k}.{n} did not change"


@pytest.mark.parametrize("model,preset", MODEL_PRESETS)
def test_checkpoint_round_trip(tmp_path, model, preset):
    nets = build(model, preset, seed=0)
    x, y = batch(model, 16, preset=preset)
    # One step so weights and batch-norm statistics differ from a fresh build.
    step(model, preset)(nets, optimizers(model, preset, nets), (x, y))
    path = tmp_path / "ck.pt"
    checkpoint.save(path, {"model": model, "nets": {k: m.state_dict() for k, m in nets.items()}})
    state = checkpoint.load(path, validate=False)  # networks only, not a training run's state
    assert state["model"] == model
    fresh = build(model, preset, seed=1)
    for k, m in fresh.items():
        m.load_state_dict(state["nets"][k])
        ours, theirs = nets[k].state_dict(), m.state_dict()
        assert set(ours) == set(theirs)
        assert all(torch.equal(ours[n], theirs[n]) for n in ours), k
    if get_model(model).objective in CHECKED:
        nets["model"].eval()
        fresh["model"].eval()
        with torch.no_grad():
            assert torch.equal(nets["model"](x), fresh["model"](x))


def size_options(model: str) -> dict[str, object]:
    """The model's options that are sizes: an int or a tuple of ints by default."""
    spec = get_model(model)
    out = {}
    for f in dataclasses.fields(spec.config_cls):
        sizes = f.default if isinstance(f.default, tuple) else [f.default]
        if sizes and all(isinstance(v, int) and not isinstance(v, bool) for v in sizes):
            out[f.name] = f.default
    return out


@pytest.mark.parametrize("model", MODELS)
def test_every_size_option_is_range_checked(model):
    """Negative and absurd values of every size option of every model (not only --hidden)."""
    spec = get_model(model)
    assert size_options(model), f"{model} has no size option"
    for name, default in size_options(model).items():
        flag = "--" + name.replace("_", "-")
        for bad in (-5, MAX_SIZE + 1):
            value = tuple(bad for _ in default) or (bad,) if isinstance(default, tuple) else bad
            with pytest.raises(DisgenError, match=f"^{model} {flag} .*must be a whole number in 0..") as err:
                spec.model_config({name: value})
            assert f"(got {bad:,})" in str(err.value)
        if isinstance(default, tuple):  # one layer per entry
            with pytest.raises(DisgenError, match=f"{flag}: {MAX_LAYERS + 1} layers, over the limit of {MAX_LAYERS}"):
                spec.model_config({name: (1,) * (MAX_LAYERS + 1)})


@pytest.mark.parametrize("model", MODELS)
def test_absurd_sizes_are_refused_before_any_memory_is_taken(model):
    """Each size option of each model in turn at MAX_SIZE (a valid number): the networks would
    need petabytes, and are refused from their shapes on the meta device, with the count, the
    limit and the options in the message, in a few MiB of memory."""
    spec = get_model(model)
    refused = 0
    for name, default in size_options(model).items():
        if name.endswith(("depth", "convs")) or default in (0, ()):
            continue
        value = tuple(MAX_SIZE for _ in default) if isinstance(default, tuple) else MAX_SIZE

        def build_it() -> str | None:
            try:
                cfg = spec.model_config({name: value})
                spec.build(cfg, spec.data_shape(cfg) or IMAGE_SHAPE, CLASSES)
            except DisgenError as err:
                return str(err)
            return None

        build_it()  # once untraced: the first meta-device ops import parts of torch
        tracemalloc.start()
        try:
            message = build_it()
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < 64 << 20, (name, peak)
        if message is None:  # e.g. a count of images per group: no size of the networks
            continue
        refused += 1
        assert re.search(
            r"has [\d,]+ parameters, over the [\d,]+ this machine can train|needs [\d,.]+ GiB of "
            r"activations for one input of shape .*, over the limit of 2 GiB|data shape .* is not a "
            r"data shape a model can be built for",
            message,
        ), (name, message)
    assert refused >= 1


def layers(net: nn.Module) -> list[nn.Module]:
    """Leaf modules in order."""
    return [m for m in net.modules() if not list(m.children())]


def check_uniform_init(net: nn.Module, scale: float = 1.0) -> None:
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    for lin in linears:
        assert lin.weight.abs().max() <= scale
        # U(-1, 1) on 784x100 weights reaches near the ends; PyTorch's default init would not.
        assert lin.weight.abs().max() > 0.9 * scale
        assert lin.weight.mean().abs() < 0.1 * scale
        assert torch.count_nonzero(lin.bias) == 0


def test_mlp_classifier_seed_matches_seed_000():
    net = build("mlp-classifier", "seed")["model"]
    kinds = [type(m) for m in layers(net)]
    assert kinds == [nn.Flatten, nn.Linear, nn.Sigmoid, nn.Linear, nn.Sigmoid, nn.Linear]
    shapes = [(m.in_features, m.out_features) for m in layers(net) if isinstance(m, nn.Linear)]
    assert shapes == [(784, 100), (100, 50), (50, 10)]
    check_uniform_init(net)
    cfg = resolve("mlp-classifier", {"preset": "seed"})
    # lr 0.002: the seed's {:learning-rage 0.001} (sic) is ignored by Clojure MXNet's adam,
    # which then runs with its default 0.002.
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.lr_schedule, cfg.augment) == ("adam", 2e-3, 100, "none", "none")


def test_mlp_autoencoder_seed_matches_seed_001():
    net = build("mlp-autoencoder", "seed")["model"]
    kinds = [type(m) for m in layers(net)]
    assert kinds == [nn.Flatten] + [nn.Linear, nn.Sigmoid] * 5
    shapes = [(m.in_features, m.out_features) for m in layers(net) if isinstance(m, nn.Linear)]
    assert shapes == [(784, 100), (100, 50), (50, 50), (50, 100), (100, 784)]
    check_uniform_init(net)
    cfg = resolve("mlp-autoencoder", {"preset": "seed"})
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.lr_schedule) == ("adam", 2e-3, 100, "none")
    assert get_model("mlp-autoencoder").objective == "reconstruct"
