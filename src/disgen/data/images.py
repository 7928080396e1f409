"""Reading a user's images for ``predict`` and ``reconstruct``: files, folders or IDX files.

Photos and drawings of any size and colour become the model's input size. For grey digit models,
dark-on-light drawings are inverted to MNIST's light-on-dark and fitted the way MNIST itself was
made (LeCun et al. 1998): the ink's bounding box scaled into 20x20, then centred by its centre of
mass in the 28x28 frame.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from disgen.errors import DisgenError
from disgen.files import special_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Refuse decompression bombs: a few bytes of PNG can declare 100000x100000 pixels (30 GB).
# Pillow warns past this and raises past twice this; open_image raises past it.
Image.MAX_IMAGE_PIXELS = 50_000_000


def expand(inputs: list[str | Path], skipped: list[str] | None = None) -> list[Path]:
    """Files as given, folders expanded to their image files (sorted), missing paths refused.

    Only regular files are read: a FIFO or a device given by name is one error (reading it would
    wait for ever, or never end); one inside a folder is left out and added to ``skipped``."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            named = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            found = [f for f in named if f.is_file()]
            if skipped is not None:
                skipped += [f"{f} (not a regular file)" for f in named if not f.is_file() and not f.is_dir()]
            if not found:
                raise DisgenError(f"folder {p} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            out += found
        elif p.is_file():
            out.append(p)
        elif special_file(p):
            raise DisgenError(
                f"input {p} is not a file but {special_file(p)}: pass image files, folders of images or IDX files"
            )
        else:
            raise DisgenError(f"input {p} does not exist")
    return out


def load_inputs(
    inputs: list[str | Path], image_shape: tuple[int, ...], digits: bool = True
) -> tuple[list[str], torch.Tensor]:
    """Names and uint8 images (N, C, H, W) from image files, folders and IDX files.

    IDX rows are named by their zero-based index; image files by their path. Whether a file is
    IDX or an image is decided by its content (the IDX magic number), not its name. An image that
    cannot be read is skipped and named in one warning, unless none can be read (then the error
    is the first one's).
    """
    from disgen.data.idx import is_idx_file

    if len(image_shape) != 3:
        raise DisgenError(f"this model takes {len(image_shape)}-D points, not images: it reads no image files")
    names: list[str] = []
    arrays: list[torch.Tensor] = []
    skipped: list[str] = []
    errors: list[DisgenError] = []
    for path in expand(inputs, skipped):
        if is_idx_file(path):
            x = idx_images(path, image_shape)
            names += [str(i) for i in range(len(x))]
            arrays.append(x)
            continue
        try:
            arrays.append(load_image(path, image_shape, digits)[None])
        except DisgenError as err:
            errors.append(err)
            skipped.append(str(path))
            continue
        names.append(str(path))
    if not arrays:
        if errors:
            raise (
                errors[0]
                if len(errors) == 1
                else DisgenError(f"none of the {len(errors)} images could be read: {errors[0]}")
            )
        raise DisgenError("no inputs: pass image files, folders of images or IDX files")
    if skipped:
        shown = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
        print(f"warning: skipped {len(skipped)} input(s) that could not be read: {shown}", file=sys.stderr)
    return names, arrays[0] if len(arrays) == 1 else torch.cat(arrays)  # one IDX file: no copy of it


def idx_images(path: Path, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """An IDX file of images as uint8 (N, C, H, W) for the model, or one error saying what it holds."""
    from disgen.data.idx import as_pixels, read_idx

    x = read_idx(path, channels=image_shape[0])
    if x.dim() == 1:
        raise DisgenError(
            f"IDX file {path} holds {len(x):,} single values (labels, not images): pass the images file "
            "(e.g. t10k-images-idx3-ubyte, whose header declares N x H x W)"
        )
    if x.dim() != 3 or tuple(x.shape[1:]) != tuple(image_shape[1:]):
        raise DisgenError(
            f"IDX file {path} holds {'x'.join(map(str, x.shape))} values: images of "
            f"{'x'.join(map(str, x.shape[1:]))}, the model takes {image_shape[1]}x{image_shape[2]}"
        )
    if len(x) == 0:
        raise DisgenError(f"IDX file {path} holds no images (its header declares 0): pass a file with at least one")
    return as_pixels(x, path)[:, None].expand(-1, image_shape[0], -1, -1)


def open_image(path: Path) -> Image.Image:
    """Decode with Pillow, RGBA composited on white; unreadable files give a clear error.

    Images over ``Image.MAX_IMAGE_PIXELS`` are refused before their pixels are allocated.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width < 1 or im.height < 1:
                    raise ValueError(f"it declares {im.width}x{im.height} pixels")
                im.load()
                if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                    im = im.convert("RGBA")
                    white = Image.new("RGBA", im.size, (255, 255, 255, 255))
                    return Image.alpha_composite(white, im).convert("RGB")
                return im.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        # Pillow's message names its own limit (twice ours past it); give the one that applies.
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(found.group(1)):,} pixels" if found else "more pixels"
        raise DisgenError(
            f"cannot read image {path}: it has {size}, over the limit of {Image.MAX_IMAGE_PIXELS:,} "
            "pixels (a decompression bomb, or far larger than a model needs): shrink it first"
        ) from None
    except UnidentifiedImageError as err:
        raise DisgenError(f"cannot read image {path}: {err}") from None
    except Exception as err:  # Pillow's decoders raise many types on broken data (OSError, SyntaxError...)
        raise DisgenError(
            f"cannot read image {path}: {type(err).__name__}: {err}; the file is damaged or not an image"
        ) from None


def load_image(path: Path, image_shape: tuple[int, int, int], digits: bool = True) -> torch.Tensor:
    """One image file as uint8 (C, H, W) sized for the model."""
    c, h, w = image_shape
    im = open_image(path)
    if c == 1:
        grey = np.asarray(im.convert("L"), dtype=np.uint8)
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        if border.mean() > 127:  # dark ink on a light page: invert to MNIST's light-on-dark
            grey = 255 - grey
        if grey.shape != (h, w):
            grey = (
                fit_digit(grey, (h, w))
                if digits
                else np.asarray(ImageOps.pad(Image.fromarray(grey), (w, h), color=0), dtype=np.uint8)
            )
        return torch.from_numpy(grey.copy())[None]
    im = ImageOps.fit(im, (w, h))
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


def fit_digit(grey: np.ndarray, size: tuple[int, int] = (28, 28), box: int = 20) -> np.ndarray:
    """MNIST's normalisation: crop to the ink, scale its longer side to ``box`` pixels keeping the
    aspect ratio, and place it so its centre of mass is the frame's centre."""
    h, w = size
    ink = grey > 0.2 * grey.max() if grey.max() > 0 else np.zeros_like(grey, dtype=bool)
    if not ink.any():
        return np.asarray(Image.fromarray(grey).resize((w, h), Image.BILINEAR), dtype=np.uint8)
    rows, cols = np.where(ink)
    crop = grey[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = box / max(crop.shape)
    new = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    digit = np.asarray(Image.fromarray(crop).resize(new, Image.LANCZOS), dtype=np.float64)
    total = digit.sum()
    cy = (digit.sum(1) * np.arange(digit.shape[0])).sum() / total
    cx = (digit.sum(0) * np.arange(digit.shape[1])).sum() / total
    top = int(round(h / 2 - cy - 0.5))
    left = int(round(w / 2 - cx - 0.5))
    top = min(max(top, 0), h - digit.shape[0])
    left = min(max(left, 0), w - digit.shape[1])
    out = np.zeros((h, w), dtype=np.float64)
    out[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return out.clip(0, 255).round().astype(np.uint8)
