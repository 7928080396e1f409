"""``disgen export RUN_DIR --format onnx|torchscript|safetensors``: a trained run as files that
run without disgen's command line, each checked against disgen's own outputs, with a model card.

    disgen export RUN_DIR --format onnx [--out DIR] [--checkpoint auto|best|last]

Prints one JSON object on stdout (the files, the checks); progress lines go to stderr.
"""

from __future__ import annotations

import json
import sys

from disgen.cli import command, run_dir_args


def export_args(p, argv) -> None:
    run_dir_args(p)
    p.add_argument(
        "--format",
        required=True,
        metavar="onnx|torchscript|safetensors",
        help="onnx (checked in onnxruntime; needs pip install 'disgen[export]'), torchscript (torch.jit), "
        "or safetensors (the weights, and the config that rebuilds them)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="the folder to write (default RUN_DIR/exports/FORMAT): a new or empty folder, or a previous export "
        "of this run",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a previous export of another run in --out (never files that no export wrote)",
    )


@command("export", export_args)
def cmd_export(args) -> None:
    from disgen.export import check_format

    check_format(args.format)  # before torch is imported
    from disgen.export import export_run
    from disgen.export.folder import read_manifest

    paths = export_run(
        args.run_dir,
        args.format,
        args.out,
        args.checkpoint,
        log=lambda line: print(line, file=sys.stderr),
        force=args.force,
    )
    manifest = read_manifest(paths[0].parent) or {}
    print(json.dumps({"out": str(paths[0].parent), "files": [str(p) for p in paths], "checks": manifest.get("checks")}))
