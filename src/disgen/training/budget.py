"""``--time-budget SECONDS``: the number of training steps that fit in the time a user has.

Before the first epoch the Trainer times real steps of the run (the same batches, precision and
processes; the first :data:`WARMUP` are left out: allocation, oneDNN's kernel choice, compilation),
then puts back the weights, optimizer states and random states as they were, so the run that
follows draws exactly what a run given ``--max-steps N`` would. The steps that fit are
``(budget - time spent timing) / seconds a step``; ``max_steps`` and the ``epochs`` they span are
written into config.json, so ``--resume`` and a rerun of that config are exact and deterministic
and never time again. The learning-rate schedule spans ``max_steps`` (disgen.objectives.optim).

Where the budget holds under one epoch of a ``budget`` run's network and the model has a
``budget-short`` preset (cnn-classifier), the Trainer is rebuilt with that preset's narrower
network and learning rate and timed again (:func:`narrower`); both timings count against the budget.

The budget is training time: the per-epoch evaluation of the validation split and the final test
are timed apart (``eval_seconds`` in metrics.jsonl), and so is start-up (data loading, a GAN's
reference classifier).

May import: training.distributed, objectives and the layers below them (called by the Trainer).
"""

from __future__ import annotations

import copy
import math
import time

import torch

from disgen.training import distributed

WARMUP = 2  # steps not timed
MIN_TIMED = 3  # steps timed at least...
MAX_TIMED = 50  # ... and at most, for at least TIMING_SHARE of the budget (at most MAX_TIMING_S)
TIMING_SHARE, MAX_TIMING_S = 0.05, 3.0
SHORT = "budget-short"  # the preset whose network a budget of under one epoch takes


def state_of(trainer) -> dict:
    """What timing steps changes, copied: weights and buffers, optimizer and scaler states, RNGs."""
    out = {
        "nets": {k: copy.deepcopy(m.state_dict()) for k, m in trainer.nets.items()},
        "opts": {k: copy.deepcopy(o.state_dict()) for k, o in trainer.opts.items()},
        "scaler": copy.deepcopy(trainer.opts.scaler.state_dict()) if trainer.opts.scaler is not None else None,
        "torch": torch.get_rng_state(),
        "loader": trainer.generator.get_state(),
    }
    if trainer.device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(trainer.device)
    return out


def restore(trainer, saved: dict) -> None:
    for k, m in trainer.nets.items():
        m.load_state_dict(saved["nets"][k])
    for k, o in trainer.opts.items():
        o.load_state_dict(saved["opts"][k])
        o.state.clear() if not saved["opts"][k]["state"] else None  # no moments before the first step
    if saved["scaler"] is not None:
        trainer.opts.scaler.load_state_dict(saved["scaler"])
    torch.set_rng_state(saved["torch"])
    trainer.generator.set_state(saved["loader"])
    if "cuda" in saved:
        torch.cuda.set_rng_state(saved["cuda"], trainer.device)


def time_steps(trainer, budget: float) -> dict:
    """Seconds a training step of ``trainer`` takes (the mean over the timed steps, loader
    included), and the seconds the timing took."""
    saved = state_of(trainer)
    start, timed = time.perf_counter(), []
    want = min(MAX_TIMING_S, TIMING_SHARE * budget)
    for m in trainer.nets.values():
        m.train()
    while len(timed) < MAX_TIMED and (len(timed) < MIN_TIMED or sum(timed) < want):
        t0 = time.perf_counter()
        for i, batch in enumerate(trainer.loader):
            trainer.take_step(batch)
            if trainer.device.type == "cuda":
                torch.cuda.synchronize(trainer.device)
            t1 = time.perf_counter()
            if i >= WARMUP or timed or len(trainer.loader) <= WARMUP:
                timed.append(t1 - t0)
            t0 = t1
            if len(timed) >= MAX_TIMED or (len(timed) >= MIN_TIMED and sum(timed) >= want):
                break
    elapsed = time.perf_counter() - start
    restore(trainer, saved)
    return {"step_seconds": sum(timed) / len(timed), "steps_timed": len(timed), "timing_seconds": elapsed}


def steps_that_fit(budget: float, timing: dict) -> int:
    """Training steps in what is left of ``budget`` after the timing (at least one)."""
    return max(1, math.floor((budget - timing["timing_seconds"]) / timing["step_seconds"]))


def preset_network(spec, name: str) -> dict:
    """The network options preset ``name`` of ``spec`` sets, typed as a config holds them."""
    given = dict(spec.presets[name].get("model", {}))
    typed = spec.model_config(given)
    return {k: getattr(typed, k) for k in given}


def narrower(trainer, timing: dict) -> dict | None:
    """What the model's ``budget-short`` preset changes from ``budget`` (its network as
    ``model_args``, and settings such as its learning rate that the run left as ``budget`` has
    them) where a ``budget`` run would train less than one epoch in the budget and its network
    options were left as the preset has them: there, a network of half the width learns more in
    the steps that fit (chosen on the validation split, docs/speed.md). None elsewhere."""
    cfg, spec = trainer.cfg, trainer.spec
    short = spec.presets.get(SHORT)
    if cfg.preset != "budget" or short is None or cfg.model_args != preset_network(spec, "budget"):
        return None
    if steps_that_fit(cfg.time_budget, timing) >= len(trainer.loader):
        return None
    budget = spec.presets["budget"]
    changes = {
        k: v for k, v in short.items() if k != "model" and budget.get(k) != v and getattr(cfg, k) == budget.get(k)
    }
    return {**changes, "model_args": preset_network(spec, SHORT)}


def fit(trainer) -> None:
    """``--time-budget``: time the first steps of ``trainer`` and fix ``max_steps`` and ``epochs``
    in its config; a config that has them already (a resume, a rerun) is kept as it is. Every
    process takes the main process's timing, so all of them stop at the same step. Where the
    budget holds under an epoch of the default network, the trainer is rebuilt with the narrower
    one (:func:`narrower`, recorded as ``model_args``) and timed again; both timings count."""
    cfg = trainer.cfg
    if cfg.time_budget is None or cfg.max_steps is not None:
        return
    timing = distributed.gather(time_steps(trainer, cfg.time_budget))[0]
    narrow = narrower(trainer, timing)
    if narrow:
        trainer.log(
            f"time budget {cfg.time_budget:g} s: under one epoch of the default network "
            f"({steps_that_fit(cfg.time_budget, timing)} of {len(trainer.loader)} steps); taking the "
            f"{SHORT} preset's network ({', '.join(f'{k} {v}' for k, v in narrow['model_args'].items())})"
            + "".join(f", {k} {v}" for k, v in narrow.items() if k != "model_args")
        )
        for k, v in narrow.items():
            setattr(cfg, k, v)
        trainer.build()
        spent = timing["timing_seconds"]
        timing = distributed.gather(time_steps(trainer, cfg.time_budget - spent))[0]
        timing["timing_seconds"] += spent
    cfg.max_steps = steps_that_fit(cfg.time_budget, timing)
    cfg.epochs = max(1, math.ceil(cfg.max_steps / len(trainer.loader)))
    trainer.budget_timing = timing
    trainer.log(
        f"time budget {cfg.time_budget:g} s: {cfg.max_steps} steps ({cfg.max_steps / len(trainer.loader):.2f} "
        f"epochs) at {timing['step_seconds'] * 1000:.1f} ms a step, timed over {timing['steps_timed']} steps "
        f"in {timing['timing_seconds']:.1f} s (preset {cfg.preset})"
    )
