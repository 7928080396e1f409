"""disgen: classic discriminative and generative image models, trained, measured and inspected
with one tool. ``disgen.train(...)`` and ``disgen.load(run_dir)`` are the Python entry points.
"""
__version__ = "0.1.0"

from disgen.api import Run, load, train  # noqa: E402

__all__ = ["Run", "load", "train", "__version__"]
