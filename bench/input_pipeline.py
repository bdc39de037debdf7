"""Throughput of the training input pipeline alone (read + decode + resize + augment + batch).

Usage:
    python bench/input_pipeline.py DATA_DIR [--image-size N] [--batch-size B] [--seconds S]
        [--crop C] [--scale-range LO HI] [--cache]

Other benchmarks can import :func:`measure_input_pipeline` to tell whether training is
input-bound (compare its images/s with the model's training-step images/s).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fcn.cli.common import run_cli  # noqa: E402
from fcn.data.pairs import Pair, find_pairs  # noqa: E402
from fcn.data.pipeline import make_dataset  # noqa: E402


def measure_input_pipeline(
    data: str | os.PathLike | Sequence[Pair],
    *,
    image_size: int | None = 512,
    batch_size: int = 8,
    seconds: float = 10.0,
    crop: int | None = None,
    scale_range: tuple[float, float] | None = None,
    cache: bool = False,
    warmup_batches: int = 2,
) -> dict:
    """Pull training batches from :func:`fcn.data.pipeline.make_dataset` for about ``seconds`` and time them.

    Args:
        data: a data folder or pairs from :func:`fcn.data.pairs.find_pairs`.
        image_size, batch_size, crop, scale_range, cache: as for :func:`fcn.data.pipeline.make_dataset`
            (training=True, repeating).
        seconds: measuring time, after ``warmup_batches`` batches (pipeline start, autotuning).
        warmup_batches: batches pulled before the clock starts.

    Returns:
        dict with images_per_s, batches, images, seconds, and the settings used.
    """
    pairs = list(data) if not isinstance(data, (str, os.PathLike)) else find_pairs(data)
    dataset = make_dataset(
        pairs,
        batch_size=batch_size,
        training=True,
        image_size=image_size,
        crop=crop,
        scale_range=scale_range,
        cache=cache,
        repeat=True,
    )
    batches = iter(dataset)
    for _ in range(warmup_batches):
        next(batches)
    images = count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        image_batch, _ = next(batches)
        images += int(image_batch.shape[0])
        count += 1
    elapsed = time.perf_counter() - start
    return {
        "images_per_s": images / elapsed,
        "batches": count,
        "images": images,
        "seconds": elapsed,
        "image_size": image_size,
        "batch_size": batch_size,
        "crop": crop,
        "scale_range": scale_range,
        "cache": cache,
        "tiles": len(pairs),
    }


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Images/s of the training input pipeline alone.")
    parser.add_argument("data_dir", help="folder of <id>_sat.jpg + <id>_mask.png pairs")
    parser.add_argument("--image-size", type=int, default=512, help="resize tiles to N x N (default 512)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time (default 10)")
    parser.add_argument("--crop", type=int, default=None, help="random crop size (default none)")
    parser.add_argument(
        "--scale-range",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        default=None,
        help="random scale range (default none)",
    )
    parser.add_argument("--cache", action="store_true", help="cache decoded tiles in memory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    result = measure_input_pipeline(
        args.data_dir,
        image_size=args.image_size,
        batch_size=args.batch_size,
        seconds=args.seconds,
        crop=args.crop,
        scale_range=tuple(args.scale_range) if args.scale_range else None,
        cache=args.cache,
    )
    print(
        f"{result['images_per_s']:.1f} images/s  ({result['images']} images in {result['seconds']:.1f} s; "
        f"{result['tiles']} tiles, image_size={args.image_size}, batch={args.batch_size}, crop={args.crop}, "
        f"scale_range={result['scale_range']}, cache={args.cache}, {os.cpu_count()} CPUs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
