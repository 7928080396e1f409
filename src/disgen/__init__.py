"""disgen: classic discriminative and generative image models, trained, measured and inspected
with one tool. ``disgen.train(...)`` and ``disgen.load(run_dir)`` are the Python entry points.
"""

from disgen.version import __version__

__all__ = ["Run", "load", "train", "__version__"]


def __getattr__(name: str):
    """``disgen.train`` etc., imported on first use: ``import disgen`` (the CLI's commands that need
    no tensors) does not import torch."""
    if name in ("Run", "load", "train"):
        from disgen import api

        return getattr(api, name)
    raise AttributeError(f"module 'disgen' has no attribute {name!r}")
