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
    add_message_options,
    add_overwrite_option,
    add_progress_option,
    add_workers_option,
    band_numbers,
    multiple_of_32,
    non_negative_float,
    non_negative_int,
    parse_command_line,
    positive_float,
    positive_int,
    run_cli,
    shows_progress,
)
from fcn.core.workers import io_workers
from fcn.inference.cluster import ClusterSpec
from fcn.inference.engine import DEFAULT_TILE
from fcn.inference.prediction import DEFAULT_BATCH_SIZE, PredictConfig, PredictionRun
from fcn.inference.region import RegionOutputs
from fcn.model.precision import PRECISIONS


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
    add_workers_option(parser, f"reader/writer threads (default {io_workers()})")
    _add_region_options(parser)
    add_overwrite_option(parser, "existing output files (ground truth, say)")
    add_progress_option(parser)
    add_message_options(parser)
    return parser


def _cluster_spec(text: str) -> ClusterSpec:
    """``--cluster``: ``local``, ``local:N`` or a scheduler address."""
    try:
        return ClusterSpec.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_region_options(parser: argparse.ArgumentParser) -> None:
    """--cluster, --resume and the region outputs of GeoTIFF scenes (docs/REGION.md)."""
    region = parser.add_argument_group("region jobs (docs/REGION.md)")
    region.add_argument(
        "--cluster",
        type=_cluster_spec,
        default=None,
        metavar="SPEC",
        help="spread the inputs over a dask.distributed cluster: local[:N] starts N worker processes here "
        "(default N: the cores), tcp://HOST:PORT joins a running scheduler; workers read and write the files "
        "themselves, so every path must be on storage they share (needs: pip install 'fcn[cluster]')",
    )
    region.add_argument(
        "--resume",
        action="store_true",
        help="skip inputs whose outputs are whole and were written by fcn with this very model and these "
        "settings (every output's mark records both); default: every input is predicted again",
    )
    region.add_argument(
        "--mosaic", metavar="FILE.vrt", help="one raster (GDAL VRT) over the class maps of all GeoTIFF scenes"
    )
    region.add_argument(
        "--polygons",
        metavar="FILE.gpkg",
        help="the scenes' class maps as polygons (class id, name, colour, area in m², scene) in one GeoPackage "
        "layer in their CRS (needs: pip install 'fcn[vector]')",
    )
    region.add_argument(
        "--min-area",
        type=non_negative_float,
        default=0.0,
        metavar="M2",
        help="with --polygons: leave out polygons smaller than M2 square metres (default 0: none)",
    )
    region.add_argument(
        "--simplify",
        type=positive_float,
        default=None,
        metavar="M",
        help="with --polygons: simplify outlines with this tolerance in CRS units (metres for most projected "
        "CRSs), topology kept; areas stay those of the pixels",
    )


def _optional_path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def _config_from_args(args: argparse.Namespace) -> PredictConfig:
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
        progress=shows_progress(args),
        overwrite=args.overwrite,
        cluster=args.cluster,
        resume=args.resume,
        region=RegionOutputs(
            mosaic=_optional_path(args.mosaic),
            polygons=_optional_path(args.polygons),
            min_area_m2=args.min_area,
            simplify_m=args.simplify,
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command_line(get_args_parser(), argv)
    run = PredictionRun.start(_config_from_args(args))
    for line in run.lines():
        print(line, flush=True)
    return run.exit_code


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
