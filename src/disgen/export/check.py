"""The check every export ends with: the written files, run by their own runtime (onnxruntime,
torch.jit.load, or the networks rebuilt from the safetensors file), against disgen's own
``predict``, ``sample`` and ``reconstruct`` on real inputs.

The images are the first CHECK_IMAGES test digits of the bundled mnist-mini (resized and given
the model's channels where its images are not 28x28 grey), the latents fixed draws of seed 0 as
``disgen sample --seed 0`` makes them. Each case runs at two batch sizes, all of them at once and
SMALL_BATCH, so a batch axis fixed at export time is caught.

May import: api and every layer below it.
"""

from __future__ import annotations

from typing import Callable

import torch

from disgen.api import Run
from disgen.errors import DisgenError
from disgen.export.networks import Network, export_spec
from disgen.objectives.exports import Case, Runner

TOLERANCE = 1e-4  # largest absolute difference allowed between a file's outputs and disgen's
SMALL_BATCH = 1


def cases(run: Run) -> list[Case]:
    """What the files of ``run``'s export must reproduce: its objective's cases."""
    return export_spec(run).cases(run)


def module_runner(modules: dict[str, Callable], networks: list[Network]) -> Runner:
    """Runs torch modules standing for ``networks`` (by name), their outputs named as the ports."""
    by_name = {net.name: net for net in networks}

    def run(name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        net = by_name[name]
        with torch.no_grad():
            out = modules[name](*(inputs[p.name] for p in net.inputs))
        out = out if isinstance(out, tuple) else (out,)
        return {p.name: t for p, t in zip(net.outputs, out)}

    return run


def measure(checks: list[Case], runner: Runner) -> list[dict]:
    """Per case and output: the largest absolute difference from disgen's, over all rows at once
    and over the first SMALL_BATCH rows alone."""
    rows = []
    for case in checks:
        n = len(next(iter(case.expected.values())))
        whole, small = case.compute(runner, slice(None)), case.compute(runner, slice(0, SMALL_BATCH))
        for name, want in case.expected.items():
            diff = float("inf")
            if name in whole and whole[name].shape == want.shape and small[name].shape == want[:SMALL_BATCH].shape:
                diff = max(
                    (whole[name].float() - want).abs().max().item(),
                    (small[name].float() - want[:SMALL_BATCH]).abs().max().item(),
                )
            rows.append({"check": case.what, "output": name, "batch_sizes": [n, SMALL_BATCH], "max_abs_diff": diff})
    return rows


def verify(rows: list[dict], files: str) -> None:
    """A difference past TOLERANCE (or NaN) as an error naming the check."""
    bad = [r for r in rows if not r["max_abs_diff"] <= TOLERANCE]
    if bad:
        shown = "; ".join(f"{r['check']}, {r['output']}: {r['max_abs_diff']:.3g}" for r in bad)
        raise DisgenError(
            f"the exported {files} do not reproduce disgen's outputs within {TOLERANCE:g} ({shown}); they "
            "were removed. Please report this with the run's config.json"
        )
