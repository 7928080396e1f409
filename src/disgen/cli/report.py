"""`disgen report`: the command that writes a run's HTML report (disgen.report)."""

from __future__ import annotations

import sys

from disgen.cli import command, output_path
from disgen.report import write_report


def report_args(p, argv) -> None:
    p.add_argument(
        "run_dirs",
        metavar="RUN_DIR",
        nargs="+",
        help="a run directory written by `disgen train`; several: compare them side by side",
    )
    p.add_argument(
        "--out",
        metavar="FILE.html",
        help="where to write the report (default: RUN_DIR/report.html "
        "for one run, report.html in the current folder for several)",
    )
    p.add_argument(
        "--checkpoint",
        default="auto",
        choices=("auto", "best", "last"),
        help="the checkpoint that pictures needing the model are drawn from; auto (the default, as "
        "every command): best.pt where the run has one, the one its test figure is of, else last.pt",
    )


@command("report", report_args)
def cmd_report(args) -> None:
    output_path(args.out)
    out = write_report(args.run_dirs, args.out, args.checkpoint)
    what = args.run_dirs[0] if len(args.run_dirs) == 1 else f"{len(args.run_dirs)} runs"
    print(f"wrote a report of {what} to {out}", file=sys.stderr)
