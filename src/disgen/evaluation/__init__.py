"""Evaluation: pure measures of a model's outputs.

    metrics      Fréchet distance, KID, k-NN precision/recall, class coverage, mode counts
                 (functions of tensors, nothing else)
    reference    the classifier whose features measure image GANs: loaded from a run directory or
                 the cache (disgen.training.trainer.train_reference trains a missing one)

May import: runs, models, data, config, files, errors. Never objectives, training or anything above.
"""
