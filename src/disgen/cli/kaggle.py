"""`disgen kaggle-organize`: Kaggle's Dog Breed layout into class folders (disgen.data.kaggle)."""

from __future__ import annotations

import json
import sys

from disgen.cli import command
from disgen.data.kaggle import organize


def organize_args(p, argv) -> None:
    p.add_argument("data_dir", metavar="DATA_DIR", help="the competition's folder: labels.csv, train/, test/")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write train/ valid/ train_valid/ test/")
    p.add_argument(
        "--valid-ratio",
        type=float,
        default=0.1,
        help="share of the smallest breed per breed in valid/ (default 0.1, at least one image per breed)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")


@command("kaggle-organize", organize_args)
def cmd_organize(args) -> None:
    summary = organize(args.data_dir, args.out, args.valid_ratio, args.seed)
    print(json.dumps(summary))
    print(f"train with: disgen train resnet-transfer --dataset {args.out}", file=sys.stderr)
