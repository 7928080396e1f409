"""resnet-transfer: torchvision's parameter names and shapes, weight files and the --pretrained
download (against a local HTTP server), the frozen backbone, fine-tuning learning rates and the
ImageNet-style batched augmentation."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from disgen.data import ImageSplit, TensorDataset
from disgen.data.augment import TRANSFORMS, imagenet_train
from disgen.errors import DisgenError
from disgen.models import get_model, resolve, weights
from disgen.objectives import get_objective
from disgen.training.trainer import Trainer

SPEC = get_model("resnet-transfer")


def build(**options) -> nn.Module:
    torch.manual_seed(0)
    cfg = SPEC.model_config({"pretrained": False, **options})
    return SPEC.build(cfg, cfg.data_shape(), 5)["model"]


def torchvision_keys(blocks: tuple[int, ...], bottleneck: bool) -> dict[str, tuple[int, ...]]:
    """torchvision.models.resnet's state-dict keys and shapes, written from the architecture
    (He et al. 2015 table 1; torchvision's naming), independently of disgen's modules."""
    keys: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(name: str, c: int) -> None:
        keys.update(
            {
                f"{name}.weight": (c,),
                f"{name}.bias": (c,),
                f"{name}.running_mean": (c,),
                f"{name}.running_var": (c,),
                f"{name}.num_batches_tracked": (),
            }
        )

    bn("bn1", 64)
    cin, expansion = 64, 4 if bottleneck else 1
    for stage, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for b in range(n):
            p, stride = f"layer{stage}.{b}.", 2 if stage > 1 and b == 0 else 1
            if bottleneck:
                convs = [(width, cin, 1, 1), (width, width, 3, 3), (width * 4, width, 1, 1)]
            else:
                convs = [(width, cin, 3, 3), (width, width, 3, 3)]
            for i, shape in enumerate(convs, start=1):
                keys[f"{p}conv{i}.weight"] = shape
                bn(f"{p}bn{i}", shape[0])
            if b == 0 and (stride != 1 or cin != width * expansion):
                keys[f"{p}downsample.0.weight"] = (width * expansion, cin, 1, 1)
                bn(f"{p}downsample.1", width * expansion)
            cin = width * expansion
    keys.update({"fc.weight": (1000, 512 * expansion), "fc.bias": (1000,)})
    return keys


def fake_state(keys: dict[str, tuple[int, ...]], seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: (torch.tensor(7) if not shape else torch.rand(shape, generator=gen) + 0.5) for k, shape in keys.items()}


@pytest.mark.parametrize(
    "arch,blocks,bottleneck",
    [("resnet34", (3, 4, 6, 3), False), ("resnet18", (2, 2, 2, 2), False), ("resnet50", (3, 4, 6, 3), True)],
)
def test_state_dict_has_torchvision_names_and_shapes(arch, blocks, bottleneck):
    model = build(arch=arch)
    expected = torchvision_keys(blocks, bottleneck)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    assert ours == expected
    if arch == "resnet34":
        assert len(expected) == 218  # torchvision's resnet34 state dict
        result = model.load_state_dict(fake_state(expected), strict=False)
        assert result.unexpected_keys == []
        assert sorted(result.missing_keys) == [
            "classifier.0.bias",
            "classifier.0.weight",
            "classifier.2.bias",
            "classifier.2.weight",
        ]


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_file_loads_through_prepare(tmp_path, suffix):
    state = fake_state(torchvision_keys((2, 2, 2, 2), False))
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)  # wrapped
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    cfg = SPEC.model_config({"arch": "resnet18", "weights": str(path), "head": "replace"})
    nets = SPEC.build(cfg, cfg.data_shape(), 3)
    logs = []
    get_objective("transfer").prepare(nets, cfg, logs.append)
    loaded = nets["model"].state_dict()
    assert torch.equal(loaded["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    assert torch.equal(loaded["bn1.running_var"], state["bn1.running_var"])
    assert "fc.bias, fc.weight" in logs[0]  # "replace" has no fc: ImageNet's is reported unused


def test_wrong_arch_and_bad_files_are_refused(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(fake_state(torchvision_keys((2, 2, 2, 2), False)), path)
    with pytest.raises(
        DisgenError, match="do not fit this model \\(80 missing.*missing layer1.2.bn1.bias.*is --arch right"
    ):
        weights.load_backbone(build(arch="resnet34"), weights.read_weights(path), str(path))
    with pytest.raises(DisgenError, match="weights file .*nope.pth does not exist"):
        weights.read_weights(tmp_path / "nope.pth")
    evil = tmp_path / "evil.pth"
    torch.save({"x": object()}, evil)
    with pytest.raises(DisgenError, match="cannot read weights .*evil.pth"):
        weights.read_weights(evil)


# -- downloads against a local server -------------------------------------------------------------
@pytest.fixture()
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, folder)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    httpd.shutdown()
    httpd.server_close()


def published(www: Path, stem: str, state: dict) -> str:
    """Save ``state`` as torchvision names its files: STEM-<first 8 hex of sha256>.pth."""
    tmp = www / "tmp.pth"
    torch.save(state, tmp)
    name = f"{stem}-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(www / name)
    return name


def test_pretrained_fetch_checks_hash_and_caches(server, tmp_path, monkeypatch):
    base, www = server
    monkeypatch.setenv("DISGEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    state = fake_state(torchvision_keys((2, 2, 2, 2), False), seed=3)
    monkeypatch.setitem(weights.PRETRAINED, "resnet18", published(www, "resnet18", state))
    monkeypatch.setenv("DISGEN_WEIGHTS_URL", base)
    cfg = SPEC.model_config({"arch": "resnet18", "pretrained": True})
    nets = SPEC.build(cfg, cfg.data_shape(), 4)
    get_objective("transfer").prepare(nets, cfg, lambda m: None)
    assert torch.equal(nets["model"].fc.weight, state["fc.weight"])
    cached = tmp_path / "home" / "weights" / weights.PRETRAINED["resnet18"]
    assert cached.is_file()
    for f in www.iterdir():  # now served by the cache alone
        f.unlink()
    assert weights.fetch_pretrained("resnet18", progress=False) == cached


def test_download_with_wrong_hash_keeps_nothing(server, tmp_path):
    base, www = server
    name = published(www, "resnet18", {"w": torch.ones(3)})
    bad = "resnet18-00000000.pth"
    (www / name).rename(www / bad)
    with pytest.raises(DisgenError, match="invalid hash value"):
        weights.download(f"{base}/{bad}", tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_offline_fails_fast_naming_the_file_and_folder(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DISGEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DISGEN_WEIGHTS_URL", f"http://127.0.0.1:{port}/models")
    start = time.perf_counter()
    with pytest.raises(DisgenError) as err:
        weights.fetch_pretrained("resnet34", progress=False)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "resnet34-b627a593.pth" in message and str(tmp_path / "home" / "weights") in message
    assert "--weights FILE" in message and "--no-pretrained" in message


def test_confusion_counts_are_readable_and_titled_with_their_split(tmp_path, monkeypatch):
    """Counts on dark (high-rate) cells are white, on light cells black; the title names the split.
    Read from the figure disgen draws (its text objects, as save_figure gets it) and from the PNG's
    Title, which save_figure writes from the panels' titles."""
    from PIL import Image

    from disgen.objectives import classify

    drawn = []
    original = classify.save_figure

    def keeping(fig, path):
        drawn.append([(t.get_text(), t.get_color()) for ax in fig.axes for t in ax.texts])
        return original(fig, path)

    monkeypatch.setattr(classify, "save_figure", keeping)
    out = classify.save_confusion(torch.tensor([[9, 1], [3, 7]]), ["a", "b"], tmp_path / "c.png", "test")
    assert drawn == [[("9", "white"), ("1", "black"), ("3", "black"), ("7", "white")]]
    with Image.open(out) as im:
        assert im.info["Title"] == "confusion matrix on the test split (accuracy 0.800)"


# -- frozen backbone and fine-tuning ---------------------------------------------------------------
def tiny_data(n: int = 24, side: int = 37) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, side, side), generator=gen, dtype=torch.uint8)
    y = torch.arange(n) % 2
    return TensorDataset("tiny", ImageSplit(x, y), ImageSplit(x[:8], y[:8]), ["a", "b"])


def test_frozen_backbone_outputs_do_not_change_during_training(tmp_path):
    cfg = resolve(
        "resnet-transfer",
        {
            "epochs": 2,
            "batch_size": 8,
            "progress": False,
            "augment": "imagenet",
            "model_args": {"arch": "resnet18", "image_size": 32, "pretrained": False},
        },
    )
    trainer = Trainer(cfg, tmp_path / "run", tiny_data(), log=lambda m: None)
    model = trainer.nets["model"]
    x = trainer.test_x
    backbone = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("classifier.")}
    with torch.no_grad():
        before = model.eval().features(x)
    trainer.fit()
    model.train()
    assert not model.bn1.training and not model.layer4[1].bn2.training and model.classifier.training
    with torch.no_grad():
        after = model.eval().features(x)
    assert torch.equal(before, after)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in backbone.items())  # incl. BN statistics
    assert not all(torch.equal(v, model.state_dict()[k]) for k, v in head.items())
    assert [g["lr"] for g in trainer.opts["model"].param_groups] == [cfg.lr]  # the head alone


def test_last_stage_fine_tuning_gets_the_lower_backbone_lr():
    model = build(arch="resnet18", train_backbone="last", backbone_lr_scale=0.1)
    trainable = {k.split(".")[0] for k, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer4", "fc", "classifier"}
    cfg = resolve("resnet-transfer", {"lr": 0.05, "model_args": {"train_backbone": "last"}})
    opt = get_objective("transfer").optimizers({"model": model}, cfg, SPEC.model_config(cfg.model_args))["model"]
    groups = opt.param_groups
    assert [g["lr"] for g in groups] == [0.05, pytest.approx(0.005)]
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters() if p.requires_grad
    )


def test_forward_any_size_and_channels_and_features_head():
    model = build(arch="resnet18", image_size=32).eval()
    big = torch.rand(2, 3, 37, 37)
    with torch.no_grad():
        out = model(big)
        assert out.shape == (2, 5) and torch.isfinite(out).all()
        # The centre crop is the test transform: the 32x32 centre gives the same output.
        assert torch.allclose(out, model(big[..., 2:34, 2:34]), atol=1e-6)
        assert model(torch.rand(3, 1, 28, 28)).shape == (3, 5)  # grey
        h = model.features(big)
        assert h.shape == (2, 1000) and torch.equal(model.head(h), out)
    model.reset_head(7)
    assert model(big).shape == (2, 7)


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"arch": "resnet101"}, "--arch 'resnet101'"),
        ({"train_backbone": "some"}, "--train-backbone 'some'"),
        ({"image_size": 8}, "--image-size 8 is too small"),
    ],
)
def test_bad_model_options_are_refused(bad, message):
    with pytest.raises(DisgenError, match=message):
        build(**bad)


# -- augmentation ----------------------------------------------------------------------------------
def test_imagenet_augmentation_shapes_range_and_determinism():
    assert TRANSFORMS["imagenet"] is imagenet_train
    x = torch.rand(16, 3, 256, 256)
    y = imagenet_train(x, torch.Generator().manual_seed(0))
    assert y.shape == (16, 3, 224, 224) and 0 <= y.min() and y.max() <= 1
    assert torch.equal(y, imagenet_train(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(y, imagenet_train(x, torch.Generator().manual_seed(1)))


def test_whole_image_crop_with_flip_and_no_jitter_is_a_resize_or_its_mirror():
    x = torch.rand(64, 3, 8, 8)
    y = imagenet_train(x, torch.Generator().manual_seed(0), crop=1.0, scale=(1, 1), ratio=(1, 1), strength=0)
    same = (y - x).flatten(1).abs().amax(1) < 1e-5
    mirrored = (y - x.flip(-1)).flatten(1).abs().amax(1) < 1e-5
    assert (same ^ mirrored).all()
    assert 16 < int(mirrored.sum()) < 48  # p = 0.5 of 64


def test_crops_cover_the_seed_scale_range():
    # Constant-gradient images: a crop's horizontal spread of values is its width fraction.
    ramp = torch.linspace(0, 1, 256).expand(512, 1, 256, 256).contiguous()
    y = imagenet_train(ramp, torch.Generator().manual_seed(0), flip=0, strength=0)
    widths = (y[:, 0, 0, -1] - y[:, 0, 0, 0]) * 256 / 223
    assert widths.min() < 0.3 and widths.max() > 0.95  # sqrt(0.08 * 3/4) = 0.24 .. 1


def test_cached_features_train_the_head_as_the_backbone_would(tmp_path):
    def head_after(cache: bool) -> dict[str, torch.Tensor]:
        cfg = resolve(
            "resnet-transfer",
            {
                "epochs": 2,
                "batch_size": 8,
                "progress": False,
                "augment": "none",
                "precision": "fp32",  # the cache is computed in fp32
                "model_args": {"arch": "resnet18", "image_size": 32, "pretrained": False, "cache_features": cache},
            },
        )
        trainer = Trainer(cfg, tmp_path / f"run-{cache}", tiny_data(), log=lambda m: None)
        n = len(trainer.train_x)  # the 24 images less the validation split
        assert n == 22 and trainer.loader.images.shape == ((n, 1000) if cache else (n, 3, 37, 37))
        history = trainer.fit()
        return {k: v for k, v in trainer.nets["model"].state_dict().items() if k.startswith("classifier.")}, history[
            -1
        ]["val_log_loss"]

    (cached, loss_cached), (plain, loss_plain) = head_after(True), head_after(False)
    assert all(torch.allclose(cached[k], plain[k], atol=1e-5) for k in plain)
    assert loss_cached == pytest.approx(loss_plain, abs=1e-5)
    cfg = resolve(
        "resnet-transfer", {"augment": "imagenet", "model_args": {"cache_features": True, "pretrained": False}}
    )
    with pytest.raises(DisgenError, match="--cache-features needs .* --augment none \\(not 'imagenet'\\)"):
        Trainer(cfg, tmp_path / "x", tiny_data(), log=lambda m: None)
