"""``fcn-report`` / ``scripts/report.py``: the Markdown study report over training run directories.

``fcn-report RUN_DIR [RUN_DIR ...] --out DIR [--json FILE]``; the work is :mod:`fcn.study.report`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fcn.cli.common import (
    ArgumentParser,
    add_message_options,
    add_overwrite_option,
    non_negative_int,
    parse_command_line,
    positive_int,
    run_cli,
)
from fcn.study.report import ReportConfig, build_report
from fcn.study.scoring import DEFAULT_BOUNDARY_PX


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="fcn-report",
        description="Write a Markdown study report (architecture tables, tracked-tile montages, per-class IoU "
        "of best.keras on the validation folder, boundary vs interior scores, mIoU curves, side-by-side "
        "table) for one or more training run directories.",
    )
    parser.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories made by scripts/train.py"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="report folder: report.md and its PNGs (created)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every number to this JSON file")
    parser.add_argument(
        "--boundary-px",
        type=non_negative_int,
        default=DEFAULT_BOUNDARY_PX,
        metavar="K",
        help=f"pixels within K px of a ground-truth class boundary form the boundary band (default {DEFAULT_BOUNDARY_PX})",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="tiles per model call when scoring (default: the run's training batch size)",
    )
    add_overwrite_option(parser, "report files (report.md, PNGs, --json)")
    add_message_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command_line(get_args_parser(), argv)
    config = ReportConfig(
        runs=tuple(args.runs),
        out=args.out,
        json=args.json,
        boundary_px=args.boundary_px,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
    )
    build_report(config)
    return 0


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
