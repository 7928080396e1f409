"""What ``disgen serve``'s page computes, with no HTTP in it: a run's features (which panels the
page shows), the checks on every input a request can carry (uploaded images, seeds, latent
vectors), and :class:`Explorer`, whose methods answer the API's endpoints from the run's networks.
Inputs a user gets wrong raise :class:`RequestError` with a 4xx status and a message for the page.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from disgen.errors import DisgenError

MAX_UPLOAD_BYTES = 4 * 2**20  # an image upload; a drawn 280x280 canvas PNG is ~10 KB, a photo a few MB
MAX_UPLOAD_PIXELS = 4096 * 4096  # decoded size limit, checked from the header before decoding
SLIDERS = 10  # latent dimensions the page shows as sliders (an aae's whole z; a GAN's first 10)
MAX_STEPS = 16  # interpolation images per request
POINTS = 1000  # samples of a point generator (gan2d) per request
MAX_SEED = 2**31 - 1
MAX_LATENT = 1000.0  # |z| per dimension; the sliders span +-3 standard deviations


class RequestError(Exception):
    """A request the server refuses: ``status`` (4xx) and a message for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Upload(io.BytesIO):
    """An upload's bytes, named as the user knows them in Pillow's and disgen's messages."""

    def __repr__(self) -> str:
        return "the upload"


def features_of(run) -> dict:
    """What the page offers for ``run``: what its objective says a run with its model config offers."""
    model_cfg = run.spec.model_config(run.config.model_args)
    offers = run.objective.features(model_cfg)
    images = len(run.image_shape) == 3
    out = {
        "predict": offers["predict"],
        "reconstruct": offers["reconstruct"],
        "sample": None,
        "labels": False,
        "latent_dim": None,
        "noise_std": None,
        "sliders": 0,
        "mode": getattr(model_cfg, "mode", None),  # a variant the summary names (an aae's), where the model has one
    }
    out["draw"] = images and run.image_shape[0] == 1 and (out["predict"] or out["reconstruct"])
    out["upload"] = images and (out["predict"] or out["reconstruct"])
    if offers["sample"]:
        g = run.latent_net()
        out.update(
            sample="images" if images else "points",
            latent_dim=g.latent_dim,
            noise_std=g.noise_std,
            labels=offers["labels"],
            sliders=min(SLIDERS, g.latent_dim) if images else 0,
        )
    return out


def data_url(image: torch.Tensor) -> str:
    """One image (C, H, W) in [0, 1] as a PNG data URL."""
    from disgen.viz import to_uint8

    pixels = to_uint8(image[None])[0]
    im = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def decode_upload(data: bytes, image_shape: tuple[int, int, int], digits: bool) -> torch.Tensor:
    """An uploaded image as the model's uint8 input (C, H, W), fitted like ``disgen predict``
    (digits: MNIST's crop, 20x20 box and centring by mass). The pixel count is checked from the
    header, before anything is decoded."""
    from disgen.data.images import load_image

    if not data:
        raise RequestError(400, "the upload is empty: send an image file (PNG, JPEG, ...)")
    try:
        with Image.open(Upload(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        raise RequestError(413, f"the image has too many pixels; the limit is {MAX_UPLOAD_PIXELS:,}")
    except Exception:  # Pillow's parsers raise many types on hostile bytes (OSError, SyntaxError, ...)
        raise RequestError(400, "the upload is not an image: send a PNG, JPEG, GIF, BMP, WebP or TIFF file") from None
    if width * height > MAX_UPLOAD_PIXELS:
        raise RequestError(
            413,
            f"the image is {width}x{height} pixels; the limit is {MAX_UPLOAD_PIXELS:,} pixels: send a smaller image",
        )
    try:
        return load_image(Upload(data), image_shape, digits)
    except DisgenError as err:
        raise RequestError(400, f"{err}: send a complete image file") from None


def int_field(body: dict, name: str, lo: int, hi: int, default: int | None = None) -> int:
    value = body.get(name, default)
    if value is None:
        raise RequestError(422, f'"{name}" is missing: give an integer from {lo} to {hi}')
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RequestError(422, f'"{name}" is {json.dumps(value)[:40]}: give an integer from {lo} to {hi}')
    return value


def latent_field(body: dict, dim: int) -> torch.Tensor:
    """``body["z"]`` as a (1, dim) latent, each number within +-MAX_LATENT."""
    z = body["z"]
    numbers = (
        isinstance(z, list)
        and len(z) == dim
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in z)
    )
    try:
        t = torch.tensor(z, dtype=torch.float64) if numbers else None
    except (OverflowError, RuntimeError):  # an integer too large for a float
        t = None
    if t is None or not (t.abs() <= MAX_LATENT).all():  # NaN fails this too
        raise RequestError(
            422,
            f'"z" must be a list of {dim} numbers from -{MAX_LATENT:g} to {MAX_LATENT:g} (this model\'s latent size)',
        )
    return t.float()[None]


def scores(metrics: dict, epoch: int | None) -> str:
    """The page's line of figures: "validation accuracy 0.9775 (epoch 5); test accuracy 0.9810"."""

    def part(prefix: str, label: str) -> str:
        shown = [
            f"{k[len(prefix) :]} {v if isinstance(v, int) else f'{v:.4f}'}"
            for k, v in metrics.items()
            if k.startswith(prefix) and isinstance(v, (int, float)) and math.isfinite(v)
        ]
        return f"{label} {', '.join(shown)}" if shown else ""

    val = part("val_", "validation")
    return "; ".join(p for p in (val + (f" (epoch {epoch})" if val and epoch else ""), part("test_", "test")) if p)


@dataclass
class Explorer:
    """A loaded run and what its page offers. The methods run on the one model thread."""

    run: Any
    features: dict
    checkpoint: str = "last"
    max_upload_bytes: int = MAX_UPLOAD_BYTES

    def info(self) -> dict:
        run = self.run
        # The validation figures of the checkpoint's own epoch, and the test figures where the
        # final test was of this checkpoint, each labelled as what it is.
        chosen = next((r for r in run.history if r.get("epoch") == run.epoch), {})
        tested = run.final if run.final and run.final.get("checkpoint") == run.checkpoint else {}
        final = {**{k: v for k, v in chosen.items() if k.startswith("val_")}, **(tested or {})}
        return {
            "run": run.run_dir.name,
            "model": run.spec.name,
            "objective": run.spec.objective,
            "description": run.spec.description,
            "dataset": run.config.dataset,
            "checkpoint": self.checkpoint,
            "epochs": len(run.history),
            "metrics": {
                k: v
                for k, v in final.items()
                if k.startswith(("val_", "test_")) and isinstance(v, (int, float)) and math.isfinite(v)
            },
            "scores": scores(final, run.epoch),
            "classes": run.classes,
            "image_shape": list(run.image_shape),
            "max_upload_bytes": self.max_upload_bytes,
            "features": self.features,
        }

    def need(self, feature: str, what: str) -> None:
        if not self.features[feature]:
            raise RequestError(404, f"this {self.run.spec.name} run ({self.run.spec.objective}) does not {what}")

    def model_input(self, data: bytes) -> torch.Tensor:
        digits = all(c.isdigit() for c in self.run.classes)
        return decode_upload(data, self.run.image_shape, digits)[None]  # (1, C, H, W) uint8

    def predict(self, data: bytes) -> dict:
        self.need("predict", "classify images")
        x = self.model_input(data)
        probs = self.run.predict(x)[0].tolist()
        best = max(range(len(probs)), key=probs.__getitem__)
        return {
            "label": self.run.classes[best],
            "classes": self.run.classes,
            "probabilities": [round(p, 6) for p in probs],
            "input": data_url(x[0].float() / 255),
        }

    def reconstruct(self, data: bytes) -> dict:
        self.need("reconstruct", "reconstruct images")
        x = self.model_input(data)
        return {"input": data_url(x[0].float() / 255), "reconstruction": data_url(self.run.reconstruct(x)[0])}

    def label(self, body: dict) -> int | None:
        if not self.features["labels"]:
            if body.get("label") is not None:
                raise RequestError(422, f'this {self.run.spec.name} run draws no chosen class: leave out "label"')
            return None
        return int_field(body, "label", 0, len(self.run.classes) - 1, 0)

    def latent(self, seed: int) -> torch.Tensor:
        from disgen.objectives.gan import latent

        return latent(self.run.latent_net(), 1, torch.Generator().manual_seed(seed), "cpu")

    def sample(self, body: dict) -> dict:
        self.need("sample", "generate samples")
        if self.features["sample"] == "points":
            seed = int_field(body, "seed", 0, MAX_SEED, 0)
            points = self.run.sample(POINTS, seed)
            return {"seed": seed, "points": [[round(a, 4), round(b, 4)] for a, b in points.tolist()]}
        label = self.label(body)
        if body.get("z") is not None:
            seed, z = None, latent_field(body, self.features["latent_dim"])
        else:
            seed = int_field(body, "seed", 0, MAX_SEED, 0)
            z = self.latent(seed)
        image = self.run.sample(z=z, label=label)[0]
        return {"seed": seed, "label": label, "z": [round(v, 5) for v in z[0].tolist()], "image": data_url(image)}

    def interpolate(self, body: dict) -> dict:
        from disgen.objectives.gan import slerp

        self.need("sample", "generate samples")
        if self.features["sample"] != "images":
            raise RequestError(
                404, f"this {self.run.spec.name} run generates points: interpolation is for image generators"
            )
        label = self.label(body)
        a, b = (self.latent(int_field(body, k, 0, MAX_SEED)) for k in ("seed_a", "seed_b"))
        steps = int_field(body, "steps", 2, MAX_STEPS, 8)
        z = slerp(a, b, torch.linspace(0, 1, steps))[0]  # (steps, latent_dim)
        return {"label": label, "images": [data_url(x) for x in self.run.sample(z=z, label=label)]}
