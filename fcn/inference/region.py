"""Region outputs of ``fcn-predict`` over GeoTIFF scenes: the mosaic, the region's class totals, their checks.

* ``--mosaic FILE.vrt``: one raster over every scene's class map (:func:`_write_mosaic`);
* ``--stats``: the per-scene rows are followed by the region's totals (:func:`region_totals`);
* ``--polygons FILE.gpkg``: :mod:`fcn.inference.polygons`.

They are built from the class maps on disk after the run, so the masks a resumed run skipped count
as much as the ones it wrote. No TensorFlow here; rasterio (and pyogrio for polygons) lazily.
"""

from __future__ import annotations

import logging
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError, first_line
from fcn.core.files import is_signature, project_signature, write_text_atomic
from fcn.core.images import read_mask
from fcn.core.mark import check_replaceable
from fcn.core.palette import NUM_CLASSES
from fcn.core.paths import check_not_an_input
from fcn.inference.areas import M2_PER_HECTARE, ClassArea, class_areas, count_classes
from fcn.inference.geo import NODATA_CLASS, pixel_area, require_rasterio
from fcn.inference.geo_writer import palette_colormap
from fcn.inference.polygons import require_pyogrio, write_polygons

log = logging.getLogger(__name__)

REGION_INPUT = "(all)"  # the ``input`` of the region's total rows in the --stats table
MOSAIC_SUFFIX = ".vrt"
POLYGONS_SUFFIX = ".gpkg"


@dataclass(frozen=True)
class RegionOutputs:
    """``--mosaic``, ``--polygons``, ``--min-area`` and ``--simplify`` (None: not asked for)."""

    mosaic: Path | None = None
    polygons: Path | None = None
    min_area_m2: float = 0.0
    simplify_m: float | None = None

    @property
    def wanted(self) -> bool:
        return self.mosaic is not None or self.polygons is not None

    def check(self, model: Path | None, overwrite: bool) -> None:
        """Refuse wrong suffixes, folders, inputs and files fcn did not write, before anything runs.

        Raises:
            InputError: one line naming the option and the file.
        """
        if self.polygons is None and (self.min_area_m2 or self.simplify_m is not None):
            raise InputError("--min-area and --simplify shape the polygons: they need --polygons FILE.gpkg")
        for path, option, suffix, ours in (
            (self.mosaic, "--mosaic", MOSAIC_SUFFIX, _is_mosaic_file),
            (self.polygons, "--polygons", POLYGONS_SUFFIX, _is_polygons_file),
        ):
            if path is None:
                continue
            if Path(path).suffix.lower() != suffix:
                raise InputError(f"{path}: {option} writes a {suffix} file")
            if Path(path).is_dir():
                raise InputError(f"{path}: {option} is a folder; give a {suffix} file")
            check_not_an_input([path], model=model)
            check_replaceable(path, overwrite=overwrite, option=option, ours=ours)
        if self.polygons is not None:
            require_pyogrio(self.polygons)


# ---------------------------------------------------------------- the region's totals


def region_totals(rows: Sequence[ClassArea]) -> list[ClassArea]:
    """Per class, the rows of every input summed: pixels, share of the valid pixels, m² and ha.

    The area is None when any input has no ground size (a plain image without ``--input-gsd``).
    """
    classes = sorted({row.class_index for row in rows})
    counts = np.zeros(max(classes, default=-1) + 1, dtype=np.int64)
    areas = np.zeros_like(counts, dtype=np.float64)
    for row in rows:
        counts[row.class_index] += row.pixels
        areas[row.class_index] += row.area_m2 or 0.0
    known = all(row.area_m2 is not None for row in rows)
    totals = class_areas(REGION_INPUT, counts, None)
    for row in totals:
        if known:
            row.area_m2 = float(areas[row.class_index])
            row.area_ha = row.area_m2 / M2_PER_HECTARE
    return totals


def mask_class_areas(path: Path, input_name: str, pixel_area_m2: float | None) -> list[ClassArea]:
    """The class areas of a mask already on disk (a resumed run's skipped input): PNG palette or GeoTIFF."""
    if path.suffix.lower() in (".tif", ".tiff"):
        rasterio = require_rasterio(path)
        counts = np.zeros(NUM_CLASSES, dtype=np.int64)
        with rasterio.open(path) as dataset:
            for _, window in dataset.block_windows(1):
                counts += count_classes(dataset.read(1, window=window))
            area = pixel_area(dataset.crs, dataset.transform)
        return class_areas(input_name, counts, area if area is not None else pixel_area_m2)

    return class_areas(input_name, count_classes(read_mask(path)), pixel_area_m2)


# ---------------------------------------------------------------- the mosaic


@dataclass(frozen=True)
class _Mask:
    path: Path
    crs: object
    transform: object
    width: int
    height: int
    block: tuple[int, int]


def _open_masks(masks: Sequence[Path]) -> list[_Mask]:
    """The georeferenced masks sharing the first one's CRS; the others are left out with a warning."""
    rasterio = require_rasterio()
    opened: list[_Mask] = []
    for path in masks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as dataset:
                mask = _Mask(
                    path, dataset.crs, dataset.transform, dataset.width, dataset.height, dataset.block_shapes[0]
                )
        if mask.crs is None or not mask.transform.is_rectilinear:
            log.warning("warning: %s: no CRS, or a rotated grid; left out of the region outputs", path)
        elif opened and mask.crs != opened[0].crs:
            log.warning(
                "warning: %s: CRS %s, not the region's %s; left out of the region outputs",
                path,
                mask.crs,
                opened[0].crs,
            )
        else:
            opened.append(mask)
    return opened


def write_region_outputs(region: RegionOutputs, scene_jobs: Sequence) -> Iterator[str]:
    """Write the mosaic and the polygons of the scenes' class maps; yields one line for each file.

    Args:
        region: what to write.
        scene_jobs: the scene jobs whose masks count (those that did not fail).
    """
    if not region.wanted:
        return
    masks = _open_masks([job.mask for job in scene_jobs if job.mask.is_file()])
    if not masks:
        raise InputError(f"{region.mosaic or region.polygons}: no georeferenced class map for the region outputs")
    count = len(masks)
    scenes = f"{count} scene{'s' * (count != 1)}"
    if region.mosaic is not None:
        write_text_atomic(region.mosaic, _vrt_text(Path(region.mosaic), masks))
        yield f"mosaic of {scenes} in {region.mosaic}"
    if region.polygons is not None:
        names = {job.mask: job.image.name for job in scene_jobs}
        polygons = write_polygons(
            region.polygons,
            [mask.path for mask in masks],
            scene_names=names,
            min_area_m2=region.min_area_m2,
            simplify=region.simplify_m,
        )
        yield f"{polygons} polygon{'s' * (polygons != 1)} of {scenes} in {region.polygons}"


def _write_mosaic(path: str | os.PathLike, masks: Sequence[Path]) -> int:
    """Write a GDAL VRT that shows every mask as one class-map raster, with their CRS and the palette.

    The grid has the finest pixel size of the masks and covers them all; overlapping scenes show the
    last one's valid pixels. The masks are referenced relative to the VRT's folder, so the mosaic
    moves with the folder that holds both.

    Returns:
        The number of masks in the mosaic.

    Raises:
        InputError: no georeferenced mask, or the file cannot be written.
    """
    # A VRT is a few lines of XML that reference the masks, no pixel copied: written here because GDAL's
    # own BuildVRT needs its Python bindings (osgeo), which rasterio does not expose or install.
    path = Path(path)
    opened = _open_masks(masks)
    if not opened:
        raise InputError(f"{path}: --mosaic has no georeferenced class map to show")
    write_text_atomic(path, _vrt_text(path, opened))
    return len(opened)


def _vrt_text(path: Path, masks: Sequence[_Mask]) -> str:
    res_x = min(abs(m.transform.a) for m in masks)
    res_y = min(abs(m.transform.e) for m in masks)
    left = min(min(m.transform.c, m.transform.c + m.width * m.transform.a) for m in masks)
    right = max(max(m.transform.c, m.transform.c + m.width * m.transform.a) for m in masks)
    top = max(max(m.transform.f, m.transform.f + m.height * m.transform.e) for m in masks)
    bottom = min(min(m.transform.f, m.transform.f + m.height * m.transform.e) for m in masks)
    width, height = round((right - left) / res_x), round((top - bottom) / res_y)
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = masks[0].crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in (left, res_x, 0, top, 0, -res_y))
    metadata = ET.SubElement(root, "Metadata")
    ET.SubElement(metadata, "MDI", key="written_by").text = project_signature()
    band = ET.SubElement(root, "VRTRasterBand", dataType="Byte", band="1")
    ET.SubElement(band, "NoDataValue").text = str(NODATA_CLASS)
    ET.SubElement(band, "ColorInterp").text = "Palette"
    _colour_table(band)
    for mask in masks:
        _source(band, path, mask, (left, top, res_x, res_y))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _colour_table(band: ET.Element) -> None:
    colours = palette_colormap()
    table = ET.SubElement(band, "ColorTable")
    for index in range(256):
        red, green, blue, alpha = colours.get(index, (0, 0, 0, 0))
        ET.SubElement(table, "Entry", c1=str(red), c2=str(green), c3=str(blue), c4=str(alpha))


def _source(band: ET.Element, vrt: Path, mask: _Mask, grid: tuple[float, float, float, float]) -> None:
    left, top, res_x, res_y = grid
    t = mask.transform
    source = ET.SubElement(band, "ComplexSource")  # ComplexSource: its NODATA pixels let the scenes below show
    relative = os.path.relpath(mask.path.absolute(), vrt.absolute().parent)
    ET.SubElement(source, "SourceFilename", relativeToVRT="1").text = Path(relative).as_posix()
    ET.SubElement(source, "SourceBand").text = "1"
    block_y, block_x = mask.block
    ET.SubElement(
        source,
        "SourceProperties",
        RasterXSize=str(mask.width),
        RasterYSize=str(mask.height),
        DataType="Byte",
        BlockXSize=str(block_x),
        BlockYSize=str(block_y),
    )
    ET.SubElement(source, "SrcRect", xOff="0", yOff="0", xSize=str(mask.width), ySize=str(mask.height))
    x_off = (min(t.c, t.c + mask.width * t.a) - left) / res_x
    y_off = (top - max(t.f, t.f + mask.height * t.e)) / res_y
    x_size, y_size = mask.width * abs(t.a) / res_x, mask.height * abs(t.e) / res_y
    ET.SubElement(
        source,
        "DstRect",
        **{k: f"{v:.10g}" for k, v in zip(("xOff", "yOff", "xSize", "ySize"), (x_off, y_off, x_size, y_size))},
    )
    ET.SubElement(source, "NODATA").text = str(NODATA_CLASS)


def _is_mosaic_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a VRT that :func:`_write_mosaic` wrote (its ``written_by`` metadata)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return False
    return any(is_signature(item.text) for item in root.iterfind("./Metadata/MDI[@key='written_by']"))


def _is_polygons_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a GeoPackage :func:`fcn.inference.polygons.write_polygons` wrote (its layer metadata)."""
    try:
        import pyogrio

        info = pyogrio.read_info(path)
    except Exception as err:
        log.debug("%s: %s", path, first_line(err))
        return False
    return is_signature((info.get("layer_metadata") or {}).get("written_by"))
