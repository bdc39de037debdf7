"""Check that the DeepGlobe conversion reproduces a known course tile, and time it.

    python bench/check_deepglobe.py --deepglobe DATA_DIR/deepglobe-tiles \\
        --course DATA_DIR/landcover-dev [--source-id 10901 --course-tile 0031] \\
        [--jpeg-quality 75] [--filters] [--timing]

Converts one DeepGlobe image with fcn.data.deepglobe into a temp folder, finds which of its cells is
the course tile, and prints the mask agreement (%) and the image's mean/max absolute difference
per channel. Exits 1 if the agreement is below --min-agreement (99.5 %).
--filters also compares resampling filters on that cell (how IMAGE_FILTER was chosen);
--timing times the conversion of every pair in --deepglobe (serial, 2 threads, 2 processes).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fcn.core.images import read_mask, read_rgb  # noqa: E402
from fcn.data.deepglobe import (  # noqa: E402
    MASK_SUFFIX,
    SAT_SUFFIX,
    TRAIN_DIR,
    TileParameters,
    cell_boxes,
    find_sources,
    tile_paths,
    tile_stem,
)
from fcn.data.deepglobe_dataset import convert_dataset  # noqa: E402


def _link_pair(deepglobe: Path, source_id: str, folder: Path) -> None:
    for suffix in (SAT_SUFFIX, MASK_SUFFIX):
        source = deepglobe / f"{source_id}{suffix}"
        if not source.is_file():
            sys.exit(f"error: {source}: no such file")
        (folder / source.name).symlink_to(source.resolve())


def check_tile(args) -> float:
    """Convert the source image, match its cells to the course tile, print the comparison."""
    course_image = read_rgb(args.course / f"{args.course_tile}_sat.jpg").astype(np.int16)
    course_mask = read_mask(args.course / f"{args.course_tile}_mask.png")
    size = course_mask.shape[0]
    params = TileParameters(size=size, grid=args.grid, jpeg_quality=args.jpeg_quality)
    with tempfile.TemporaryDirectory() as tmp:
        source_dir, output_dir = Path(tmp, "in"), Path(tmp, "out")
        source_dir.mkdir()
        _link_pair(args.deepglobe, args.source_id, source_dir)
        start = time.perf_counter()
        convert_dataset(source_dir, output_dir, params, val_fraction=0.0, progress=False)
        seconds = time.perf_counter() - start
        print(
            f"converted {args.source_id} ({args.grid}x{args.grid} grid, {size} px, JPEG q{args.jpeg_quality})"
            f" in {seconds:.2f}s"
        )
        agreement = {}
        for row in range(args.grid):
            for col in range(args.grid):
                stem = tile_stem(args.source_id, row, col, args.grid)
                image_path, mask_path = tile_paths(output_dir / TRAIN_DIR, stem)
                agreement[(row, col)] = (float(np.mean(read_mask(mask_path) == course_mask)) * 100, image_path)
        for (row, col), (percent, _) in sorted(agreement.items()):
            print(f"  cell ({row},{col}): mask agreement with {args.course_tile} {percent:7.3f} %")
        (row, col), (best, image_path) = max(agreement.items(), key=lambda item: item[1][0])
        diff = np.abs(read_rgb(image_path).astype(np.int16) - course_image)
    print(f"course tile {args.course_tile} = cell ({row},{col}) of {args.source_id}: mask agreement {best:.3f} %")
    dominant = np.bincount(course_mask.ravel()).max() / course_mask.size
    if dominant > 0.95:
        print(f"  warning: {dominant * 100:.1f} % of {args.course_tile} is one class: the mask match is not conclusive")
    for channel, name in enumerate("RGB"):
        print(f"  image {name}: mean abs diff {diff[..., channel].mean():.2f}, max {diff[..., channel].max()}")
    off = np.mean(diff.max(-1) > 8) * 100
    print(f"  image all channels: mean abs diff {diff.mean():.2f}, pixels off by > 8 levels: {off:.2f} %")
    args.cell = (row, col)
    return best


def compare_filters(args) -> None:
    """Mean abs difference to the course image for several resampling filters (after JPEG or not)."""
    from PIL import Image
    from skimage.transform import resize

    course_image = read_rgb(args.course / f"{args.course_tile}_sat.jpg").astype(np.int16)
    size = course_image.shape[0]
    source = read_rgb(args.deepglobe / f"{args.source_id}{SAT_SUFFIX}")
    boxes = {(r, c): box for r, c, box in cell_boxes(*source.shape[:2], args.grid)}
    crop = Image.fromarray(source).crop(boxes[args.cell])

    def jpeg(array: np.ndarray, quality: int) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "JPEG", quality=quality)
        return np.asarray(Image.open(buffer))

    candidates = {
        f"PIL {name}": np.asarray(crop.resize((size, size), getattr(Image.Resampling, name)))
        for name in ("NEAREST", "BOX", "BILINEAR", "HAMMING", "BICUBIC", "LANCZOS")
    }
    candidates["PIL LANCZOS reducing_gap=3"] = np.asarray(
        crop.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    )
    for order in (0, 1):
        resized = resize(np.asarray(crop), (size, size), order=order, anti_aliasing=True, preserve_range=True)
        candidates[f"skimage order={order} anti_aliasing"] = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
    print(f"mean abs diff to {args.course_tile} (all channels) per filter:   no JPEG   JPEG q95   JPEG q75")
    for name, array in candidates.items():
        scores = [np.abs(a.astype(np.int16) - course_image).mean() for a in (array, jpeg(array, 95), jpeg(array, 75))]
        print(f"  {name:34s} " + "  ".join(f"{s:8.2f}" for s in scores))


def time_conversion(args) -> None:
    """Seconds per source image for every pair in --deepglobe: serial, 2 threads, 2 processes."""
    pairs = find_sources(args.deepglobe)
    params = TileParameters(jpeg_quality=args.jpeg_quality)
    settings = (("serial", 1, "thread"), ("2 threads", 2, "thread"), ("2 processes", 2, "process"))
    for label, workers, executor in settings:
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                convert_dataset(args.deepglobe, tmp, params, workers=workers, executor=executor, progress=False)
                runs.append(time.perf_counter() - start)
        best, median = min(runs), float(np.median(runs))
        print(
            f"timing {label:12s}: best {best:5.2f}s, median {median:5.2f}s of {args.repeat} runs for {len(pairs)} images"
            f" = {best / len(pairs):.2f} s/image (best)"
        )


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deepglobe", type=Path, required=True, help="folder with <id>_sat.jpg/<id>_mask.png")
    parser.add_argument("--course", type=Path, required=True, help="folder with the course tiles")
    parser.add_argument("--source-id", default="10901")
    parser.add_argument("--course-tile", default="0031")
    parser.add_argument("--grid", type=int, default=2)
    parser.add_argument("--jpeg-quality", type=int, default=TileParameters().jpeg_quality)
    parser.add_argument("--min-agreement", type=float, default=99.5, help="percent")
    parser.add_argument("--filters", action="store_true", help="also compare resampling filters")
    parser.add_argument("--timing", action="store_true", help="also time the conversion of all pairs")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs per setting (best and median shown)")
    return parser


def main() -> int:
    args = get_args_parser().parse_args()
    agreement = check_tile(args)
    if args.filters:
        compare_filters(args)
    if args.timing:
        time_conversion(args)
    if agreement < args.min_agreement:
        print(f"FAIL: mask agreement {agreement:.3f} % < {args.min_agreement} %", file=sys.stderr)
        return 1
    print(f"OK: mask agreement {agreement:.3f} % >= {args.min_agreement} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
