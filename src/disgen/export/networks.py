"""The networks an export writes, each the exact computation of a disgen command as one module.
Each objective declares its own (its ``export``, a :class:`disgen.objectives.exports.ExportSpec`):

    classifier  images -> class probabilities      softmax of the logits, as ``disgen predict``
    generator   z -> images in [0, 1] (or points)  the EMA generator where the run keeps one,
                                                   mapped to [0, 1] and clamped, as ``disgen sample``
    encoder     images -> z (and class             an autoencoder's code; a semi-supervised aae's
                probabilities)                     class probabilities, as ``disgen predict``
    decoder     z (and y) -> images in [0, 1]      decoder(encoder(x)) is ``disgen reconstruct``;
                                                   an aae's decoder on prior draws is ``disgen sample``

Inputs are float32 with the batch first; images (N, C, H, W) in the model's value range
(``spec.value_range``), as :meth:`disgen.api.Run.as_batch` makes them. Each network is in eval mode.

May import: api and every layer below it.
"""

from __future__ import annotations

from disgen.api import Run
from disgen.errors import DisgenError
from disgen.models import Nets
from disgen.objectives.classify import Probabilities
from disgen.objectives.exports import EXAMPLE_BATCH, ExportSpec, Network, Port, ToUnit

__all__ = ["EXAMPLE_BATCH", "Network", "Port", "Probabilities", "ToUnit", "export_spec", "inference_roles", "networks"]


def export_spec(run: Run) -> ExportSpec:
    """What ``run``'s objective exports, or an error naming the model."""
    if run.objective.export is None:
        raise DisgenError(f"{run.spec.name} runs (objective {run.spec.objective}) cannot be exported yet")
    return run.objective.export


def inference_roles(run: Run, nets: Nets | None = None) -> list[str]:
    """The run's networks that inference needs (the safetensors file holds these)."""
    return export_spec(run).roles(run.nets if nets is None else nets)


def networks(run: Run, nets: Nets | None = None) -> list[Network]:
    """The networks an export of ``run`` writes, built on ``nets`` (default: the run's own)."""
    out = export_spec(run).networks(run, run.nets if nets is None else nets)
    for net in out:
        net.module.eval()
    return out
