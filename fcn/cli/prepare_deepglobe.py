"""``fcn-prepare-deepglobe`` / ``scripts/prepare_deepglobe.py``: course tiles from the DeepGlobe release.

``fcn-prepare-deepglobe --input DEEPGLOBE/train --output DATA_DIR`` writes ``train/``, ``validation/``
and ``split.json``; the work is :mod:`fcn.data.deepglobe_dataset`. Exit code 2 when some inputs were
corrupt (the others are written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fcn.cli.common import (
    ArgumentParser,
    add_message_options,
    add_progress_option,
    add_workers_option,
    fraction,
    parse_command_line,
    positive_int,
    run_cli,
    shows_progress,
)
from fcn.core.errors import EXIT_USER_ERROR
from fcn.data.deepglobe import (
    DEFAULT_GRID,
    DEFAULT_JPEG_QUALITY,
    DEFAULT_SEED,
    DEFAULT_SIZE,
    DEFAULT_VAL_FRACTION,
    TileParameters,
)
from fcn.data.deepglobe_dataset import PrepareDeepGlobeConfig, prepare_deepglobe


def _jpeg_quality(text: str) -> int:
    value = positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must lie in 1..100, got {value}")
    return value


def get_args_parser() -> argparse.ArgumentParser:
    """Command-line options of ``scripts/prepare_deepglobe.py``."""
    parser = ArgumentParser(
        prog="fcn-prepare-deepglobe",
        description="Cut the DeepGlobe Land Cover training release into course tiles "
        "(OUTPUT/train, OUTPUT/validation, OUTPUT/split.json).",
    )
    parser.add_argument("--input", required=True, help="DeepGlobe folder with <id>_sat.jpg and <id>_mask.png")
    parser.add_argument("--output", required=True, help="dataset folder to write")
    parser.add_argument("--size", type=positive_int, default=DEFAULT_SIZE, help="tile side in pixels (default 512)")
    parser.add_argument(
        "--grid", type=positive_int, default=DEFAULT_GRID, help="cells per side of a source image (default 2)"
    )
    parser.add_argument(
        "--val-fraction",
        type=fraction,
        default=DEFAULT_VAL_FRACTION,
        help="share of SOURCE images for validation (default 0.1)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the split (default 0)")
    parser.add_argument(
        "--jpeg-quality",
        type=_jpeg_quality,
        default=DEFAULT_JPEG_QUALITY,
        help="JPEG quality of the tiles (default 95; the course tiles use 75)",
    )
    parser.add_argument("--overwrite", action="store_true", help="delete existing tiles and redo everything")
    add_workers_option(parser, "images converted in parallel (default: one per available CPU core)")
    add_progress_option(parser)
    add_message_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the conversion; returns 0, or 2 if some inputs were corrupt (the others are written)."""
    args = parse_command_line(get_args_parser(), argv)
    config = PrepareDeepGlobeConfig(
        input=Path(args.input),
        output=Path(args.output),
        params=TileParameters(size=args.size, grid=args.grid, jpeg_quality=args.jpeg_quality),
        val_fraction=args.val_fraction,
        seed=args.seed,
        overwrite=args.overwrite,
        workers=args.workers,
        progress=shows_progress(args),
    )
    summary = prepare_deepglobe(config)
    print(summary.line(args.output))
    return EXIT_USER_ERROR if summary.failed else 0


def cli() -> None:
    """Console entry point."""
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
