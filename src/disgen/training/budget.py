"""``--time-budget SECONDS``: training that ends when its seconds are spent.

A budget is a deadline. The run plans its learning-rate schedule over the steps that fit, from the
time its own steps take, and plans again as they change (another job takes the cores, or leaves
them): after its first steps, then every :data:`REPLAN_SHARE` of the budget, the recent steps give
the seconds a step, and the steps left are planned from the seconds left. The schedule's progress
goes on from where it was, spread over the new remainder (disgen.objectives.optim.plan_progress),
so the learning rate never jumps. The run stops when the plan ends or the budget is spent (before a
step that would end more than half a step past it), whichever comes first.

Nothing is thrown away to time the run: the timed steps are the run's own. Each plan is kept as a
knot ``[step, planned steps]`` in ``budget_plan``; at the end ``max_steps`` and ``epochs`` are set
to the steps and epochs taken and config.json is rewritten: a rerun of it, or a ``--resume``,
trains exactly those steps on exactly that schedule and never times. A run killed before its end
resumes as a budget run with the seconds its completed epochs left.

Where the model names a preset for short budgets (``ModelSpec.short_budget``: cnn-classifier's
``budget-short``) and a ``budget`` run's budget might hold under one epoch of its network, a few
steps are timed first and put back (weights, optimizer and random states), at most
:data:`TIMING_SHARE` of the budget, to choose between the two networks (:func:`narrower`); those
seconds count against the budget. Which preset, and whether a model has one, is the model's policy;
this module only times and applies it.

The budget is training time: the per-epoch evaluation of the validation split and the final test
are timed apart (``eval_seconds`` in metrics.jsonl), and so is start-up (data loading, a GAN's
reference classifier).

May import: training.distributed, training.resume (the live state it puts back), objectives and the layers
below them (called by the Trainer).
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections import deque

import torch

from disgen.config import MAX_STEPS, read_json
from disgen.errors import plural
from disgen.files import write_json
from disgen.training import distributed
from disgen.training.resume import live_state, put_live_state

clock = time.perf_counter  # the seconds a budget counts (a fake clock in tests)
WARMUP = 2  # the run's first steps, left out of the seconds a step: allocation, kernel choice, compilation
FIRST_PLAN = WARMUP + 3  # steps before the first plan...
FIRST_SHARE = 0.25  # ... or this share of the budget (slow first steps), whichever comes first
REPLAN_SHARE = 0.05  # planned again each time this share of the budget is spent
REPLAN_CHANGE = 0.01  # a new plan is kept where it moves the end by more than this share (and a step)
RECENT = 21  # the last steps whose median time a plan takes
TIMING_SHARE = 0.1  # the most of a budget that timing for the narrower network may take


class Deadline:
    """The clock of a budget run: counts the seconds of its training steps (loader included,
    evaluation not), plans and re-plans ``cfg.budget_plan`` and ``cfg.epochs``, and says when to
    stop. ``spent``: seconds already counted (a resume, the narrower network's timing)."""

    def __init__(self, cfg, steps_per_epoch: int, spent: float = 0.0, log=lambda msg: None):
        self.cfg, self.steps_per_epoch, self.log = cfg, steps_per_epoch, log
        self.budget, self.spent = cfg.time_budget, spent
        self.recent: deque[float] = deque(maxlen=RECENT)  # the seconds of the last steps, warm-up left out
        self.since = 0  # steps since the last plan
        self.fastest = math.inf  # the fastest step yet: the estimate while only warm-up steps are timed
        self.planned_at, self.planned_step = spent, 0  # seconds spent and steps done at the last plan
        self.taken = 0  # steps this process took
        self.step_seconds: float | None = None
        self.mark: float | None = None
        self.synced = distributed.enabled()  # several processes: decisions at the same steps in all
        if not cfg.budget_plan:  # until the first steps are timed, the schedule holds its first value
            cfg.budget_plan = [[0, MAX_STEPS]]

    @property
    def total(self) -> int:
        return self.cfg.budget_plan[-1][1]

    def start(self) -> None:
        """Count from now (an epoch starts; the evaluation before it is not counted)."""
        self.mark = clock()

    def over(self, step: int) -> bool:
        """Whether the run stops before step ``step`` (0-based, counted over the run): the plan ends
        there, or the budget is spent. Under torchrun the processes decide by the plan alone (it is
        the main process's, made at the same steps in all), so they all stop at the same step."""
        limit = self.total if self.cfg.max_steps is None else min(self.total, self.cfg.max_steps)
        if step >= limit:
            return True
        return not self.synced and self.spent + 0.5 * (self.step_seconds or 0.0) >= self.budget

    def stepped(self, done: int, device: torch.device) -> None:
        """A step ended (``done`` steps of the run so far): count it, and plan where it is due."""
        now = clock()
        seconds, self.mark = now - self.mark, now
        self.spent += seconds
        self.taken += 1
        self.fastest = min(self.fastest, seconds)
        self.since += 1
        if self.taken > WARMUP:
            self.recent.append(seconds)
        by_steps = done - self.planned_step >= max(2, REPLAN_SHARE * self.total)
        if self.step_seconds is None:
            due = self.taken >= FIRST_PLAN or (not self.synced and self.spent >= FIRST_SHARE * self.budget)
        else:
            by_time = self.spent - self.planned_at >= REPLAN_SHARE * self.budget and self.since >= 2
            due = by_steps or (by_time and not self.synced)
        if due:
            if device.type == "cuda":  # the queued steps finish before the clock is read
                torch.cuda.synchronize(device)
                self.spent += clock() - self.mark
                self.mark = clock()
            self.plan(done)

    def plan(self, done: int) -> None:
        """Plan the steps left from the recent seconds a step; every process takes the main's plan."""
        # The median of the last RECENT steps (one step another job held up does not shorten the
        # plan), and before any step past the warm-up the fastest step (the first are the slowest:
        # allocation, kernel choice): a plan that ends too early cannot be stretched (its schedule
        # has ended), while one that runs late is shortened by the next plan or stopped by the clock.
        measured = statistics.median(self.recent) if self.recent else self.fastest
        self.step_seconds, spent = distributed.gather((measured, self.spent))[0]
        self.since, self.planned_at, self.planned_step = 0, self.spent, done
        # Rounded, not floored: the run then ends within half a step of its budget either way (a
        # floor ends up to a whole step early, a large share of a short budget of slow steps).
        left = max(0, round((self.budget - spent) / self.step_seconds))
        total = min(done + left, MAX_STEPS)
        plan = self.cfg.budget_plan
        if len(plan) == 1 or abs(total - self.total) > max(1, REPLAN_CHANGE * self.total):
            if plan[-1][0] == done:
                plan[-1][1] = total
            else:
                plan.append([done, total])
        self.cfg.epochs = max(1, math.ceil(self.total / self.steps_per_epoch))

    def end(self, steps: int, epochs: int) -> None:
        """The run's steps are spent: fix them, as a rerun will take them."""
        self.cfg.max_steps, self.cfg.epochs = max(1, steps), max(1, epochs)

    def resume(self, plan: list | None, done: int, spent: float) -> None:
        """A budget run continued after ``done`` steps (whole epochs) that took ``spent`` seconds:
        its plan as the checkpoint holds it, up to there; the first steps from here time the rest."""
        kept = [list(k) for k in plan or [] if k[0] <= done]
        self.cfg.budget_plan = kept or [[0, max(done, self.total)]]
        self.spent = self.planned_at = spent
        self.planned_step = done
        self.cfg.epochs = max(1, math.ceil(max(self.total, done) / self.steps_per_epoch))

    def summary(self) -> dict:
        """What run.json records of the budget's clock."""
        return {
            "seconds": round(self.spent, 3),
            "steps": self.cfg.max_steps,
            "step_seconds": self.step_seconds,
            "plans": len(self.cfg.budget_plan),
        }


def steps_in_epoch(trainer, done: int) -> int:
    """The steps the epoch after ``done`` steps will take: all, or fewer where --max-steps or a
    budget's plan ends in it (what the progress line's step count and ETA read)."""
    cap = trainer.cfg.max_steps if trainer.cfg.max_steps is not None else None
    if trainer.deadline is not None:
        cap = trainer.deadline.total if cap is None else min(cap, trainer.deadline.total)
    steps = len(trainer.loader)
    return steps if cap is None else max(0, min(steps, cap - done))


def spent_before(trainer) -> bool:
    """Whether a budget run's seconds or plan ran out at the end of the last epoch."""
    dl = trainer.deadline
    return dl is not None and dl.over(trainer.epoch * len(trainer.loader))


def finish(trainer) -> None:
    """After a budget run's last epoch: its steps and epochs fixed in config.json, the clock's
    figures in run.json, and what it did said, with a warning where it held too few steps."""
    dl = trainer.deadline
    if dl is None:
        return
    cfg = trainer.cfg
    if cfg.max_steps is None:  # the budget ran out at an epoch's end
        dl.end(trainer.epoch * len(trainer.loader), trainer.epoch)
    if trainer.main:
        write_json(trainer.run_dir / "config.json", cfg.to_dict())
        info = read_json(trainer.run_dir / "run.json", "the run's run.json") or {}
        write_json(trainer.run_dir / "run.json", {**info, "time_budget": dl.summary()})
    steps, per_epoch = cfg.max_steps, len(trainer.loader)
    trainer.log(
        f"time budget {cfg.time_budget:g} s: {dl.spent:.1f} s of training, {plural(steps, 'step')} "
        f"({steps / per_epoch:.2f} epochs"
        + (f", {dl.step_seconds * 1000:.1f} ms a step at the end" if dl.step_seconds else "")
        + f", planned {plural(len(cfg.budget_plan), 'time')}); config.json holds them (max_steps {steps}, "
        f"budget_plan): `disgen train {cfg.model} --config {trainer.run_dir / 'config.json'}` reruns them exactly"
    )
    if steps < min(per_epoch, MIN_USEFUL_STEPS):
        trainer.log(
            f"warning: {cfg.time_budget:g} s held only {plural(steps, 'step')} of {cfg.model} here "
            f"({dl.spent / steps:.2g} s a step; one epoch is {per_epoch} steps): too few to learn much; "
            "give --time-budget more seconds"
        )


MIN_USEFUL_STEPS = 20  # fewer steps than this (and than an epoch) in a budget: a warning


def time_steps(trainer, budget: float) -> dict:
    """Seconds a training step of ``trainer`` takes (the mean over the steps timed after the
    warm-up, or over all where there were no more), timing for at most TIMING_SHARE of ``budget``;
    the steps are put back afterwards."""
    saved = copy.deepcopy(live_state(trainer))  # what the timed steps change, put back after them
    start, times = clock(), []
    for m in trainer.nets.values():
        m.train()
    t0 = start
    for batch in trainer.loader:
        trainer.take_step(batch)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        t1 = clock()
        times.append(t1 - t0)
        t0 = t1
        if len(times) >= FIRST_PLAN or t1 - start >= TIMING_SHARE * budget:
            break
    elapsed = clock() - start
    put_live_state(trainer, saved)
    timed = times[WARMUP:] or [min(times)]  # only warm-up steps (a short budget): the fastest of them
    return {"step_seconds": sum(timed) / len(timed), "steps_timed": len(times), "timing_seconds": elapsed}


def steps_that_fit(budget: float, timing: dict) -> int:
    """Training steps in what is left of ``budget`` after the timing (at least one)."""
    return max(1, math.floor((budget - timing["timing_seconds"]) / timing["step_seconds"]))


def preset_network(spec, name: str) -> dict:
    """The network options preset ``name`` of ``spec`` sets, typed as a config holds them."""
    given = dict(spec.presets[name].get("model", {}))
    typed = spec.model_config(given)
    return {k: getattr(typed, k) for k in given}


def narrower(trainer, timing: dict) -> dict | None:
    """What the model's short-budget preset (``spec.short_budget``) changes from ``budget`` (its network as
    ``model_args``, and settings such as its learning rate that the run left as ``budget`` has
    them) where a ``budget`` run would train less than one epoch in the budget and its network
    options were left as the preset has them: there, a network of half the width learns more in
    the steps that fit (chosen on the validation split, docs/speed.md). None elsewhere."""
    cfg, spec = trainer.cfg, trainer.spec
    if steps_that_fit(cfg.time_budget, timing) >= len(trainer.loader):
        return None
    budget = spec.presets["budget"]
    changes = {
        k: v
        for k, v in spec.presets[spec.short_budget].items()
        if k != "model" and budget.get(k) != v and getattr(cfg, k) == budget.get(k)
    }
    return {**changes, "model_args": preset_network(spec, spec.short_budget)}


def may_narrow(trainer) -> bool:
    """Whether a budget run might take the narrower network: a ``budget`` run of a model that
    names a short-budget preset, its network options as the ``budget`` preset has them."""
    cfg, spec = trainer.cfg, trainer.spec
    return cfg.preset == "budget" and spec.short_budget is not None and cfg.model_args == preset_network(spec, "budget")


def fit(trainer) -> Deadline | None:
    """``--time-budget``: the :class:`Deadline` of a budget run whose steps are not fixed yet
    (None for a run given ``max_steps``: a rerun, a finished run's resume, ``--max-steps``).
    Where the budget may hold under one epoch of the default network, times it first and takes
    the narrower one where it does (:func:`narrower`, recorded as ``model_args``)."""
    cfg = trainer.cfg
    if cfg.time_budget is None or cfg.max_steps is not None:
        return None
    spent = 0.0
    if may_narrow(trainer) and not cfg.budget_plan:
        timing = distributed.gather(time_steps(trainer, cfg.time_budget))[0]
        spent = timing["timing_seconds"]
        narrow = narrower(trainer, timing)
        if narrow:
            trainer.log(
                f"time budget {cfg.time_budget:g} s: under one epoch of the default network "
                f"({steps_that_fit(cfg.time_budget, timing)} of {len(trainer.loader)} steps at "
                f"{timing['step_seconds'] * 1000:.1f} ms, timed in {spent:.1f} s); "
                f"taking the {trainer.spec.short_budget} preset's "
                f"network ({', '.join(f'{k} {v}' for k, v in narrow['model_args'].items())})"
                + "".join(f", {k} {v}" for k, v in narrow.items() if k != "model_args")
            )
            for k, v in narrow.items():
                setattr(cfg, k, v)
            trainer.build()
    deadline = Deadline(cfg, len(trainer.loader), spent, trainer.log)
    trainer.log(
        f"time budget {cfg.time_budget:g} s: training until {cfg.time_budget:g} s of training steps are spent "
        f"(evaluation is timed apart); the first steps time the rest, and the steps and learning-rate "
        f"schedule are planned again as step times change"
    )
    return deadline
