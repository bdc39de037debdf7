"""Images per second of ``fcn-predict``'s path against a naive per-image loop.

    python bench/predict_speed.py --model MODEL.keras|fcn8s --input DIR [--scale F] [--limit N]
                                  [--tile N] [--overlap N] [--batch-size N] [--tta] [--json FILE]

The naive loop is what a first script does: for each image, read it, (resize it), pad it to a multiple
of 32, ``model.predict`` it alone, argmax, crop, (resize the mask back, nearest), colour it with the
palette and write the PNG, all in one thread. The ``fcn-predict`` path is :func:`fcn.inference.folder.predict_folder`
with a :class:`fcn.inference.engine.Predictor` (prefetching decoder threads, batched compiled calls, sliding
window above ``--tile``), without argument parsing and model loading, which both paths share.

Both paths first run once on the first image (tracing/compilation excluded from the timings), then
on the ``--limit`` first images; masks go to a temporary folder. ``--model fcn8s`` (or fcn16s/fcn32s)
builds an untrained model (random weights: same speed; ``--imagenet`` loads the ImageNet encoder).

Other benchmarks can ``from predict_speed import compare`` (with ``bench/`` on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fcn.core.images import read_rgb  # noqa: E402
from fcn.core.palette import PALETTE  # noqa: E402
from fcn.inference.engine import Predictor, padded_side  # noqa: E402
from fcn.inference.folder import PredictionJob, mask_name, plan_jobs, predict_folder  # noqa: E402


def naive_predict(model, images: list[Path], output_dir: Path, scale: float = 1.0) -> float:
    """The naive per-image loop; returns its wall time in seconds."""
    from PIL import Image

    start = time.perf_counter()
    for path in images:
        rgb = read_rgb(path)
        height, width = rgb.shape[:2]
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
        work_h, work_w = rgb.shape[:2]
        padded = np.pad(
            rgb, ((0, padded_side(work_h) - work_h), (0, padded_side(work_w) - work_w), (0, 0)), mode="reflect"
        )
        probs = model.predict(padded[None].astype("float32"), verbose=0)[0, :work_h, :work_w]
        mask = np.argmax(probs, axis=-1).astype(np.uint8)
        if scale != 1.0:
            mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST))
        Image.fromarray(PALETTE[mask]).save(output_dir / mask_name(path))
    return time.perf_counter() - start


def compare(
    model,
    input_dir: str | os.PathLike,
    *,
    scale: float = 1.0,
    limit: int | None = None,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    tta: bool = False,
    workers: int | None = None,
) -> dict:
    """Time the ``fcn-predict`` path and the naive loop on the same images and model.

    Args:
        model: a Keras FCN (any input size).
        input_dir: folder of images (``*_mask.png`` files are skipped).
        scale, tile, overlap, batch_size, tta: :class:`fcn.inference.engine.Predictor` settings (the naive
            loop uses ``scale`` only: it always runs the whole image).
        limit: time only the first ``limit`` images (all when None).
        workers: reader/writer threads of the ``fcn-predict`` path.

    Returns:
        A dict with ``images``, ``size`` (first image, H x W), ``cli_seconds``,
        ``cli_images_per_s``, ``naive_seconds``, ``naive_images_per_s`` and ``speedup``.
    """
    predictor = Predictor(model, scale=scale, tile=tile, overlap=overlap, tta=tta, batch_size=batch_size)
    with tempfile.TemporaryDirectory(prefix="predict-speed-") as tmp:
        cli_dir, naive_dir = Path(tmp, "cli"), Path(tmp, "naive")
        cli_dir.mkdir()
        naive_dir.mkdir()
        jobs: list[PredictionJob] = plan_jobs(input_dir, cli_dir)[:limit]
        images = [job.image for job in jobs]
        # Warm-up on the first image: tracing and the first allocation are not what we measure.
        predict_folder(predictor, jobs[:1], workers=workers, progress=False)
        naive_predict(model, images[:1], naive_dir, scale)

        report = predict_folder(predictor, jobs, workers=workers, progress=False)
        if report.failed:
            raise RuntimeError(f"{len(report.failed)} images failed: {report.failed[0][1]}")
        naive_seconds = naive_predict(model, images, naive_dir, scale)
    height, width = read_rgb(images[0]).shape[:2]
    return {
        "images": len(images),
        "size": f"{height}x{width}",
        "scale": scale,
        "tile": tile,
        "overlap": overlap,
        "batch_size": batch_size,
        "tta": tta,
        "cli_seconds": report.seconds,
        "cli_images_per_s": len(images) / report.seconds,
        "naive_seconds": naive_seconds,
        "naive_images_per_s": len(images) / naive_seconds,
        "speedup": naive_seconds / report.seconds,
    }


def _model(spec: str, imagenet: bool):
    from fcn import MODEL_NAMES
    from fcn.model.builders import build_model
    from fcn.model.checkpoints import load_model

    if spec in MODEL_NAMES:
        return build_model(spec, input_shape=(None, None, 3), weights="imagenet" if imagenet else None)
    return load_model(spec)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", required=True, help="a .keras file or run directory, or fcn8s/fcn16s/fcn32s (untrained)"
    )
    parser.add_argument("--imagenet", action="store_true", help="with a model name: load the ImageNet encoder")
    parser.add_argument("--input", required=True, help="folder of images")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--limit", type=int, default=None, help="time only the first N images")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    result = compare(
        _model(args.model, args.imagenet),
        args.input,
        scale=args.scale,
        limit=args.limit,
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        tta=args.tta,
        workers=args.workers,
    )
    result["model"] = args.model
    print(
        f"{result['images']} images of {result['size']} at scale {args.scale} (tile {args.tile}, overlap {args.overlap}, "
        f"batch {args.batch_size}{', TTA' if args.tta else ''}):\n"
        f"  fcn-predict path: {result['cli_images_per_s']:.3f} images/s ({result['cli_seconds']:.1f} s)\n"
        f"  naive loop:       {result['naive_images_per_s']:.3f} images/s ({result['naive_seconds']:.1f} s)\n"
        f"  speedup:          {result['speedup']:.2f}x"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
