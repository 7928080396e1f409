"""disgen's optimizers are torch's own public classes: fused Adam/AdamW where the device has the
kernels, foreach SGD, and their state dicts load into a plain torch optimizer and back."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from disgen.models import resolve
from disgen.objectives.optim import make_optimizer


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Sigmoid(), nn.Linear(8, 3))


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 12, generator=gen), torch.randint(0, 3, (16,), generator=gen)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize(
    "name,cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)]
)
def test_make_optimizer_gives_torchs_classes(name, cls):
    cfg = resolve("mlp-classifier", {"optimizer": name, "lr": 0.003, "weight_decay": 0.01})
    opt = make_optimizer(net().parameters(), cfg)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.003 and group["weight_decay"] == 0.01
    if name == "sgd":
        assert group["foreach"] and not group["fused"]
    else:
        assert group["fused"] and tuple(group["betas"]) == tuple(cfg.betas)


def test_a_disgen_adam_checkpoint_trains_on_identically_in_plain_torch():
    a = net()
    opt_a = make_optimizer(a.parameters(), resolve("mlp-classifier", {"lr": 1e-3}))
    train(a, opt_a, 5)
    b = copy.deepcopy(a)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-3, fused=True)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    train(a, opt_a, 4)
    train(b, opt_b, 4)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
