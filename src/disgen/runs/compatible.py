"""A checkpoint against the run that would use it: every network tensor's shape and dtype, and,
to resume, every optimizer state value against its parameter, the param groups, schedules,
gradient scaler and the loader's generator (``checkpoint.load`` has checked the structure)."""

from __future__ import annotations

from typing import Any

import torch

from disgen.config import TrainConfig
from disgen.errors import DisgenError
from disgen.models.weights import tensor_problem


def check_compatible(
    state: dict,
    cfg: TrainConfig,
    nets: dict,
    opts: dict | None = None,
    scheds: dict | None = None,
    generator: torch.Generator | None = None,
) -> None:
    """Refuse a checkpoint (its structure checked by checkpoint.load) of another model or shape,
    listing what does not match: every network tensor's shape and dtype and, to resume, every
    optimizer state tensor against its parameter, the param groups, schedules, gradient scaler
    and the loader's generator. A wrong-shaped Adam ``exp_avg`` would otherwise reach a fused
    kernel, which writes past its end."""
    problems = []
    if state.get("model") != cfg.model:
        problems.append(f"model {state.get('model')!r} != {cfg.model!r}")
    saved = state.get("nets", {})
    if set(saved) != set(nets):
        problems.append(f"networks {sorted(saved)} != {sorted(nets)}")
    for name, module in nets.items():
        ours = module.state_dict()
        theirs = saved.get(name, {})
        for key in sorted(set(ours) | set(theirs)):
            if key not in theirs:
                problems.append(f"{name}.{key} missing from the checkpoint")
            elif key not in ours:
                problems.append(f"{name}.{key} unexpected in the checkpoint")
            elif problem := tensor_problem(f"{name}.{key}", theirs[key], ours[key], exact=True):
                problems.append(problem)
    if opts is not None:
        problems += optimizer_mismatches(state["opts"], opts)
        problems += [
            f"scheds.{p}"
            for p in plain_mismatches(
                state["scheds"], {k: s.state_dict() for k, s in (scheds or {}).items()}, "", exact_keys=True
            )
        ]
        scaler = getattr(opts, "scaler", None)
        if (state.get("scaler") is None) != (scaler is None):
            problems.append("a gradient scaler (fp16) in one of the checkpoint and this run, not both")
        elif scaler is not None:
            problems += [f"scaler.{p}" for p in plain_mismatches(state["scaler"], scaler.state_dict(), "")]
    if generator is not None and state["rng"]["loader"].numel() != generator.get_state().numel():
        problems.append(
            f"the loader's generator state has {state['rng']['loader'].numel()} bytes, this "
            f"device's {generator.get_state().numel()} (written on another kind of device?)"
        )
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise DisgenError(f"the checkpoint does not fit this model: {shown}")


def describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}" + ("" if t.dtype == torch.float32 else f" {t.dtype}")


def optimizer_mismatches(saved: dict, opts: dict) -> list[str]:
    """Each optimizer's param groups and per-parameter state against this run's optimizers."""
    if set(saved) != set(opts):
        return [f"optimizers {sorted(saved)} != {sorted(opts)}"]
    problems = []
    for name, opt in opts.items():
        theirs, ours = saved[name], opt.state_dict()
        if [len(g["params"]) for g in theirs["param_groups"]] != [len(g["params"]) for g in ours["param_groups"]]:
            problems.append(
                f"opts.{name}: param groups of {[len(g['params']) for g in theirs['param_groups']]} "
                f"parameters != {[len(g['params']) for g in ours['param_groups']]}"
            )
            continue
        for i, (tg, og) in enumerate(zip(theirs["param_groups"], ours["param_groups"])):
            # Numbers (lr, betas, eps...) must be there; torch fills in missing flags (amsgrad, fused...).
            numbers = tuple(k for k, v in og.items() if k != "params" and not (isinstance(v, bool) or v is None))
            problems += [
                f"opts.{name}.param_groups[{i}].{p}"
                for p in plain_mismatches(
                    {k: v for k, v in tg.items() if k != "params"},
                    {k: v for k, v in og.items() if k != "params"},
                    "",
                    required=numbers,
                )
            ]
        params = {
            i: p
            for tg, group in zip(theirs["param_groups"], opt.param_groups)
            for i, p in zip(tg["params"], group["params"])
        }
        kinds = state_kinds(opt)  # None: unknown, then only a step may be a scalar
        for i, entry in theirs["state"].items():
            missing = sorted(set(kinds) - set(entry)) if kinds is not None else []
            if missing:
                problems.append(f"opts.{name} state {i} lacks {', '.join(missing)}")
            p = params[i]
            for key, v in entry.items():
                kind = kinds.get(key) if kinds is not None else ("scalar" if key == "step" else None)
                if kind is None and not isinstance(v, torch.Tensor):
                    continue  # a key this class does not keep, or an unknown class: torch ignores or checks it
                if kind == "none" and v is None:
                    continue  # e.g. SGD's momentum buffer without momentum
                if kind == "scalar":
                    ok = (isinstance(v, torch.Tensor) and v.dim() == 0 and not v.is_complex()) or (
                        not isinstance(v, torch.Tensor) and v is not None
                    )  # a plain step count was checked as a number already
                else:  # shaped like its parameter (or may be, where the class keeps None)
                    ok = isinstance(v, torch.Tensor) and tuple(v.shape) == tuple(p.shape) and v.dtype == p.dtype
                if not ok:
                    shown = describe(v) if isinstance(v, torch.Tensor) else ("None" if v is None else type(v).__name__)
                    wanted = "a scalar" if kind == "scalar" else describe(p)
                    problems.append(f"opts.{name} state {i}.{key} {shown} != its parameter's {wanted}")
    return problems


def state_kinds(opt: torch.optim.Optimizer) -> dict[str, str] | None:
    """The keys of the state ``opt``'s class keeps per parameter, each with its kind: ``scalar``
    (Adam's step), ``shaped`` like its parameter (exp_avg, exp_avg_sq) or ``none`` (SGD's momentum
    buffer without momentum), from one step of a twin on a parameter of shape (2,); None if the
    class cannot be made so."""
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.zeros(2)
    try:
        twin = type(opt)([p], **opt.defaults)
        twin.step()
    except Exception:  # an optimizer whose options are not all constructor arguments
        return None

    def kind(v: Any) -> str:
        if v is None:
            return "none"
        return "shaped" if isinstance(v, torch.Tensor) and v.shape == p.shape else "scalar"

    return {k: kind(v) for k, v in twin.state[p].items()}


def plain_mismatches(
    theirs: dict, ours: dict, where: str, exact_keys: bool = False, required: tuple[str, ...] = ()
) -> list[str]:
    """Keys whose values are not of the kind this run's own state holds (a number where a number
    is, finite; a sequence of as many; ``None`` and bools where those are). ``exact_keys``: no
    keys ours lacks (a scheduler sets every key as an attribute); ``required``: keys it must have."""
    problems = [f"{where}{k} missing" for k in required if k not in theirs]
    if exact_keys and set(theirs) != set(ours):
        extra, missing = sorted(map(str, set(theirs) - set(ours))), sorted(map(str, set(ours) - set(theirs)))
        return problems + [
            f"{where.rstrip('.') or 'it'} has "
            + " and ".join(
                ([f"unexpected key(s) {', '.join(extra)}"] if extra else [])
                + ([f"no key(s) {', '.join(missing)}"] if missing else [])
            )
        ]
    for key in set(theirs) & set(ours):
        a, b = theirs[key], ours[key]
        if isinstance(b, dict) and isinstance(a, dict):
            problems += plain_mismatches(a, b, f"{where}{key}.", exact_keys)
        elif not same_kind(a, b):
            problems.append(f"{where}{key} is {a!r:.40}, not a value like {b!r:.40}")
    return problems


def same_kind(a, b) -> bool:
    from disgen.runs.checkpoint import is_number

    if isinstance(b, bool):  # a flag: Adam's fused step takes maximize=None for a TypeError
        return isinstance(a, bool)
    if b is None:  # foreach, fused: None (torch chooses) or a choice
        return isinstance(a, bool) or a is None
    if isinstance(b, (int, float)):
        return is_number(a)
    if isinstance(b, (list, tuple)):
        return isinstance(a, (list, tuple)) and len(a) == len(b) and all(map(same_kind, a, b))
    if isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
    return type(a) is type(b)
