"""disgen's Adam/AdamW: the lean fused step must update exactly as torch's fused Adam does."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from disgen.config import resolve
from disgen.optim import LeanAdam, LeanAdamW, make_optimizer


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Sigmoid(), nn.Linear(8, 3))


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, skip_head_every: int = 0) -> None:
    """``steps`` updates on fixed random data; every ``skip_head_every``-th step the head gets no
    gradient (as the AAE's classification phase leaves its z head untouched)."""
    gen = torch.Generator().manual_seed(1)
    for i in range(steps):
        x, y = torch.randn(16, 12, generator=gen), torch.randint(0, 3, (16,), generator=gen)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        if skip_head_every and i % skip_head_every == 1:
            for p in model[3].parameters():
                p.grad = None
        opt.step()


@pytest.mark.parametrize("lean,torch_cls", [(LeanAdam, torch.optim.Adam), (LeanAdamW, torch.optim.AdamW)])
def test_lean_step_is_torch_fused_step_bit_for_bit(lean, torch_cls):
    a, b = net(), net()
    kw = dict(lr=3e-3, betas=(0.5, 0.999), weight_decay=0.01, fused=True)
    opt_a, opt_b = lean(a.parameters(), **kw), torch_cls(b.parameters(), **kw)
    called = []
    opt_a._lean_work = (lambda f: lambda: called.append(f()) or called[-1])(opt_a._lean_work)
    train(a, opt_a, 12, skip_head_every=3)
    train(b, opt_b, 12, skip_head_every=3)
    assert sum(w is not None for w in called) >= 10  # all but the first steps took the lean path
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    # the head skipped 4 of 12 steps: its step count says so, as torch's does
    assert opt_a.state[a[3].weight]["step"].item() == opt_b.state[b[3].weight]["step"].item() == 8


def test_lean_state_dict_is_torchs():
    """A checkpoint of one loads into the other and training goes on identically."""
    a = net()
    opt_a = LeanAdam(a.parameters(), lr=1e-3, fused=True)
    train(a, opt_a, 5)
    b, c = copy.deepcopy(a), copy.deepcopy(a)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-3, fused=True)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    opt_c = LeanAdam(c.parameters(), lr=1e-3, fused=True)
    opt_c.load_state_dict(copy.deepcopy(opt_b.state_dict()))
    for model, opt in ((a, opt_a), (b, opt_b), (c, opt_c)):
        train(model, opt, 4)
    for p, q, r in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q) and torch.equal(p, r)


def test_lean_step_leaves_the_unusual_to_torch():
    """amsgrad and closures take torch's path (and still train)."""
    model = net()
    opt = LeanAdam(model.parameters(), lr=1e-2, amsgrad=True, fused=True)
    train(model, opt, 2)
    assert opt._lean_work() is None
    x, y = torch.randn(16, 12), torch.randint(0, 3, (16,))

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    first = closure().item()
    for _ in range(20):
        opt.step(closure)
    assert closure().item() < first


def test_make_optimizer_gives_the_lean_classes():
    params = list(net().parameters())
    assert type(make_optimizer(params, resolve("mlp-classifier", {}))) is LeanAdam
    assert type(make_optimizer(params, resolve("mlp-classifier", {"optimizer": "adamw"}))) is LeanAdamW


@pytest.mark.parametrize("plain_adam_first", [False, True])
def test_step_hooks_run_once_per_step(plain_adam_first):
    """A registered step hook sends the step down torch's path, which runs it exactly once (also
    once torch has wrapped Adam.step for a plain Adam made earlier)."""
    if plain_adam_first:
        torch.optim.Adam(net().parameters(), fused=True)
    model = net()
    opt = LeanAdam(model.parameters(), lr=1e-3, fused=True)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    train(model, opt, 3)
    assert calls == ["pre", "post"] * 3
    assert opt.state[model[1].weight]["step"].item() == 3


def test_zero_grad_sets_grads_to_none_or_zero():
    model = net()
    opt = LeanAdam(model.parameters(), lr=1e-3, fused=True)
    F.cross_entropy(model(torch.randn(4, 12)), torch.tensor([0, 1, 2, 0])).backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
