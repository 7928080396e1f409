"""What a checkpoint holds of a :class:`~disgen.training.trainer.Trainer`, and how a run continues
from one (``--resume``): the options a resume may change (:data:`RESUMABLE`), the newest good
checkpoint restored, metrics.jsonl cut to its epoch, the learning rates a resumed config asks for
applied.

May import: runs, files, config, models, objectives and training.distributed (called by the Trainer).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from disgen import files, runs
from disgen.config import TrainConfig, load_config_file
from disgen.errors import DisgenError
from disgen.models import resolve
from disgen.objectives import validation_metrics
from disgen.objectives.optim import base_lr
from disgen.runs import checkpoint
from disgen.training import distributed

# What --resume may change: how the run goes on, not what it trains. Any other option would not fit
# the checkpoint (a network of other sizes, another optimizer's state, other batches) or would
# leave a config.json that no longer describes the run. --epochs only grows, and not for a run
# whose steps are fixed (--time-budget, --max-steps); --lr rescales the optimizers (change_lr);
# --dataset and --data-dir say where the run's images are (the same images: splits.check).
RESUMABLE = (
    "epochs",
    "lr",
    "device",
    "precision",
    "channels_last",
    "compile",
    "data_on_device",
    "deterministic",
    "progress",
    "tensorboard",
    "test_every_epoch",
    "dataset",
    "data_dir",
    "run_dir",
)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def as_typed(value: object) -> str:
    """An option's value as one types it on the command line (64,32; 0.001; none)."""
    if isinstance(value, (tuple, list)):
        return ",".join(map(as_typed, value))
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def changes(names: list[str], old: dict, new: dict) -> list[tuple[str, object, object]]:
    """(option, new value, old value) of config fields ``names``, a model option apiece."""
    out = []
    for k in names:
        if k == "model_args":
            out += [
                (a, new[k].get(a), old[k].get(a))
                for a in sorted(set(new[k]) | set(old[k]))
                if new[k].get(a) != old[k].get(a)
            ]
        else:
            out.append((k, new[k], old[k]))
    return out


def resume_config(model: str, run_dir: Path, options: dict, config_file: str | None = None) -> TrainConfig:
    """The config of the run in ``run_dir`` with the options (flags, and ``config_file``'s) that a
    resume may change; any other option that differs from the run's is refused here, before
    anything is written."""
    saved = runs.read_config(run_dir)
    if saved.model != model:
        raise DisgenError(
            f"{run_dir} holds a {saved.model} run, not {model}: continue it with "
            f"`disgen train {saved.model} --run-dir {run_dir} --resume`"
        )
    given = {**(load_config_file(config_file, model) if config_file else {}), **options}
    kept = {k: v for k, v in saved.to_dict().items() if k != "model"}
    cfg = resolve(model, {**kept, **{k: v for k, v in given.items() if v is not None}})
    old, new = resolve(model, kept).to_dict(), cfg.to_dict()  # both typed as a config holds them
    fixed_steps = saved.max_steps is not None or saved.time_budget is not None
    refused = [k for k in new if new[k] != old[k] and (k not in RESUMABLE or (k == "epochs" and fixed_steps))]
    if refused:
        shown = [f"{flag(k)} {as_typed(a)} (the run's: {as_typed(b)})" for k, a, b in changes(refused, old, new)]
        steps = " (a --time-budget or --max-steps run: its steps decide its epochs)" if "epochs" in refused else ""
        raise DisgenError(
            f"--resume continues {run_dir} as it was set up: {', '.join(shown)} cannot change on a resume{steps}. "
            f"A resume may change only --epochs (to more), --lr and how it runs "
            f"({', '.join(flag(k) for k in RESUMABLE[2:-3])}) and where its images are (--dataset, --data-dir); "
            f"nothing was written. To train with other "
            f"options, start a new run: `disgen train {model} --config {Path(run_dir) / 'config.json'}` "
            "with them"
        )
    return cfg


def live_state(trainer) -> dict:
    """What training steps change, as the live tensors (copy it to keep it): the networks,
    optimizers and scaler, and the random states (each process's, in a distributed run: a
    collective call). A checkpoint holds it; a budget run's timing puts it back afterwards."""
    rng = {"torch": torch.get_rng_state(), "loader": trainer.generator.get_state()}
    if trainer.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(trainer.device)
    if distributed.enabled():  # every process's own draws, for an exact resume
        rng["processes"] = distributed.gather({k: v for k, v in rng.items() if k != "loader"})
    return {
        "nets": {k: m.state_dict() for k, m in trainer.nets.items()},
        "opts": {k: o.state_dict() for k, o in trainer.opts.items()},
        "scaler": trainer.opts.scaler.state_dict() if trainer.opts.scaler is not None else None,
        "rng": rng,
    }


def put_live_state(trainer, state: dict) -> None:
    """Put :func:`live_state`'s part of ``state`` back into the trainer."""
    for k, m in trainer.nets.items():
        m.load_state_dict(state["nets"][k])
    for k, o in trainer.opts.items():
        o.load_state_dict(state["opts"][k])
        if not state["opts"][k]["state"]:  # no moments before the first step
            o.state.clear()
    if trainer.opts.scaler is not None and state.get("scaler"):
        trainer.opts.scaler.load_state_dict(state["scaler"])
    rng = state["rng"]
    ranks = rng.get("processes", [rng])
    if len(ranks) == distributed.world().size:
        rng = {**rng, **ranks[distributed.world().rank]}
    elif distributed.enabled():  # another number of processes: fresh draws per process
        rng = {
            **rng,
            "torch": torch.manual_seed(distributed.process_seed(trainer.cfg.seed + state["epoch"])).get_state(),
        }
    torch.set_rng_state(rng["torch"])
    trainer.generator.set_state(rng["loader"])
    if "cuda" in rng and trainer.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], trainer.device)


def state_of(trainer) -> dict:
    """Everything a checkpoint holds: the config, epoch and best value, the data's description, the
    schedules and the :func:`live_state` (a collective call in a distributed run)."""
    live = live_state(trainer)
    return {
        "model": trainer.cfg.model,
        "config": trainer.cfg.to_dict(),
        "epoch": trainer.epoch,
        "best": trainer.best,
        "best_rank": None if trainer.best_rank is None else list(trainer.best_rank),
        "data": runs.data_info(trainer.data),
        "nets": live["nets"],
        "opts": live["opts"],
        "scheds": {k: s.state_dict() for k, s in trainer.scheds.items()},
        "scaler": live["scaler"],
        "rng": live["rng"],
    }


def restore(trainer, state: dict) -> None:
    """Put ``state`` (a checkpoint checked against this run) into the trainer; the learning rates
    this run's config asks for are applied over the checkpoint's (:func:`change_lr`)."""
    runs.check_compatible(state, trainer.cfg, trainer.nets, trainer.opts, trainer.scheds, trainer.generator)
    wanted = {k: [base_lr(g) for g in o.param_groups] for k, o in trainer.opts.items()}
    put_live_state(trainer, state)
    for k, s in trainer.scheds.items():
        s.load_state_dict(state["scheds"][k])
    change_lr(trainer, wanted)
    trainer.epoch, trainer.best = state["epoch"], state["best"]
    rank = state.get("best_rank")  # None in a checkpoint written before tie-breaks: resume_run replays
    trainer.best_rank = None if rank is None else (float(rank[0]), float(rank[1]))


def replayed_rank(objective, history: list[dict], best: float) -> tuple[float, float]:
    """The rank best.pt has by the epochs' validation metrics (for a checkpoint written before
    tie-breaks); where none of them holds its value (metrics.jsonl lost or edited), a rank no
    epoch beats: best.pt stays the epoch that was chosen, never replaced by a guess."""
    ranks = []
    for record in history:
        val = validation_metrics(record)
        rank = objective.rank(val) if val.get(objective.pick(val)[0]) == best else None
        ranks += [rank] if rank is not None else []
    return max(ranks) if ranks else (math.inf, math.inf)


def change_lr(trainer, wanted: dict[str, list[float]]) -> None:
    """After a restore: where this run's config asks for other base learning rates than the
    checkpoint's optimizers hold (``--resume --lr X``), rescale them and their schedules."""
    changed = []
    for k, o in trainer.opts.items():
        for g, new in zip(o.param_groups, wanted[k]):
            old = base_lr(g)
            if new != old and old > 0:
                g["lr"] = g["lr"] * new / old
                if "initial_lr" in g:
                    g["initial_lr"] = new
                changed.append(f"{k} {old:g} -> {new:g}")
        if k in trainer.scheds:
            trainer.scheds[k].base_lrs = [base_lr(g) for g in o.param_groups]
    if changed:
        trainer.log("learning rate changed on resume: " + ", ".join(changed))


def resume_run(trainer) -> None:
    """Restore the newest good checkpoint (a damaged last.pt falls back to best.pt) and cut
    metrics.jsonl to its epoch; temp files of writes a kill interrupted are removed."""
    if trainer.main:
        files.remove_stale_temps(trainer.run_dir)
    found = checkpoint.load_latest(trainer.run_dir / "checkpoints", trainer.device, trainer.log)
    if found is None:
        if (trainer.run_dir / "metrics.jsonl").exists() and trainer.main:  # an epoch killed before its checkpoint
            runs.write_metrics(trainer.run_dir, [])
        trainer.log(f"no checkpoint in {trainer.run_dir} yet: starting from the beginning")
        return
    restore(trainer, found[0])
    if trainer.cfg.epochs < trainer.epoch and trainer.deadline is None:
        raise DisgenError(
            f"--epochs {trainer.cfg.epochs}: {trainer.run_dir} has completed {trainer.epoch} epochs, and a resume "
            f"only adds epochs: give --epochs {trainer.epoch + 1} or more, or leave --epochs out; nothing was written"
        )
    trainer.history = runs.read_metrics(trainer.run_dir, upto=trainer.epoch)
    if trainer.best is not None and trainer.best_rank is None:  # a checkpoint from before tie-breaks
        trainer.best_rank = replayed_rank(trainer.objective, trainer.history, trainer.best)
    if trainer.deadline is not None:  # a budget run killed before its end: the seconds it has left
        spent = sum(r.get("seconds", 0.0) for r in trainer.history)
        trainer.deadline.resume(found[0]["config"].get("budget_plan"), trainer.epoch * len(trainer.loader), spent)
    distributed.barrier()  # every process has read the files before the main one rewrites them
    if trainer.main:
        runs.write_metrics(trainer.run_dir, trainer.history)
    state = state_of(trainer)  # (a collective call: every process makes it)
    if found[1].name != "last.pt" and trainer.main:  # last.pt is damaged, or older (a kill between the writes)
        checkpoint.save(trainer.run_dir / "checkpoints" / "last.pt", state)
    trainer.log(f"resuming {trainer.run_dir} after epoch {trainer.epoch}")
