"""The scenes of bench/geotiff_scale.py: DeepGlobe tiles as GeoTIFFs, and mosaics of their 8 flips and rotations.

The ``fcn`` imports are inside the functions: the script puts the repository root on ``sys.path`` first.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

DEEPGLOBE_SIDE = 2448
UTM_33N = "EPSG:32633"


def dihedral_variants(tile: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/rotations of a square tile."""
    variants = []
    for k in range(4):
        rotated = np.rot90(tile, k)
        variants += [rotated, rotated[:, ::-1]]
    return variants


def build_mosaic(path: Path, side: int, tiles: list[np.ndarray], pixel_size: float, *, seed: int = 0) -> None:
    """Write a side x side RGB GeoTIFF mosaic of flipped/rotated tiles, one band of tile rows at a time."""
    import rasterio
    from rasterio.transform import from_origin

    variants = [v for tile in tiles for v in dihedral_variants(tile)]
    rng = np.random.default_rng(seed)
    count = -(-side // DEEPGLOBE_SIDE)
    choice = rng.integers(0, len(variants), (count, count))
    profile = dict(
        driver="GTiff",
        height=side,
        width=side,
        count=3,
        dtype="uint8",
        crs=UTM_33N,
        transform=from_origin(500_000, 4_000_000, pixel_size, pixel_size),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="jpeg",
        jpeg_quality=90,
        photometric="ycbcr",
        bigtiff="IF_SAFER",
    )
    tmp = path.with_suffix(".partial.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r in range(count):
            top = r * DEEPGLOBE_SIDE
            rows = min(DEEPGLOBE_SIDE, side - top)
            band = np.concatenate([variants[choice[r, c]][:rows] for c in range(count)], axis=1)[:, :side]
            dst.write(np.ascontiguousarray(band.transpose(2, 0, 1)), window=rasterio.windows.Window(0, top, side, rows))
    os.replace(tmp, path)


def write_tile_geotiff(path: Path, rgb: np.ndarray, pixel_size: float) -> None:
    """A decoded tile as a lossless 0.5 m UTM GeoTIFF (the very pixels the JPEG path sees)."""
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=rgb.shape[0],
        width=rgb.shape[1],
        count=3,
        dtype="uint8",
        crs=UTM_33N,
        transform=from_origin(500_000, 4_000_000, pixel_size, pixel_size),
        tiled=True,
        compress="deflate",
    ) as dst:
        dst.write(rgb.transpose(2, 0, 1))


def build_scenes(deepglobe: Path, scratch: Path, sizes: list[int], pixel_size: float) -> dict[int, Path]:
    """``scratch/mosaic_SIDE.tif`` for every side, built from the DeepGlobe tiles unless already there."""
    from fcn.core.images import read_rgb

    tiles = [read_rgb(p) for p in sorted(Path(deepglobe).glob("*_sat.jpg"))]
    scenes = {}
    for side in sizes:
        path = scratch / f"mosaic_{side}.tif"
        if not path.exists():
            start = time.perf_counter()
            build_mosaic(path, side, tiles, pixel_size)
            print(
                f"built {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.0f} s",
                flush=True,
            )
        scenes[side] = path
    return scenes


def region_geotiff(scene_path: Path, region: int, scratch: Path, pixel_size: float) -> Path:
    """The scene's top-left ``region`` x ``region`` pixels as their own GeoTIFF (kept between runs)."""
    region_tif = scratch / f"region_{region}.tif"
    if not region_tif.exists():
        from fcn.inference import geo

        with geo.open_scene(scene_path) as scene:
            rgb, _ = scene.read((0, region), (0, region))
        write_tile_geotiff(region_tif, rgb, pixel_size)
    return region_tif
