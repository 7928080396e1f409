"""``disgen train ... --tensorboard``: TensorBoard event files in RUN_DIR/tensorboard, besides
metrics.jsonl, for ``tensorboard --logdir RUN_DIR/tensorboard``.

After each epoch: every logged number as a scalar (``train_loss`` as ``train/loss``, so TensorBoard
groups them), a histogram of every network's parameters, and the pictures the run drew for that
epoch (``samples/epoch_NNN.png``, ``images/decision_epoch_NNN.png``); the training batch once, and
the final pictures (``images/*_after.png`` and the like) when training ends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from disgen.errors import DisgenError

SKIP = {"epoch", "curves.png"}  # the curves are the scalars themselves


def scalar_tag(key: str) -> str:
    for split in ("train", "val", "test"):
        if key.startswith(split + "_"):
            return f"{split}/{key[len(split) + 1 :]}"
    return key


class TensorBoardLog:
    """Checks at construction that tensorboard is installed; opens the writer at the first epoch
    it logs, so a run refused for another reason leaves no event file behind."""

    def __init__(self, run_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise DisgenError(
                "--tensorboard needs the tensorboard package: `pip install tensorboard` "
                "(or train without --tensorboard; metrics.jsonl has every number)"
            ) from None
        self.make_writer = SummaryWriter
        self.dir = Path(run_dir)
        self.writer = None

    def log_epoch(self, record: dict, nets: dict[str, nn.Module]) -> None:
        epoch = int(record["epoch"])
        if self.writer is None:
            # purge_step: a resumed run re-runs epochs after its checkpoint; TensorBoard drops the
            # first attempt's events from this epoch on.
            self.writer = self.make_writer(str(self.dir / "tensorboard"), purge_step=epoch)
            self.add_images(["images/train_batch.png"], epoch)
        for key, value in record.items():
            if key not in SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(scalar_tag(key), value, epoch)
        for name, net in nets.items():
            for pname, p in net.named_parameters():
                self.writer.add_histogram(f"{name}/{pname}", p.detach().float().cpu(), epoch)
        self.add_images([f"samples/epoch_{epoch:03d}.png", f"images/decision_epoch_{epoch:03d}.png"], epoch)
        self.writer.flush()  # every epoch: a killed run keeps what it logged

    def add_images(self, names: list[str], step: int) -> None:
        from PIL import Image

        for name in names:
            path = self.dir / name
            if path.is_file() and path.name not in SKIP:
                with Image.open(path) as im:
                    arr = np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
                tag = path.stem.replace(f"epoch_{step:03d}", "per_epoch").rstrip("_")
                self.writer.add_image(f"{path.parent.name}/{tag}", arr, step, dataformats="HWC")

    def close(self, epoch: int) -> None:
        """Log the pictures drawn after training (at ``epoch``, the last) and close the files."""
        if self.writer is None:
            return
        final = sorted(
            p
            for p in (self.dir / "images").glob("*.png")
            if "epoch_" not in p.name and "before" not in p.name and p.name != "train_batch.png"
        )
        self.add_images([str(p.relative_to(self.dir)) for p in final] + ["samples/final.png"], epoch)
        self.writer.close()
