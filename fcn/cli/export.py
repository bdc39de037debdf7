"""``fcn-export`` / ``scripts/export.py``: a trained FCN as a standalone ONNX, LiteRT or SavedModel artefact.

``fcn-export --model RUN_DIR --format onnx --output fcn8s.onnx``; the work is :mod:`fcn.inference.export`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from fcn.cli.common import (
    ArgumentParser,
    add_message_options,
    add_overwrite_option,
    parse_command_line,
    positive_int,
    run_cli,
)
from fcn.core.errors import InputError
from fcn.inference.export import FORMATS, ExportConfig, run_export


def _parse_info(items: Sequence[str]) -> dict:
    """``KEY=VALUE`` strings to a dict; values are read as JSON when they parse (numbers, lists...).

    Raises:
        InputError: an item without ``=`` or with an empty key.
    """
    info = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--info expects KEY=VALUE, got {item!r}")
        try:
            info[key.strip()] = json.loads(value)
        except ValueError:
            info[key.strip()] = value
    return info


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="fcn-export",
        description="Export a trained FCN as a standalone model that takes raw RGB 0-255 (any height and width "
        "that are multiples of 32) and returns per-class probabilities, with its class names, colours and run "
        "facts attached (ONNX metadata; <output>.json for the others).",
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="MODEL",
        help="a .keras file, or a run directory (its best.keras, else last.keras)",
    )
    parser.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="saved_model (directory), onnx (.onnx file) or litert (.tflite file)",
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="PATH",
        help="artefact path; an artefact fcn wrote there is replaced (anything else only with --overwrite)",
    )
    parser.add_argument(
        "--info",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a fact to store besides the run's own (its scale and ground sample distance come from the "
        ".keras file), e.g. --info tile_gsd=0.3 (repeatable; values parsed as JSON when possible)",
    )
    parser.add_argument("--opset", type=positive_int, default=None, metavar="N", help="ONNX opset (default: tf2onnx's)")
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip the parity check (artefact vs Keras on two random images; needs the format's runtime)",
    )
    add_overwrite_option(parser, "an existing file at --output")
    add_message_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command_line(get_args_parser(), argv)
    config = ExportConfig(
        model=Path(args.model),
        format=args.format,
        output=Path(args.output),
        info=_parse_info(args.info),
        opset=args.opset,
        check=not args.no_check,
        overwrite=args.overwrite,
    )
    for line in run_export(config):
        print(line, flush=True)
    return 0


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
