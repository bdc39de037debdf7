"""``fcn-predict`` / ``scripts/predict.py``: masks for a folder of images and GeoTIFF scenes.

``fcn-predict --model RUN_DIR --input DIR --output DIR`` writes ``<id>_mask.png`` per image and
``<id>_mask.tif`` per ``.tif``/``.tiff`` scene; the work is :mod:`fcn.inference.prediction`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fcn.cli.common import (
    ArgumentParser,
    add_overwrite_option,
    band_numbers,
    multiple_of_32,
    non_negative_int,
    positive_float,
    positive_int,
    run_cli,
    setup_logging,
)
from fcn.core.workers import io_workers
from fcn.inference.engine import DEFAULT_TILE
from fcn.inference.prediction import DEFAULT_BATCH_SIZE, PredictConfig, PredictionRun
from fcn.model.runtime import PRECISIONS


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="fcn-predict",
        description="Predict a palette mask <id>_mask.png for every .jpg/.jpeg/.png image of a folder "
        "(xxxx_sat.jpg -> xxxx_mask.png; files *_mask.png are skipped), any size, and a class-map GeoTIFF "
        "<id>_mask.tif for every .tif/.tiff scene (window by window, georeferenced like the input).",
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="MODEL",
        help="a .keras file, a run directory (its best.keras, "
        "else last.keras), or a model exported by fcn-export (.onnx, .tflite, SavedModel directory)",
    )
    parser.add_argument(
        "--input", required=True, metavar="PATH", help="a folder of images and GeoTIFF scenes, or one file"
    )
    parser.add_argument(
        "--output", required=True, metavar="DIR", help="folder for the masks (created; must not be the input folder)"
    )
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument(
        "--scale",
        type=positive_float,
        default=None,
        metavar="F",
        help="resize inputs by F before inference; masks keep the input size (default: the scale the model "
        "was trained at, so inputs like its training tiles are seen as in training; for GeoTIFFs with a "
        "projected CRS, their pixel size / the model's training ground sample distance)",
    )
    scale.add_argument(
        "--input-gsd",
        type=positive_float,
        default=None,
        metavar="M",
        help="ground sample distance of the inputs in metres per pixel (e.g. 0.5 for full DeepGlobe tiles); "
        "the scale becomes M / the model's training ground sample distance (needed for GeoTIFFs in degrees)",
    )
    parser.add_argument(
        "--tile",
        type=multiple_of_32,
        default=DEFAULT_TILE,
        metavar="N",
        help=f"sliding-window side for larger images, multiple of 32 (default {DEFAULT_TILE})",
    )
    parser.add_argument(
        "--overlap",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="minimum overlap of sliding windows in pixels (default: tile / 8)",
    )
    parser.add_argument("--tta", action="store_true", help="average over the 8 flips/rotations (8x slower)")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"images or windows per model call (default {DEFAULT_BATCH_SIZE}; GeoTIFF scenes: at most 1 window "
        "of 1024², or the same pixels in smaller windows, to bound memory)",
    )
    parser.add_argument(
        "--overlay",
        metavar="DIR",
        help="also write <id>_overlay.jpg: the image blended with its mask, class "
        "boundaries in red (for GeoTIFF scenes, downsampled to at most 4096 px a side)",
    )
    parser.add_argument(
        "--bands",
        type=band_numbers,
        default=None,
        metavar="R,G,B",
        help="GeoTIFF bands read as red, green, blue (or one grey band), counted from 1 (default: by colour "
        "interpretation, else the first three)",
    )
    parser.add_argument(
        "--value-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="GeoTIFF values mapped linearly to 0-255 (default: uint8 as it is; other types: each band's 2nd-98th "
        "percentiles)",
    )
    parser.add_argument(
        "--stats",
        metavar="FILE",
        help="write pixels, share of valid pixels, m² and ha per input and class to "
        "FILE.csv or FILE.json (areas from a projected CRS, or from --input-gsd)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="compute dtype policy (default: as saved; auto: mixed_float16 on tensor-core GPUs; on CPUs with bfloat16 "
        "instructions mixed_bfloat16 where a short probe, cached per machine, measures it faster; else float32)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"reader/writer threads (default {io_workers()})",
    )
    add_overwrite_option(parser, "existing output files (ground truth, say)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log debugging details")
    return parser


def _optional_path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def config_from_args(args: argparse.Namespace) -> PredictConfig:
    """The typed config of a parsed command line."""
    return PredictConfig(
        model=Path(args.model),
        input=Path(args.input),
        output=Path(args.output),
        scale=args.scale,
        input_gsd=args.input_gsd,
        tile=args.tile,
        overlap=args.overlap,
        tta=args.tta,
        batch_size=args.batch_size,
        overlay=_optional_path(args.overlay),
        bands=args.bands,
        value_range=None if args.value_range is None else tuple(args.value_range),
        stats=_optional_path(args.stats),
        precision=args.precision,
        workers=args.workers,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging(1 if args.verbose else 0)
    run = PredictionRun.start(config_from_args(args))
    for line in run.lines():
        print(line, flush=True)
    return run.exit_code


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
