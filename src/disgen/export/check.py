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

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from disgen.api import Run
from disgen.data import load_dataset
from disgen.errors import DisgenError
from disgen.export.networks import Network, one_hot, sampler_role
from disgen.models import inference
from disgen.objectives.gan import latent

TOLERANCE = 1e-4  # largest absolute difference allowed between a file's outputs and disgen's
CHECK_IMAGES = 256
SMALL_BATCH = 1
CHECK_SEED = 0

# runner(network name, {input name: tensor}) -> {output name: tensor}
Runner = Callable[[str, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass
class Case:
    """``compute(runner, rows)`` runs exported networks on the rows ``rows`` of the case's inputs;
    its outputs must equal ``expected`` (disgen's own, all rows) there."""

    what: str
    compute: Callable[[Runner, slice], dict[str, torch.Tensor]]
    expected: dict[str, torch.Tensor]


def digits(run: Run, n: int = CHECK_IMAGES) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (n, C, H, W) of the run's shape and their labels: mnist-mini's test digits."""
    test = load_dataset("mnist-mini").test
    x, y = test.images[:n], test.labels[:n]
    c, h, w = run.image_shape
    if x.shape[1:] != (c, h, w):
        x = F.interpolate(x.float(), size=(h, w), mode="bilinear", align_corners=False)
        x = x.expand(-1, c, -1, -1).round().clamp(0, 255).to(torch.uint8)
    return x, y % max(1, len(run.classes))


def cases(run: Run) -> list[Case]:
    """What the files of ``run``'s export must reproduce."""
    if run.spec.objective in ("classify", "transfer"):
        x, _ = digits(run)
        xf = run.as_batch(x)
        what = f"predict on {len(x)} mnist-mini test digits"
        return [Case(what, lambda r, s: r("classifier", {"images": xf[s]}), {"probabilities": run.predict(x)})]
    if run.spec.objective == "gan":
        z = latent(run.nets[sampler_role(run.nets)], CHECK_IMAGES, torch.Generator().manual_seed(CHECK_SEED), "cpu")
        name = "points" if len(run.image_shape) == 1 else "images"
        expected = {name: run.sample(len(z), CHECK_SEED, z=z)}
        what = f"sample --n {len(z)} --seed {CHECK_SEED}"
        return [Case(what, lambda r, s: r("generator", {"z": z[s]}), expected)]
    if run.spec.objective == "reconstruct":
        return autoencoder_cases(run)
    if run.spec.objective == "aae":
        return aae_cases(run)
    raise DisgenError(f"no check for {run.spec.name} runs (objective {run.spec.objective})")


def autoencoder_cases(run: Run) -> list[Case]:
    x, _ = digits(run)
    xf = run.as_batch(x)
    with inference(run.nets):
        code = run.nets["model"].encode(xf).float()
    encode = lambda r, s: r("encoder", {"images": xf[s]})
    return [
        Case(f"encoder's z of {len(x)} mnist-mini test digits", encode, {"z": code}),
        Case(
            f"reconstruct {len(x)} mnist-mini test digits (encoder, then decoder)",
            lambda r, s: r("decoder", encode(r, s)),
            {"images": run.reconstruct(x)},
        ),
    ]


def aae_cases(run: Run) -> list[Case]:
    from disgen.models.aae import shape_noise
    from disgen.objectives.aae import encode, reconstruct_with

    enc, dec = run.nets["encoder"], run.nets["decoder"]
    cfg, k = enc.cfg, dec.y_dim
    x, y = digits(run)
    xf = run.as_batch(x)
    encoded = lambda r, s: r("encoder", {"images": xf[s]})
    expected = {"z": encode(run.nets, xf)[1]}
    if cfg.mode == "semi-supervised":
        expected["class_probabilities"] = run.predict(x)
    n = f"{len(x)} mnist-mini test digits"
    also = ", and its class_probabilities as predict" if cfg.mode == "semi-supervised" else ""
    out = [Case(f"encoder's z of {n}{also}", encoded, expected)]
    if cfg.mode == "supervised":  # the decoder takes each image's true label
        lo, hi = run.spec.value_range
        recon = (reconstruct_with(run.nets, xf, y) - lo) / (hi - lo)
        decode = lambda r, s: r("decoder", {"z": encoded(r, s)["z"], "y": one_hot(y[s], k)})
        out.append(Case(f"reconstruct {n} with their labels (encoder, then decoder)", decode, {"images": recon}))
    else:
        rename = {"z": "z", "class_probabilities": "y"}
        decode = lambda r, s: r("decoder", {rename[a]: t for a, t in encoded(r, s).items()})
        out.append(Case(f"reconstruct {n} (encoder, then decoder)", decode, {"images": run.reconstruct(x)}))
    # disgen sample: N(0, 1) noise shaped into the prior; classes cycle 0, 1, ..., 9 (mod k)
    eps = latent(dec, CHECK_IMAGES, torch.Generator().manual_seed(CHECK_SEED), "cpu")
    cycle = torch.arange(len(eps)) % 10
    inputs = {"z": shape_noise(cfg, eps[:, : cfg.z_dim], cycle)}
    if k:
        inputs["y"] = one_hot(cycle % k, k)
    what = f"sample --n {len(eps)} --seed {CHECK_SEED} (the decoder on prior draws)"
    out.append(
        Case(
            what,
            lambda r, s: r("decoder", {a: t[s] for a, t in inputs.items()}),
            {"images": run.sample(len(eps), CHECK_SEED, z=eps)},
        )
    )
    return out


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
