"""What a checkpoint holds of a :class:`~disgen.training.trainer.Trainer`, and how a run continues
from one (``--resume``): the newest good checkpoint restored, metrics.jsonl cut to its epoch, the
learning rates a resumed config asks for applied.

May import: runs, files, objectives and training.distributed (called by the Trainer).
"""

from __future__ import annotations

import torch

from disgen import files, runs
from disgen.objectives.optim import base_lr
from disgen.runs import checkpoint
from disgen.training import distributed


def state_of(trainer) -> dict:
    """Everything a checkpoint holds: the config, epoch and best value, the data's description, the
    networks, optimizers, schedules and scaler, and the random states (each process's, in a
    distributed run: a collective call)."""
    rng = {"torch": torch.get_rng_state(), "loader": trainer.generator.get_state()}
    if trainer.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(trainer.device)
    if distributed.enabled():  # every process's own draws, for an exact resume
        rng["processes"] = distributed.gather({k: v for k, v in rng.items() if k != "loader"})
    return {
        "model": trainer.cfg.model,
        "config": trainer.cfg.to_dict(),
        "epoch": trainer.epoch,
        "best": trainer.best,
        "data": runs.data_info(trainer.data),
        "nets": {k: m.state_dict() for k, m in trainer.nets.items()},
        "opts": {k: o.state_dict() for k, o in trainer.opts.items()},
        "scheds": {k: s.state_dict() for k, s in trainer.scheds.items()},
        "scaler": trainer.opts.scaler.state_dict() if trainer.opts.scaler is not None else None,
        "rng": rng,
    }


def restore(trainer, state: dict) -> None:
    """Put ``state`` (a checkpoint checked against this run) into the trainer."""
    runs.check_compatible(state, trainer.cfg, trainer.nets, trainer.opts, trainer.scheds, trainer.generator)
    for k, m in trainer.nets.items():
        m.load_state_dict(state["nets"][k])
    wanted = {k: [base_lr(g) for g in o.param_groups] for k, o in trainer.opts.items()}
    for k, o in trainer.opts.items():
        o.load_state_dict(state["opts"][k])
    for k, s in trainer.scheds.items():
        s.load_state_dict(state["scheds"][k])
    change_lr(trainer, wanted)
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
    trainer.epoch, trainer.best = state["epoch"], state["best"]


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
    trainer.history = runs.read_metrics(trainer.run_dir, upto=trainer.epoch)
    distributed.barrier()  # every process has read the files before the main one rewrites them
    if trainer.main:
        runs.write_metrics(trainer.run_dir, trainer.history)
    state = state_of(trainer)  # (a collective call: every process makes it)
    if found[1].name != "last.pt" and trainer.main:  # last.pt is damaged, or older (a kill between the writes)
        checkpoint.save(trainer.run_dir / "checkpoints" / "last.pt", state)
    trainer.log(f"resuming {trainer.run_dir} after epoch {trainer.epoch}")
