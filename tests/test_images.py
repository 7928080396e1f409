"""Reading users' images (MNIST-style fitting, inversion, transparency, oversized files) and the
image grids of disgen.viz."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from disgen.data.images import fit_digit, load_image, load_inputs
from disgen.errors import DisgenError
from disgen.viz import grid_image, save_pairs, to_uint8

SHAPE = (1, 28, 28)


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    a = a.astype(np.float64)
    total = a.sum()
    return (a.sum(1) * np.arange(a.shape[0])).sum() / total, (a.sum(0) * np.arange(a.shape[1])).sum() / total


def ink_box(a: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(a)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def l_shape(h: int, w: int, top: int, left: int, size: int, thick: int) -> np.ndarray:
    """An L (heavy bottom bar) on a black page: its centre of mass is not its box's centre."""
    a = np.zeros((h, w), dtype=np.uint8)
    a[top : top + size, left : left + thick] = 255
    a[top + size - 2 * thick : top + size, left : left + size] = 255
    return a


@pytest.mark.parametrize("page,size", [((200, 300), 120), ((40, 30), 10), ((28, 28), 8)])
def test_fit_digit_scales_ink_to_20_and_centres_mass(page, size):
    a = l_shape(*page, top=page[0] - size - 1, left=1, size=size, thick=max(2, size // 5))
    out = fit_digit(a)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert max(ink_box(out)) in (20, 21)  # 20 px, plus at most a pixel of resampling ringing
    cy, cx = centre_of_mass(out)
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1, (cy, cx)
    # Centred by mass, not by box: the box's centre is off the frame's centre.
    rows, cols = np.nonzero(out > 0.2 * out.max())
    box_centre = ((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2)
    assert max(abs(box_centre[0] - 13.5), abs(box_centre[1] - 13.5)) >= 1.5


def test_fit_digit_keeps_aspect_ratio():
    a = np.zeros((100, 100), dtype=np.uint8)
    a[10:90, 45:55] = 200  # a tall bar, 80 x 10
    out = fit_digit(a)
    h, w = ink_box(out > 0.5 * out.max())
    assert h == 20 and w in (2, 3, 4)


def test_fit_digit_blank_page_stays_blank():
    assert not fit_digit(np.zeros((50, 40), dtype=np.uint8)).any()


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(array, mode).save(path)
    return path


def test_dark_on_light_is_inverted(tmp_path):
    ink = l_shape(28, 28, top=5, left=6, size=16, thick=3)
    light_on_dark = load_image(save(tmp_path / "a.png", ink), SHAPE)
    dark_on_light = load_image(save(tmp_path / "b.png", 255 - ink), SHAPE)
    assert light_on_dark.shape == (1, 28, 28) and light_on_dark.dtype == torch.uint8
    assert torch.equal(light_on_dark[0], torch.from_numpy(ink))
    assert torch.equal(dark_on_light, light_on_dark)


def test_large_colour_drawing_is_fitted(tmp_path):
    page = 255 - l_shape(300, 200, top=30, left=20, size=150, thick=20)  # black ink on white
    rgb = np.stack([page, page, page], -1)
    x = load_image(save(tmp_path / "big.png", rgb), SHAPE)
    assert torch.equal(x[0], torch.from_numpy(fit_digit(255 - page)))
    assert x[0, 0, 0] == 0 and x.max() == 255


def test_rgba_is_composited_on_white(tmp_path):
    ink = l_shape(28, 28, top=5, left=6, size=16, thick=3)
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)  # black everywhere; only the alpha draws
    rgba[..., 3] = ink
    x = load_image(save(tmp_path / "a.png", rgba, "RGBA"), SHAPE)
    # Transparent black reads as white paper, opaque black as ink: inverted, the ink is bright.
    assert torch.equal(x[0], torch.from_numpy(ink))
    la = np.stack([np.zeros_like(ink), ink], -1)
    assert torch.equal(load_image(save(tmp_path / "b.png", la, "LA"), SHAPE), x)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, with almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("width,height", [(100_000, 100_000), (20_000, 6_000)])
def test_oversized_image_is_refused_without_decoding(tmp_path, width, height):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(width, height))
    tracemalloc.start()
    try:
        with pytest.raises(DisgenError) as err:
            load_image(path, SHAPE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(err.value) and "cannot read image" in str(err.value)
    assert peak < 50 << 20  # nothing near the declared gigabytes was allocated


def test_load_inputs_names_and_stacks(tmp_path):
    ink = l_shape(28, 28, top=5, left=6, size=16, thick=3)
    folder = tmp_path / "imgs"
    folder.mkdir()
    save(folder / "b.png", ink)
    save(folder / "a.png", 255 - ink)
    (folder / "readme.txt").write_text("not an image, skipped in folders")
    names, x = load_inputs([folder], SHAPE)
    assert names == [str(folder / "a.png"), str(folder / "b.png")]
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.uint8 and torch.equal(x[0], x[1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DisgenError, match="holds no images") as err:
        load_inputs([tmp_path / "empty"], SHAPE)
    assert str(tmp_path / "empty") in str(err.value)


# ---- grids -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,nrow,pad,scale,channels",
    [
        (7, 3, 2, 1, 1),
        (7, None, 2, 1, 1),
        (10, 10, 0, 1, 3),
        (5, 2, 4, 3, 1),
        (1, None, 2, 2, 3),
    ],
)
def test_grid_image_size_and_tiles(n, nrow, pad, scale, channels):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(n, channels, 28, 28, generator=gen)
    im = grid_image(images, nrow, pad=pad, scale=scale)
    cols = nrow or int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    cell = 28 * scale + pad
    assert im.size == (cols * cell + pad, rows * cell + pad)
    arr = np.asarray(im)
    expected = to_uint8(images)
    for i in range(n):
        y0, x0 = pad + (i // cols) * cell, pad + (i % cols) * cell
        tile = arr[y0 : y0 + 28 * scale : scale, x0 : x0 + 28 * scale : scale]
        want = np.repeat(expected[i], 3, -1) if channels == 1 else expected[i]
        assert np.array_equal(tile, want), i


def test_grid_image_captions_add_a_strip_per_row():
    images = torch.zeros(6, 1, 28, 28)
    plain = grid_image(images, 3)
    captioned = grid_image(images, 3, captions=[str(i) for i in range(6)])
    assert captioned.size == (plain.size[0], plain.size[1] + 2 * 12)


def test_to_uint8_value_range():
    x = torch.tensor([-1.0, 0.0, 1.0, 3.0]).view(1, 1, 2, 2)
    assert to_uint8(x, (-1.0, 1.0)).ravel().tolist() == [0, 128, 255, 255]


def test_save_pairs_full_rows(tmp_path):
    originals, recon = torch.zeros(20, 1, 28, 28), torch.ones(20, 1, 28, 28)
    path = save_pairs(originals, recon, tmp_path / "p.png", nrow=10)
    arr = np.asarray(Image.open(path).convert("L"))
    assert arr.shape == (4 * 30 + 2, 10 * 30 + 2)
    row_values = [arr[2 + r * 30 + 14, 2 + 14] for r in range(4)]
    assert row_values == [0, 255, 0, 255]  # originals, reconstructions, originals, reconstructions


def test_save_pairs_partial_last_row(tmp_path):
    originals, recon = torch.zeros(12, 1, 28, 28), torch.ones(12, 1, 28, 28)
    path = save_pairs(originals, recon, tmp_path / "p.png", nrow=10)
    arr = np.asarray(Image.open(path).convert("L"))
    assert arr.shape[0] == 4 * 30 + 2
    assert [arr[2 + r * 30 + 14, 2 + 14] for r in range(4)] == [0, 255, 0, 255]
