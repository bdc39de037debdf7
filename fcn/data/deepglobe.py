"""Rebuild the course tiles from the public DeepGlobe Land Cover training release.

DeepGlobe ships ``<id>_sat.jpg`` + ``<id>_mask.png`` pairs of 2448x2448 pixels with the course's
7-colour palette. Every course tile is one grid cell (a 1224x1224 quadrant for ``grid=2``) of a
DeepGlobe image, downscaled to 512x512. This module cuts each source image into ``grid x grid``
equal cells, resizes them and writes them in the course layout::

    OUTPUT/train/<id>_<row><col>_sat.jpg        OUTPUT/train/<id>_<row><col>_mask.png
    OUTPUT/validation/...                       OUTPUT/split.json

``row``/``col`` are the 0-based grid cell (``10901_10`` = bottom-left quadrant of 10901). The
train/validation split is drawn over *source* images, so the cells of one DeepGlobe image never sit
on both sides. Outputs are written atomically (temp file + rename), so an existing file is always
whole and a re-run skips the cells whose two files exist; ``overwrite=True`` redoes everything.

Only numpy and Pillow are needed (no TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fcn.cli.common import ArgumentParser, fraction, positive_int, run_cli
from fcn.core import images as image_files
from fcn.core.errors import EXIT_USER_ERROR, InputError
from fcn.core.files import TEMP_MARK, write_text_atomic
from fcn.core.images import image_size, read_rgb, write_image_atomic, write_mask
from fcn.core.palette import rgb_to_class

SAT_SUFFIX = image_files.SAT_SUFFIX + ".jpg"
MASK_SUFFIX = image_files.MASK_SUFFIX + ".png"
TRAIN_DIR = "train"
VALIDATION_DIR = "validation"
MANIFEST_NAME = "split.json"
MANIFEST_FORMAT = "fcn-deepglobe-split/1"

DEFAULT_SIZE = 512
DEFAULT_GRID = 2
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_SEED = 0
# The course tiles themselves are JPEG quality 75 (their quantisation tables say so); we default to
# 95 so that the conversion adds as little loss as possible on top of DeepGlobe's own ~q95 JPEGs.
DEFAULT_JPEG_QUALITY = 95
# PIL's BILINEAR on a reduction is an antialiased triangle filter whose support grows with the
# reduction factor; of the filters tried it reproduces course tile 0031 best (see README).
IMAGE_FILTER = "PIL.Image.Resampling.BILINEAR (antialiased on reduction)"

# A written tile, and a temp file that write_image_atomic leaves behind if the process is killed.
_TILE_RE = re.compile(r"^(?P<id>.+)_(?P<cell>\d+)_(?:sat\.jpg|mask\.png)$")
_TEMP_RE = re.compile(rf"^\..+_\d+_(?:sat\.jpg|mask\.png){re.escape(TEMP_MARK)}.+$")


@dataclass(frozen=True)
class SourcePair:
    """One DeepGlobe image and its mask."""

    source_id: str
    image_path: Path
    mask_path: Path


@dataclass(frozen=True)
class TileParameters:
    """How source images become tiles; stored in the manifest so that runs are reproducible."""

    size: int = DEFAULT_SIZE
    grid: int = DEFAULT_GRID
    jpeg_quality: int = DEFAULT_JPEG_QUALITY
    image_filter: str = IMAGE_FILTER
    mask_filter: str = "nearest, then snapped to the palette (course rule)"


@dataclass
class SourceResult:
    """What converting one source image did."""

    source_id: str
    split: str
    written: int = 0
    skipped: int = 0
    upscaled: bool = False
    error: str | None = None


@dataclass
class ConversionSummary:
    """Totals of a whole run; ``failed`` maps source id to the one-line reason."""

    sources: int = 0
    cells_written: int = 0
    cells_skipped: int = 0
    upscaled: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def find_sources(input_dir: str | os.PathLike) -> list[SourcePair]:
    """The ``<id>_sat.jpg`` / ``<id>_mask.png`` pairs of a DeepGlobe folder, sorted by id.

    Args:
        input_dir: folder of the DeepGlobe training release (files directly inside it).

    Returns:
        One :class:`SourcePair` per image.

    Raises:
        InputError: the folder is missing, holds no ``*_sat.jpg``, or an image has no mask (the
            DeepGlobe valid/test folders have no masks, so this usually means the wrong folder).
    """
    folder = Path(input_dir)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(SAT_SUFFIX))
    if not images:
        hint = f" (did you mean {folder / 'train'}?)" if (folder / "train").is_dir() else ""
        raise InputError(f"{folder}: no DeepGlobe images (*{SAT_SUFFIX}) in this folder{hint}")
    pairs, orphans = [], []
    for image in images:
        source_id = image.name[: -len(SAT_SUFFIX)]
        mask = folder / f"{source_id}{MASK_SUFFIX}"
        (pairs if mask.is_file() else orphans).append(SourcePair(source_id, image, mask))
    if orphans:
        more = f" (and {len(orphans) - 1} more images without masks)" if len(orphans) > 1 else ""
        raise InputError(f"{orphans[0].image_path}: no mask {orphans[0].mask_path.name}{more}")
    return pairs


def cell_boxes(height: int, width: int, grid: int) -> list[tuple[int, int, tuple[int, int, int, int]]]:
    """The ``grid x grid`` equal cells of an image, row by row.

    The cell size is ``height // grid`` by ``width // grid``; when the size is not divisible the
    remainder (fewer than ``grid`` pixels) at the bottom and right edge is dropped.

    Args:
        height, width: image size in pixels.
        grid: cells per side (>= 1).

    Returns:
        ``(row, col, (left, upper, right, lower))`` per cell, boxes in PIL's crop convention.

    Raises:
        ValueError: the image is smaller than ``grid`` pixels on a side.
    """
    cell_h, cell_w = height // grid, width // grid
    if grid < 1 or cell_h < 1 or cell_w < 1:
        raise ValueError(f"a {width}x{height} image cannot be cut into a {grid}x{grid} grid")
    return [
        (row, col, (col * cell_w, row * cell_h, (col + 1) * cell_w, (row + 1) * cell_h))
        for row in range(grid)
        for col in range(grid)
    ]


def tile_stem(source_id: str, row: int, col: int, grid: int) -> str:
    """``<id>_<row><col>``; each index is zero-padded to the digits of ``grid - 1`` (one for grid <= 10)."""
    digits = len(str(grid - 1))
    return f"{source_id}_{row:0{digits}d}{col:0{digits}d}"


def tile_paths(folder: Path, stem: str) -> tuple[Path, Path]:
    """(image, mask) paths of one tile."""
    return folder / f"{stem}{SAT_SUFFIX}", folder / f"{stem}{MASK_SUFFIX}"


def split_sources(source_ids: Sequence[str], val_fraction: float, seed: int) -> dict[str, list[str]]:
    """Draw the validation source images; deterministic for a given set of ids and seed.

    Args:
        source_ids: ids of the source images (order does not matter).
        val_fraction: share of the sources for validation, in [0, 1). With a fraction > 0 and more
            than one source, at least one goes to validation and at least one stays for training.
        seed: seed of the shuffle.

    Returns:
        ``{"train": [...], "validation": [...]}``, each sorted.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    ids = sorted(set(source_ids))
    n_val = 0
    if val_fraction > 0 and len(ids) > 1:
        n_val = min(max(1, round(val_fraction * len(ids))), len(ids) - 1)
    order = np.random.default_rng(seed).permutation(len(ids))
    validation = {ids[i] for i in order[:n_val]}
    return {
        TRAIN_DIR: [i for i in ids if i not in validation],
        VALIDATION_DIR: [i for i in ids if i in validation],
    }


def convert_source(
    pair: SourcePair, split: str, output_dir: str | os.PathLike, params: TileParameters, overwrite: bool = False
) -> SourceResult:
    """Cut one DeepGlobe pair into tiles under ``output_dir/split``.

    Cells whose two files already exist are skipped unless ``overwrite``; if all are there the
    source is not even decoded. A bad input does not raise: the result carries a one-line error.

    Args:
        pair: the source image and mask.
        split: ``"train"`` or ``"validation"`` (the sub-folder).
        output_dir: the dataset root.
        params: tile size, grid and JPEG quality.
        overwrite: rewrite cells that already exist.

    Returns:
        A :class:`SourceResult`.
    """
    from PIL import Image

    result = SourceResult(pair.source_id, split)
    folder = Path(output_dir) / split
    try:
        height, width = image_size(pair.image_path)
        mask_size = image_size(pair.mask_path)
        if mask_size != (height, width):
            raise InputError(
                f"{pair.mask_path}: mask is {mask_size[1]}x{mask_size[0]} but its image is {width}x{height}; skipped"
            )
        try:
            cells = cell_boxes(height, width, params.grid)
        except ValueError as err:
            raise InputError(f"{pair.image_path}: {err}") from None
        cell_width, cell_height = cells[0][2][2], cells[0][2][3]
        result.upscaled = min(cell_width, cell_height) < params.size
        todo = []
        for row, col, box in cells:
            paths = tile_paths(folder, tile_stem(pair.source_id, row, col, params.grid))
            if not overwrite and all(p.is_file() for p in paths):
                result.skipped += 1
            else:
                todo.append((box, paths))
        if not todo:
            return result
        image = Image.fromarray(read_rgb(pair.image_path))
        mask = Image.fromarray(read_rgb(pair.mask_path))
        target = (params.size, params.size)
        folder.mkdir(parents=True, exist_ok=True)
        for box, (image_path, mask_path) in todo:
            # crop() first: resize(box=...) would let the filter reach pixels of the neighbouring cell.
            # Nearest neighbour picks existing pixels, so snapping after the resize equals snapping before.
            mask_cell = np.asarray(mask.crop(box).resize(target, Image.Resampling.NEAREST))
            image_cell = np.asarray(image.crop(box).resize(target, Image.Resampling.BILINEAR))
            write_mask(mask_path, rgb_to_class(mask_cell))
            write_image_atomic(image_path, image_cell, quality=params.jpeg_quality)
            result.written += 1
    except InputError as err:
        result.error = str(err)
    return result


def _manifest(params: TileParameters, val_fraction: float, seed: int, splits: dict[str, list[str]], input_dir) -> dict:
    """The content of split.json: parameters and split (compared when resuming) plus the input folder."""
    return {
        "format": MANIFEST_FORMAT,
        "input": str(Path(input_dir).resolve()),
        "parameters": {**asdict(params), "val_fraction": val_fraction, "seed": seed},
        "splits": splits,
    }


def _tile_files(output_dir: Path) -> list[Path]:
    """Tiles and leftover temp files in the split folders of ``output_dir``."""
    found = []
    for split in (TRAIN_DIR, VALIDATION_DIR):
        folder = output_dir / split
        if folder.is_dir():
            found += [p for p in folder.iterdir() if p.is_file() and (_TILE_RE.match(p.name) or _TEMP_RE.match(p.name))]
    return found


def _prepare_output(output_dir: Path, manifest: dict, overwrite: bool) -> None:
    """Check that ``output_dir`` can be resumed (or clear it for ``overwrite``) and write the manifest.

    Resuming with other parameters or another split would mix incompatible tiles, so it is refused.
    """
    manifest_path = output_dir / MANIFEST_NAME
    existing = _tile_files(output_dir)
    if overwrite:
        for path in existing:
            path.unlink(missing_ok=True)
    else:
        for path in existing:
            if _TEMP_RE.match(path.name):  # a write killed half-way; its tile is redone
                path.unlink(missing_ok=True)
        if manifest_path.is_file():
            try:
                previous = json.loads(manifest_path.read_text())
            except (OSError, ValueError) as err:
                raise InputError(f"{manifest_path}: cannot read ({err}); use --overwrite") from None
            for key in ("parameters", "splits"):
                if previous.get(key) != manifest[key]:
                    raise InputError(
                        f"{manifest_path}: this folder was written with other {key}; "
                        "use --overwrite or another --output"
                    )
        elif any(_TILE_RE.match(p.name) for p in existing):
            raise InputError(f"{output_dir}: holds tiles but no {MANIFEST_NAME}; use --overwrite or another --output")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(manifest_path, json.dumps(manifest, indent=2) + "\n")
    except OSError as err:
        raise InputError(f"{output_dir}: cannot write the output folder ({err.strerror or err})") from None


class _ProgressLine:
    """A one-line ``done/total`` counter on stderr (redrawn in place on a terminal, every 10 % in a log).

    Not keras.utils.Progbar: that would import TensorFlow (seconds and ~1 GB) into a numpy/Pillow tool.
    """

    def __init__(self, total: int, stream=None):
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.start = time.monotonic()

    def message(self, text: str) -> None:
        """Print a line without garbling the counter."""
        print(("\r\033[K" if self.interactive else "") + text, file=self.stream, flush=True)

    def advance(self, label: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        text = f"[{self.done}/{self.total}] {label} ({elapsed:.0f}s)"
        if self.interactive:
            end = "\n" if self.done == self.total else ""
            print(f"\r\033[K{text}", end=end, file=self.stream, flush=True)
        elif self.done == self.total or self.done % max(1, self.total // 10) == 0:
            print(text, file=self.stream, flush=True)


def convert_dataset(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    params: TileParameters = TileParameters(),
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = DEFAULT_SEED,
    overwrite: bool = False,
    workers: int = 1,
    executor: str = "thread",
    progress: bool = True,
) -> ConversionSummary:
    """Convert a DeepGlobe folder into the course layout (train/, validation/, split.json).

    Args:
        input_dir: DeepGlobe training folder (``<id>_sat.jpg`` + ``<id>_mask.png``).
        output_dir: dataset root to write; created if needed.
        params: tile size, grid and JPEG quality.
        val_fraction: share of the *source images* that go to validation.
        seed: seed of the split.
        overwrite: delete the tiles already in ``output_dir`` and redo everything.
        workers: images converted in parallel.
        executor: ``"thread"`` or ``"process"`` pool (threads are as fast here: Pillow releases
            the GIL while decoding, resizing and encoding).
        progress: show a counter on stderr.

    Returns:
        A :class:`ConversionSummary`; corrupt inputs are in ``failed`` (and were reported on stderr).

    Raises:
        InputError: missing/empty input folder, an image without mask, or an output folder written
            with other parameters (without ``overwrite``).
    """
    if params.size < 1 or params.grid < 1 or workers < 1:
        raise ValueError("size, grid and workers must be >= 1")
    pairs = find_sources(input_dir)
    splits = split_sources([p.source_id for p in pairs], val_fraction, seed)
    split_of = {sid: split for split, ids in splits.items() for sid in ids}
    output_dir = Path(output_dir)
    manifest = _manifest(params, val_fraction, seed, splits, input_dir)
    _prepare_output(output_dir, manifest, overwrite)

    summary = ConversionSummary(sources=len(pairs))
    bar = _ProgressLine(len(pairs)) if progress else None
    pool_type: type[Executor] = {"thread": ThreadPoolExecutor, "process": ProcessPoolExecutor}[executor]
    with pool_type(max_workers=min(workers, len(pairs))) as pool:
        futures = [
            pool.submit(convert_source, pair, split_of[pair.source_id], output_dir, params, overwrite) for pair in pairs
        ]
        try:
            for future in as_completed(futures):
                result = future.result()
                summary.cells_written += result.written
                summary.cells_skipped += result.skipped
                summary.upscaled += result.upscaled
                if result.error:
                    summary.failed[result.source_id] = result.error
                    if bar:
                        bar.message(f"error: {result.error}")
                    else:
                        print(f"error: {result.error}", file=sys.stderr)
                if bar:
                    bar.advance(result.source_id)
        except BaseException:
            # On Ctrl-C only the images in progress finish (atomically); the queued ones are dropped.
            for future in futures:
                future.cancel()
            raise
    if summary.upscaled:
        print(
            f"warning: {summary.upscaled} source images have cells smaller than {params.size} px: their tiles are "
            "upscaled (check --grid and --size)",
            file=sys.stderr,
        )
    manifest["failed"] = dict(sorted(summary.failed.items()))
    write_text_atomic(output_dir / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    return summary


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
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="images converted in parallel (default: CPU count)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the conversion; returns 0, or 2 if some inputs were corrupt (the others are written)."""
    args = get_args_parser().parse_args(argv)
    params = TileParameters(size=args.size, grid=args.grid, jpeg_quality=args.jpeg_quality)
    summary = convert_dataset(
        args.input,
        args.output,
        params,
        val_fraction=args.val_fraction,
        seed=args.seed,
        overwrite=args.overwrite,
        workers=args.workers,
    )
    print(
        f"{summary.sources} source images: {summary.cells_written} tiles written, "
        f"{summary.cells_skipped} already done, {len(summary.failed)} images failed -> {args.output}"
    )
    return EXIT_USER_ERROR if summary.failed else 0


def cli() -> None:
    """Console entry point."""
    sys.exit(run_cli(main))
