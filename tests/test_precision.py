"""--precision, --channels-last and --compile: what auto picks, that quality holds, that runs
record their settings, and that fp16's gradient scaler survives a resume."""

from __future__ import annotations

import json

import pytest
import torch

import disgen
from disgen.errors import DisgenError
from disgen.models import get_model
from disgen.training import precision

CPU = torch.device("cpu")
NATIVE_BF16 = precision.native_bf16(CPU)


def nets_of(model: str) -> dict:
    spec = get_model(model)
    shape = (2,) if model == "gan2d" else (1, 28, 28)
    return spec.build(spec.model_config({}), shape, 10)


# With native bfloat16: bf16 for convolutions and big networks, fp32 for small MLPs.
AUTO_WITH_NATIVE_BF16 = {
    "cnn-classifier": "bf16",
    "dcgan28": "bf16",
    "aae": "bf16",
    "mlp-classifier": "fp32",
    "mlp-autoencoder": "fp32",
    "gan2d": "fp32",
}


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("model", sorted(AUTO_WITH_NATIVE_BF16))
def test_auto_picks_bf16_where_it_pays(model, native):
    """The rule with the hardware's answer injected both ways, so a CPU with or without native
    bfloat16 tests both: without it, fp32 everywhere (emulated bfloat16 is slower) on a CPU; on
    CUDA, bf16 where native, else fp16 with its gradient scaler."""
    nets = nets_of(model)
    expected = AUTO_WITH_NATIVE_BF16[model] if native else "fp32"
    assert precision.resolve_precision("auto", CPU, nets, native=native) == expected
    assert precision.resolve_precision("auto", torch.device("cuda"), nets, native=native) == (
        "bf16" if native else "fp16"
    )


@pytest.mark.parametrize("model", sorted(AUTO_WITH_NATIVE_BF16))
def test_auto_asks_this_cpu(model):
    nets = nets_of(model)
    assert precision.resolve_precision("auto", CPU, nets) == precision.resolve_precision(
        "auto", CPU, nets, native=NATIVE_BF16
    )


def test_explicit_choices_are_kept_and_bad_ones_named():
    nets = nets_of("mlp-classifier")
    assert precision.resolve_precision("bf16", CPU, nets) == "bf16"
    assert precision.resolve_precision("fp32", CPU, nets_of("cnn-classifier")) == "fp32"
    with pytest.raises(DisgenError, match="--precision 'half'"):
        precision.resolve_precision("half", CPU, nets)
    with pytest.raises(DisgenError, match="--channels-last 'yes'"):
        precision.resolve("fp32", "yes", False, CPU, nets)
    with pytest.raises(DisgenError, match="precision"):
        disgen.train("mlp-classifier", precision="fp8", epochs=1)


def test_channels_last_is_on_for_conv_nets_and_checkpoints_load_plainly(tmp_path, tiny_data):
    from disgen.models import resolve
    from disgen.training.trainer import Trainer

    cfg = resolve("cnn-classifier", dict(epochs=1, progress=False, precision="fp32"))
    trainer = Trainer(cfg, tmp_path / "cl", tiny_data)
    trainer.fit()
    conv = trainer.nets["model"].body[1][0].weight  # (32, 32, 3, 3): layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    info = json.loads((tmp_path / "cl" / "run.json").read_text())
    assert info["channels_last"] is True and info["precision"] == "fp32" and info["processes"] == 1
    loaded = disgen.load(tmp_path / "cl", "last")  # a plain NCHW network, same predictions
    x = loaded.as_batch(tiny_data.test.images[:50])
    assert x.is_contiguous() and loaded.nets["model"].body[1][0].weight.is_contiguous()
    torch.testing.assert_close(loaded.predict(x), trainer.objective.predict(trainer.nets, x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # 15 s on 2 cores: two full runs
def test_bf16_training_matches_fp32_quality(tmp_path, mnist_mini):
    """cnn-classifier, 3 epochs on 1000 digits: the same test accuracy within noise (the quality over
    whole trainings is benchmarks/bench_precision.py's)."""
    from conftest import subset

    data = subset(mnist_mini, 1000, 500)
    acc = {}
    for p in ("fp32", "bf16"):
        run = disgen.train(
            "cnn-classifier",
            dataset_obj=data,
            epochs=3,
            progress=False,
            precision=p,
            batch_size=32,
            val_split=0,
            run_dir=str(tmp_path / p),
            model_args={"widths": (16, 32, 64), "convs": (1, 1, 1)},
        )  # emulated bf16 is slow
        acc[p] = run.final["test_accuracy"]
        assert json.loads((tmp_path / p / "run.json").read_text())["precision"] == p
        assert all(
            v.dtype == torch.float32 for v in run.nets["model"].state_dict().values() if v.is_floating_point()
        )  # autocast: weights stay float32
    assert acc["fp32"] > 0.5 and abs(acc["bf16"] - acc["fp32"]) < 0.05, acc  # learned (chance: 0.1), alike


def test_fp16_uses_a_gradient_scaler_that_resumes_exactly(tmp_path, tiny_data):
    """fp16 is meant for CUDA; on the CPU it runs (slowly), which lets CI check the scaler path."""
    args = dict(dataset_obj=tiny_data, progress=False, precision="fp16", batch_size=50, lr_schedule="none")
    full = disgen.train("mlp-classifier", epochs=2, run_dir=str(tmp_path / "full"), **args)
    disgen.train("mlp-classifier", epochs=1, run_dir=str(tmp_path / "half"), **args)
    resumed = disgen.train("mlp-classifier", epochs=2, run_dir=str(tmp_path / "half"), resume=True, **args)
    state = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0 and state["scaler"]["_growth_tracker"] >= 0
    for k, v in full.nets["model"].state_dict().items():
        assert torch.equal(v, resumed.nets["model"].state_dict()[k]), k
    assert full.final["test_accuracy"] > 0.3  # well above chance (0.1): it learned


@pytest.mark.slow  # 29 s on 2 cores: torch.compile's first compilation
def test_compile_trains_and_saves_plain_weights(tmp_path, tiny_data):
    run = disgen.train(
        "mlp-classifier",
        dataset_obj=tiny_data,
        epochs=3,
        batch_size=30,
        progress=False,
        compile=True,
        run_dir=str(tmp_path / "compiled"),
    )
    state = torch.load(tmp_path / "compiled" / "checkpoints" / "last.pt", weights_only=True)
    assert not any("_orig_mod" in k for k in state["nets"]["model"])
    assert run.final["test_accuracy"] > 0.3  # well above chance (0.1): it learned


def test_after_an_update_autocast_uses_the_new_weights():
    """Autocast caches low-precision weight copies for its whole region; a GAN's or AAE's next
    phase inside the same step must not see the copies made before the last update."""
    from disgen.objectives import minimize

    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(lin.parameters(), lr=1.0)
    x = torch.randn(8, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        before = lin(x)
        minimize({"m": opt}, "m", before.float().pow(2).mean())
        after = lin(x)
    expected = torch.nn.functional.linear(x, lin.weight, lin.bias)
    assert (after.float() - before.float()).abs().max() > 0.05
    torch.testing.assert_close(after.float(), expected.detach(), atol=0.02, rtol=0.02)


@pytest.mark.parametrize(
    "cpuinfo,native",
    [
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n", True),
        ("flags\t\t: fpu sse2 avx2 amx_bf16\n", True),
        ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", True),  # Arm with the BF16 extension
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n", False),  # AVX2 only: bfloat16 is emulated
        ("", False),
    ],
)
def test_native_bfloat16_is_read_from_the_cpu_flags(cpuinfo, native):
    assert precision.cpu_bf16(cpuinfo) is native
