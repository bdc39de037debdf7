"""A small synthetic land-cover dataset for demos and tests (numpy only, deterministic).

Each tile is a mosaic of smooth-bordered regions (Voronoi cells on noise-warped coordinates);
every region gets one class and is painted with that class's own colour and texture, loosely
imitating DeepGlobe: urban is grey with a grid of bright roofs, agriculture yellow-green stripes,
rangeland olive with medium blotches, forest dark green and grainy, water dark blue and smooth,
barren light brown with broad shading, Unknown near-black no-data. The textures differ enough in
colour and in local structure that a small FCN learns them in a few epochs.

Tile content depends only on (seed, tile id), never on how many tiles are written, so the same
id is the same picture in every split and every run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError
from fcn.core.files import DATASET_KIND
from fcn.core.images import write_image_atomic, write_mask
from fcn.core.mark import check_dataset_replaceable
from fcn.core.palette import NUM_CLASSES
from fcn.data.pairs import TRACKED_VAL_IDS

# Validation ids whose predictions the training run tracks; the demo data always contains them.

# How often each class is drawn for a region (urban, agriculture, rangeland, forest, water,
# barren, unknown): agriculture dominates and Unknown is rare, as in DeepGlobe.
_CLASS_PROBABILITIES = np.array([0.13, 0.28, 0.13, 0.14, 0.12, 0.16, 0.04])


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Value noise: unit-variance random values on a grid of ``cell`` px, bilinearly interpolated."""
    grid_h, grid_w = int(height / cell) + 2, int(width / cell) + 2
    grid = rng.standard_normal((grid_h, grid_w))
    ys, xs = np.arange(height) / cell, np.arange(width) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _region_map(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) class map of Voronoi regions with wavy borders."""
    num_regions = int(rng.integers(3, 7)) * max(1, size // 64)
    centres = rng.uniform(0, size, (num_regions, 2))
    region_class = rng.choice(NUM_CLASSES, size=num_regions, p=_CLASS_PROBABILITIES)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    warp = 0.08 * size
    yy += warp * _smooth_noise(rng, size, size, size / 4)
    xx += warp * _smooth_noise(rng, size, size, size / 4)
    dist2 = (yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2
    return region_class[np.argmin(dist2, axis=-1)].astype(np.uint8)


def _class_textures(rng: np.random.Generator, size: int) -> np.ndarray:
    """(NUM_CLASSES, size, size, 3) float RGB: every class's texture over the whole tile."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    fine = lambda: rng.standard_normal((size, size))  # noqa: E731 - per-pixel grain
    textures = np.empty((NUM_CLASSES, size, size, 3))

    def paint(index, rgb, shade):
        textures[index] = np.asarray(rgb, np.float64) + shade[..., None]

    # 0 urban: grey streets with a regular grid of bright roofs of varying brightness.
    period = int(rng.integers(7, 12))
    roof = ((yy % period) < 0.6 * period) & ((xx % period) < 0.6 * period)
    block_brightness = rng.uniform(-20, 20, (size // period + 2, size // period + 2))
    roof_shade = block_brightness[(yy // period).astype(int), (xx // period).astype(int)]
    urban = np.where(roof[..., None], np.array([200.0, 195, 190]) + roof_shade[..., None], [95.0, 95, 100])
    textures[0] = urban + 6 * fine()[..., None]
    # 1 agriculture: yellow-green with parallel furrows in a random direction.
    angle = rng.uniform(0, np.pi)
    furrow = 25 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / rng.uniform(5, 9))
    paint(1, (175, 185, 85), furrow + 5 * fine())
    # 2 rangeland: olive with medium-scale blotches.
    paint(2, (135, 130, 70), 15 * _smooth_noise(rng, size, size, 4) + 6 * fine())
    # 3 forest: dark green, strong per-pixel grain (tree crowns).
    paint(3, (35, 80, 30), 18 * fine())
    textures[3, ..., 1] += 10 * fine()
    # 4 water: dark blue, almost flat.
    paint(4, (20, 45, 95), 3 * _smooth_noise(rng, size, size, 16) + 2 * fine())
    # 5 barren: light brown with broad shading.
    paint(5, (195, 170, 135), 12 * _smooth_noise(rng, size, size, 16) + 4 * fine())
    # 6 unknown: near-black no-data.
    paint(6, (8, 8, 8), 3 * fine())
    return textures


def _make_synthetic_tile(seed: int, tile_id: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic tile and its class map.

    Args:
        seed: dataset seed.
        tile_id: numeric tile id; with the seed it fully determines the tile.
        size: tile side in pixels.

    Returns:
        ``(rgb, classes)``: (size, size, 3) uint8 image and (size, size) uint8 class indices.
    """
    rng = np.random.default_rng([seed, tile_id])
    classes = _region_map(rng, size)
    textures = _class_textures(rng, size)
    rows, cols = np.indices(classes.shape)
    rgb = textures[classes, rows, cols] * rng.uniform(0.9, 1.1)  # per-tile illumination
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8), classes


def split_ids(n_train: int, n_val: int, ids_val: Sequence[str | int] | None = None) -> tuple[list[str], list[str]]:
    """Choose the tile ids of each split.

    Validation first takes ``ids_val`` (default: as many of :data:`TRACKED_VAL_IDS` as ``n_val``
    allows), training then takes the smallest free ids from 0000 upwards, and validation is filled
    up with the next free ids. Demo example (48 + 12): train 0000-0007, 0009-0048; val 0008,
    0049-0057, 0097, 0107.

    Returns:
        ``(train_ids, val_ids)``, each sorted, four-digit zero-padded strings.
    """
    if n_train < 0 or n_val < 0:
        raise ValueError("n_train and n_val must be >= 0")
    if ids_val is None:
        reserved = [int(i) for i in TRACKED_VAL_IDS[:n_val]]
    else:
        reserved = [int(i) for i in ids_val]
        if len(reserved) > n_val or len(set(reserved)) != len(reserved):
            raise ValueError(f"ids_val must hold at most n_val={n_val} distinct ids, got {list(ids_val)}")
    taken = set(reserved)

    def next_free(count: int) -> list[int]:
        chosen, candidate = [], 0
        while len(chosen) < count:
            if candidate not in taken:
                chosen.append(candidate)
                taken.add(candidate)
            candidate += 1
        return chosen

    train = next_free(n_train)
    val = reserved + next_free(n_val - len(reserved))
    return [f"{i:04d}" for i in sorted(train)], [f"{i:04d}" for i in sorted(val)]


def make_synthetic_dataset(
    out_dir: str | os.PathLike,
    *,
    n_train: int,
    n_val: int,
    size: int = 64,
    seed: int = 0,
    ids_val: Sequence[str | int] | None = None,
) -> tuple[Path, Path]:
    """Write a synthetic dataset as ``out_dir/train`` and ``out_dir/val``.

    Each split holds ``<id>_sat.jpg`` tiles (JPEG quality 95) and ``<id>_mask.png`` masks in
    palette colours only. Ids are chosen by :func:`split_ids`, so validation contains the tracked
    tiles 0008, 0097 and 0107 whenever ``n_val`` allows.

    Args:
        out_dir: created if needed; ``train`` and ``val`` inside must not hold other tiles, and a file
            this dataset would write is replaced only when fcn wrote it as data.
        n_train, n_val: tiles per split.
        size: tile side in pixels.
        seed: the same seed gives byte-identical files.
        ids_val: ids that must be in validation (default: the tracked ids).

    Returns:
        ``(train_dir, val_dir)``.

    Raises:
        InputError: a split folder already holds tiles that this dataset would not write, or a file of its
            names that fcn did not write as data (nothing is written then).
    """
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    out_dir = Path(out_dir)
    splits = {split: (out_dir / split, ids) for split, ids in zip(("train", "val"), split_ids(n_train, n_val, ids_val))}
    for folder, ids in splits.values():  # every split checked before anything is written
        _check_free(folder, ids)
    for folder, ids in splits.values():
        folder.mkdir(parents=True, exist_ok=True)
        for tile_id in ids:
            rgb, classes = _make_synthetic_tile(seed, int(tile_id), size)
            write_image_atomic(folder / f"{tile_id}_sat.jpg", rgb, DATASET_KIND, quality=95)
            write_mask(folder / f"{tile_id}_mask.png", classes, DATASET_KIND)  # ground truth: predict keeps off it
    return splits["train"][0], splits["val"][0]


def _check_free(folder: Path, ids: Sequence[str]) -> None:
    """Refuse a split folder holding tiles of another dataset, or a file of ours that fcn did not write as data."""
    expected = {f"{i}_sat.jpg" for i in ids} | {f"{i}_mask.png" for i in ids}
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.name.endswith(("_sat.jpg", "_sat.jpeg", "_sat.png", "_mask.png")) and path.name not in expected:
            raise InputError(f"{path}: not part of this synthetic dataset; use an empty output folder")
    for name in sorted(expected):
        check_dataset_replaceable(folder / name)
