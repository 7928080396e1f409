"""Datasets larger than memory: the memory-mapped decoded cache (disgen.data.cache), lazy split
rows (Rows), batches streamed from them (StreamedImages, --data-on-device) and each process's own
rows under torchrun."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

import disgen
from disgen.data import cache, load_dataset, splits, to_float
from disgen.data.dataset import ImageSplit, Rows, TensorDataset
from disgen.data.image_folder import load_image_folder
from disgen.data.loader import StreamedImages, TensorLoader, keep_on_device
from disgen.training import distributed


@pytest.fixture(scope="module")
def folder(tmp_path_factory, mnist_mini):
    """150 real digits as PNG files in three class folders (and one broken file)."""
    root = tmp_path_factory.mktemp("digits")
    for i in range(150):
        label = int(mnist_mini.train.labels[i]) % 3
        (root / f"c{label}").mkdir(exist_ok=True)
        Image.fromarray(mnist_mini.train.images[i, 0].numpy()).save(root / f"c{label}" / f"{i:03d}.png")
    (root / "c0" / "broken.png").write_bytes(b"not a png")
    return root


def test_folder_decodes_once_into_a_mapped_file_with_the_pixels_of_the_in_memory_path(home, folder):
    mapped = load_image_folder(folder, (1, 28, 28))
    assert isinstance(mapped.train.images, Rows)
    entries = list((home / "decoded").iterdir())
    assert len(entries) == 1 and (entries[0] / "images.u8").stat().st_size == 151 * 28 * 28
    plain = load_image_folder(folder, (1, 28, 28), cache=False)
    for a, b in ((mapped.train, plain.train), (mapped.test, plain.test)):
        assert torch.equal(a.images.contiguous(), b.images) and torch.equal(a.labels, b.labels)
    again = load_image_folder(folder, (1, 28, 28))
    assert again.train.images.base is not mapped.train.images.base  # read back, not kept
    assert torch.equal(again.train.images.contiguous(), plain.train.images)
    # the same split fingerprints as in memory: a run's split.json does not depend on the path
    assert splits.fingerprint(again.test) == splits.fingerprint(plain.test)


def test_a_damaged_entry_is_decoded_again_and_a_killed_decode_leaves_nothing(home, folder, capsys):
    first = load_image_folder(folder, (1, 28, 28))
    want = first.train.images.contiguous()
    entry = next((home / "decoded").iterdir())
    del first
    with open(entry / "images.u8", "r+b") as f:  # a truncated file: its size disagrees with its shape
        f.truncate(1000)
    again = load_image_folder(folder, (1, 28, 28))
    assert "ignoring the damaged image cache" in capsys.readouterr().err
    assert torch.equal(again.train.images.contiguous(), want)
    (entry / "meta.json").write_text('{"format": 2, "shape": [1, 1, 1, 1], "ok": [5]}')  # a crafted meta
    assert cache.open_entry(entry.name) is None

    def killed(out):
        out[0] = 7
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.build("killed", 4, (1, 2, 2), killed, "test")
    assert sorted(p.name for p in (home / "decoded").iterdir()) == [entry.name]


def test_rows_select_lazily_and_gather_like_a_tensor():
    base = torch.arange(10 * 2 * 2, dtype=torch.uint8).reshape(10, 1, 2, 2)
    rows = Rows(base).select(torch.tensor([7, 2, 5]))
    assert rows.shape == (3, 1, 2, 2) and len(rows) == 3 and rows.dim() == 4
    assert torch.equal(rows[1:], base[[2, 5]]) and torch.equal(rows[0], base[7])
    assert torch.equal(rows.select(torch.tensor([False, True, True]))[0:2], base[[2, 5]])
    assert torch.equal(torch.cat([rows, rows]), base[[7, 2, 5, 7, 2, 5]])  # torch functions gather
    assert rows.float().mean().item() == base[[7, 2, 5]].float().mean().item()  # tensor methods too


def test_streamed_images_give_the_resident_floats_and_each_process_reads_only_its_rows():
    base = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8)
    rows = Rows(base).select(torch.arange(49, 4, -1))
    streamed = StreamedImages(rows, torch.device("cpu"), (-1.0, 1.0))
    resident = to_float(rows.contiguous(), (-1.0, 1.0))
    idx = torch.tensor([3, 0, 44, 9])
    assert torch.equal(streamed[2:7], resident[2:7]) and torch.equal(streamed.index_select(0, idx), resident[idx])
    assert len(streamed) == 45 and streamed.shape == resident.shape
    labels = torch.arange(45)
    whole = list(TensorLoader(resident, labels, 8, generator=torch.Generator().manual_seed(1)))
    for size in (2, 3):
        for rank in range(size):
            loader = TensorLoader(streamed, labels, 8, generator=torch.Generator().manual_seed(1), part=(rank, size))
            for (x, y), (wx, wy) in zip(loader, whole):
                (px, py), share = shard_as(rank, size, (wx, wy))
                assert torch.equal(x, px) and torch.equal(y, py) and loader.share == share


def shard_as(rank, size, batch):
    """distributed.shard as process ``rank`` of ``size`` would do it."""
    world = distributed.world
    distributed.world = lambda: type("W", (), {"rank": rank, "size": size})()
    try:
        return distributed.shard(batch)
    finally:
        distributed.world = world


def test_auto_keeps_small_data_on_the_device_and_streams_large():
    small = load_dataset("mnist-mini")
    assert keep_on_device("auto", small, torch.device("cpu"))
    base = torch.zeros((4, 3, 64, 64), dtype=torch.uint8)
    huge = Rows(base, torch.zeros(1_000_000, dtype=torch.int64))  # 1e6 rows of one image: 49 GB as floats
    big = TensorDataset("big", ImageSplit(huge, torch.zeros(1_000_000, dtype=torch.int64)), None, ["a"])
    assert not keep_on_device("auto", big, torch.device("cpu"))
    assert keep_on_device("yes", big, torch.device("cpu")) and not keep_on_device("no", small, torch.device("cpu"))


def test_a_streamed_run_trains_exactly_as_a_resident_one(home, folder, tmp_path):
    out = {}
    for mode in ("yes", "no"):
        run = disgen.train(
            "cnn-classifier",
            dataset=str(folder),
            epochs=2,
            batch_size=32,
            data_on_device=mode,
            run_dir=str(tmp_path / mode),
            progress=False,
        )
        out[mode] = [{k: v for k, v in r.items() if "seconds" not in k} for r in run.history]
        out[mode].append(json.loads((tmp_path / mode / "split.json").read_text())["val_sha256"])
        out[mode].append(run.final and {k: v for k, v in run.final.items() if "seconds" not in k})
    assert out["yes"] == out["no"]
    assert out["no"][1]["val_accuracy"] > 0.5  # three classes of real digits: it learnt


def test_streaming_a_mapped_file_holds_the_batch_not_the_dataset(tmp_path):
    """An epoch over 307 MB of mapped images grows the process's anonymous memory by tens of MB; the
    resident float copy of the same images takes 1.2 GB (measured in a fresh process)."""
    script = textwrap.dedent(
        """
        import os, sys, torch
        os.environ["DISGEN_HOME"] = sys.argv[1]
        from disgen.data import cache
        from disgen.data.dataset import Rows
        from disgen.data.loader import StreamedImages, TensorLoader

        def anon():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024

        def fill(out):
            for i in range(0, len(out), 1000):
                out[i : i + 1000] = (i // 1000) % 256
            return list(range(len(out))), {}

        entry = cache.build("big", 25_000, (3, 64, 64), fill, "test")
        before = anon()
        x = StreamedImages(Rows(entry.images, entry.ok), torch.device("cpu"), (0.0, 1.0))
        total = 0.0
        for xb, _ in TensorLoader(x, torch.zeros(25_000, dtype=torch.long), 256, generator=torch.Generator()):
            total += float(xb[:, 0, 0, 0].sum())
        print(anon() - before, total)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "home")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    grown, total = done.stdout.split()
    # tens of MB (the batches, torch's allocator and thread pools: 70 MB seen once), never the 307 MB
    # of the file nor its 1.2 GB as floats
    assert int(grown) < 160 * 2**20
    assert float(total) == pytest.approx(sum(((i // 1000) % 256) / 255 * 1000 for i in range(0, 25_000, 1000)))
    assert np.isfinite(float(total))


def test_knn_precision_recall_in_blocks_equals_the_whole_matrix(monkeypatch):
    """k-NN precision/recall read distances a block of rows at a time (a 20,000-image test split
    against 10,000 samples would hold 2.4 GB of distances at once); the values are the whole
    matrix's."""
    from disgen.evaluation import metrics

    torch.manual_seed(0)
    real, fake = torch.randn(700, 16), torch.randn(500, 16) + 0.4
    rx = torch.cdist(real, real).kthvalue(4, dim=1).values
    ry = torch.cdist(fake, fake).kthvalue(4, dim=1).values
    d = torch.cdist(fake, real)
    want = ((d <= rx[None]).any(1).float().mean().item(), (d.T <= ry[None]).any(1).float().mean().item())
    monkeypatch.setattr(metrics, "KNN_ROWS", 64)  # many blocks, the last one partial
    assert metrics.precision_recall(real, fake) == want and 0 < want[0] < 1 and 0 < want[1] < 1
