"""``--polygons FILE.gpkg``: the class maps of a region as land-cover polygons in one GeoPackage layer.

Each class-map GeoTIFF is vectorised by rasterio (:func:`rasterio.features.shapes`, 4-connected
pixels of one class, nodata left out) one band of rows at a time, so memory stays bounded by the
scene's width; a polygon that crosses a band boundary (every 1024 rows) is two polygons. Every
polygon carries ``class_id``, ``class_name``, ``colour`` (``#rrggbb``), ``area_m2`` (its pixels'
ground area, before any simplification: the ``--stats`` area) and ``scene`` (the input's file
name). ``--min-area`` drops smaller polygons and ``--simplify`` simplifies the outlines (shapely,
topology kept). The layer has the scenes' CRS; pyogrio writes it, scene after scene, under a
temporary name that replaces the target when complete.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError
from fcn.core.files import atomic_path, project_signature
from fcn.core.palette import CLASS_NAMES, PALETTE
from fcn.inference.geo import NODATA_CLASS, metres_per_unit, require_rasterio

VECTOR_HINT = "pip install 'fcn[vector]'"
LAYER = "landcover"
BAND_ROWS = 1024  # rows of a class map vectorised at once
FIELDS = ["class_id", "class_name", "colour", "area_m2", "scene"]


def require_pyogrio(path: str | os.PathLike | None = None):
    """The pyogrio and shapely modules.

    Raises:
        InputError: either is not installed.
    """
    try:
        import pyogrio
        import shapely  # noqa: F401
    except ImportError:
        where = f"{path}: " if path is not None else ""
        raise InputError(f"{where}--polygons needs pyogrio and shapely: {VECTOR_HINT}") from None
    return pyogrio


@dataclass
class PolygonTable:
    """The polygons of some rows of a class map: geometries (shapely) and their fields."""

    geometries: list
    class_ids: list[int]
    areas: list[float | None]

    def fields(self, scene: str) -> list[np.ndarray]:
        ids = np.asarray(self.class_ids, dtype=np.int32)
        names = np.asarray([CLASS_NAMES[i] for i in self.class_ids], dtype=object)
        colours = np.asarray(["#{:02x}{:02x}{:02x}".format(*PALETTE[i]) for i in self.class_ids], dtype=object)
        areas = np.asarray([np.nan if a is None else a for a in self.areas], dtype=np.float64)
        return [ids, names, colours, areas, np.asarray([scene] * len(ids), dtype=object)]


def _vectorise(
    classes: np.ndarray, transform, metres: float | None, min_area_m2: float = 0.0, simplify: float | None = None
) -> PolygonTable:
    """Polygons of a (H, W) class map whose pixel (0, 0) lies at ``transform``.

    Args:
        classes: uint8 class indices, nodata 255.
        transform: the affine transform of ``classes``' first row and column.
        metres: metres per CRS unit (None: a geographic CRS; areas are then None and ``min_area_m2`` ignored).
        min_area_m2: polygons of a smaller area are dropped.
        simplify: tolerance in CRS units for shapely's simplify (None: none).
    """
    import shapely
    from rasterio.features import shapes
    from shapely.geometry import shape

    table = PolygonTable([], [], [])
    valid = classes != NODATA_CLASS
    for geometry, value in shapes(classes, mask=valid, connectivity=4, transform=transform):
        polygon = shape(geometry)
        area = polygon.area * metres * metres if metres is not None else None
        if area is not None and area < min_area_m2:
            continue
        if simplify:
            polygon = shapely.simplify(polygon, simplify, preserve_topology=True)
        table.geometries.append(polygon)
        table.class_ids.append(int(value))
        table.areas.append(area)
    return table


def _scene_name(mask: Path, scene_names: dict[Path, str] | None) -> str:
    if scene_names and mask in scene_names:
        return scene_names[mask]
    return mask.name


def write_polygons(
    path: str | os.PathLike,
    masks: Sequence[Path],
    *,
    scene_names: dict[Path, str] | None = None,
    min_area_m2: float = 0.0,
    simplify: float | None = None,
) -> int:
    """Vectorise the class-map GeoTIFFs ``masks`` (one CRS) into the GeoPackage ``path``.

    Args:
        masks: the class maps, all in one CRS (:func:`fcn.inference.region.region_masks`).
        scene_names: the input file name of each mask (default: the mask's name).

    Returns:
        The number of polygons written.

    Raises:
        InputError: pyogrio is missing, a class map cannot be read, or the file cannot be written.
    """
    pyogrio = require_pyogrio(path)
    rasterio = require_rasterio(path)
    path, count = Path(path), 0
    with atomic_path(path) as tmp:
        tmp.unlink()  # the GeoPackage driver creates its own file
        for mask in masks:
            try:
                with rasterio.open(mask) as dataset:
                    count += _write_scene(
                        pyogrio, tmp, dataset, _scene_name(mask, scene_names), count > 0, (min_area_m2, simplify)
                    )
            except InputError:
                raise
            except Exception as err:
                raise InputError(f"{mask}: cannot vectorise ({err.__class__.__name__}: {err})") from None
        if not tmp.exists():  # nothing valid at all: still a layer, empty, in the scenes' CRS
            _write_table(pyogrio, tmp, PolygonTable([], [], []), "", _first_crs(rasterio, masks), False)
    return count


def _write_scene(pyogrio, tmp: Path, dataset, scene: str, append: bool, options: tuple) -> int:
    """Vectorise one open class map band by band and append its polygons; returns how many."""
    from rasterio.windows import Window

    metres = metres_per_unit(dataset.crs)
    written = 0
    for top in range(0, dataset.height, BAND_ROWS):
        window = Window(0, top, dataset.width, min(BAND_ROWS, dataset.height - top))
        classes = dataset.read(1, window=window)
        table = _vectorise(classes, dataset.window_transform(window), metres, *options)
        if table.geometries:
            _write_table(pyogrio, tmp, table, scene, dataset.crs, append or written > 0)
            written += len(table.geometries)
    return written


def _write_table(pyogrio, tmp: Path, table: PolygonTable, scene: str, crs, append: bool) -> None:
    import shapely

    geometry = shapely.to_wkb(np.asarray(table.geometries, dtype=object))
    pyogrio.raw.write(
        str(tmp),
        geometry,
        table.fields(scene),
        FIELDS,
        layer=LAYER,
        driver="GPKG",
        geometry_type="Polygon",
        crs=None if crs is None else crs.to_wkt(),
        append=append,
        layer_metadata=None if append else {"written_by": project_signature()},
    )


def _first_crs(rasterio, masks: Sequence[Path]):
    if not masks:
        return None
    with rasterio.open(masks[0]) as dataset:
        return dataset.crs
