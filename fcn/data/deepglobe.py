"""Rebuild the course tiles from the public DeepGlobe Land Cover training release.

DeepGlobe ships ``<id>_sat.jpg`` + ``<id>_mask.png`` pairs of 2448x2448 pixels with the course's
7-colour palette. Every course tile is one grid cell (a 1224x1224 quadrant for ``grid=2``) of a
DeepGlobe image, downscaled to 512x512. This module cuts each source image into ``grid x grid``
equal cells, resizes them and writes them in the course layout (the whole folder, its split and its
manifest are :mod:`fcn.data.deepglobe_dataset`)::

    OUTPUT/train/<id>_<row><col>_sat.jpg        OUTPUT/train/<id>_<row><col>_mask.png
    OUTPUT/validation/...                       OUTPUT/split.json

``row``/``col`` are the 0-based grid cell (``10901_10`` = bottom-left quadrant of 10901). The
train/validation split is drawn over *source* images, so the cells of one DeepGlobe image never sit
on both sides. Outputs are written atomically (temp file + rename), so an existing file is always
whole and a re-run skips the cells whose two files exist; ``overwrite=True`` redoes everything.

Only numpy and Pillow are needed (no TensorFlow). The command is :mod:`fcn.cli.prepare_deepglobe`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fcn.core import images as image_files
from fcn.core.errors import InputError
from fcn.core.files import DATASET_KIND, DiskFullError
from fcn.core.folders import scan_folder
from fcn.core.images import image_size, looks_whole, read_rgb, write_image_atomic, write_mask
from fcn.core.palette import rgb_to_class

log = logging.getLogger(__name__)

SAT_SUFFIX = image_files.SAT_SUFFIX + ".jpg"
MASK_SUFFIX = image_files.MASK_SUFFIX + ".png"
TRAIN_DIR = "train"
VALIDATION_DIR = "validation"

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
    scan = scan_folder(folder, image_files.IMAGE_SUFFIXES)  # a dangling link: one line naming it
    if scan.problems:
        more = f" (and {len(scan.problems) - 1} more)" if len(scan.problems) > 1 else ""
        raise InputError(f"{scan.problems[0][1]}{more}")
    roles = [(image_files.pair_role(p.name), p) for p in scan.files]  # the naming rule of every command
    images = {role[1]: p for role, p in roles if role and role[0] == "sat"}
    masks = {role[1]: p for role, p in roles if role and role[0] == "mask"}
    skipped = [p.name for role, p in roles if role is None]
    image_files.log_skipped_names(folder, skipped)
    if not images:
        hint = f" (did you mean {folder / 'train'}?)" if (folder / "train").is_dir() else ""
        raise InputError(f"{folder}: no DeepGlobe images (*{SAT_SUFFIX}) in this folder{hint}")
    pairs, orphans = [], []
    for source_id, image in sorted(images.items(), key=lambda item: item[1].name):
        mask = masks.get(source_id, folder / f"{source_id}{MASK_SUFFIX}")
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
            if not overwrite and all(looks_whole(p) for p in paths):  # a cut-off tile is redone
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
            write_mask(mask_path, rgb_to_class(mask_cell), DATASET_KIND)  # ground truth: predict keeps off it
            write_image_atomic(image_path, image_cell, DATASET_KIND, quality=params.jpeg_quality)
            result.written += 1
    except DiskFullError:
        raise  # every later tile would fail the same way: the command stops at the first
    except InputError as err:
        result.error = str(err)
    return result
