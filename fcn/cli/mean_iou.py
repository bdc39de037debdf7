"""``fcn-mean-iou`` / ``scripts/mean_iou.py``: the course's mean IoU of a prediction folder.

``fcn-mean-iou -g GT_DIR -p PRED_DIR`` prints what the course tool prints; the work is
:mod:`fcn.core.evaluate`. Does not import TensorFlow.
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
    add_workers_option,
    parse_command_line,
    run_cli,
)
from fcn.core.evaluate import MAX_READERS, MeanIouConfig, run_mean_iou
from fcn.core.workers import io_workers


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="fcn-mean-iou",
        description="Mean IoU of predicted masks against ground truth, printed like the course tool "
        "(masks paired by name: xxxx_mask.png, or xxxx.png for predictions).",
    )
    parser.add_argument("-g", "--labels", required=True, metavar="GT_DIR", help="ground-truth mask folder")
    parser.add_argument("-p", "--pred", required=True, metavar="PRED_DIR", help="predicted mask folder")
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="score the ground truths that have a prediction instead of failing when some have none",
    )
    parser.add_argument("--json", metavar="FILE", help="also write per-class IoU, mean and confusion matrix")
    add_overwrite_option(parser, "an existing --json file")
    parser.add_argument("--confusion", action="store_true", help="also print the confusion matrix")
    add_workers_option(parser, f"reader threads (default {io_workers(MAX_READERS)})")
    add_message_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command_line(get_args_parser(), argv)
    config = MeanIouConfig(
        labels=Path(args.labels),
        pred=Path(args.pred),
        allow_missing=args.allow_missing,
        json=Path(args.json) if args.json else None,
        overwrite=args.overwrite,
        confusion=args.confusion,
        workers=args.workers,
    )
    for text in run_mean_iou(config):
        sys.stdout.write(text)
    return 0


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
