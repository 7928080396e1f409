"""Training: the one loop and what it owns.

    trainer      the Trainer (device, seeding, batches, schedule, evaluation, checkpoints,
                 pictures) and train_reference (the cached classifier that measures GANs)
    resume       what a checkpoint holds of a Trainer, and --resume from the newest good one
    precision    --device, --deterministic, --precision, --channels-last, --compile
    distributed  torchrun: the only module that reads RANK / WORLD_SIZE / LOCAL_RANK
    budget       --time-budget: the training steps that fit, timed on the run's first steps
    divergence   stops a diverging run early (non-finite or exploding loss or weights)
    progress     the per-epoch progress bar, or lines when stderr is not a terminal
    tensorboard  train --tensorboard

disgen.api.train lays out a run: the config, the data, a Trainer (which builds the networks and
batches), budget.fit, trainer.train_reference where the objective measures with one, then
Trainer.fit, which trains.

May import: objectives, evaluation, viz, runs, models, data, config, files, errors (the layers below;
``pyproject.toml``'s import contract checks it). Never report, api, serve or cli.
"""
