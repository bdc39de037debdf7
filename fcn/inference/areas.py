"""Land-cover statistics of predicted class maps: pixels, share and area per class (``--stats``).

One table for every input of a prediction run, written as CSV (one row per input and class) or JSON.
Nodata pixels (class 255 in GeoTIFF class maps) are not counted: fractions are of the valid pixels.
Areas need the ground size of a pixel: a projected CRS gives it for GeoTIFF scenes, ``--input-gsd``
for plain images; without either they are left empty (CSV) or null (JSON).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError
from fcn.core.files import WriteError, write_text_atomic
from fcn.core.palette import CLASS_NAMES, NUM_CLASSES

STATS_SUFFIXES = (".csv", ".json")
STATS_FIELDS = ("input", "class_index", "name", "pixels", "fraction", "area_m2", "area_ha")
M2_PER_HECTARE = 10_000


@dataclass
class ClassArea:
    """One class of one input.

    Attributes:
        input: the input's file name.
        class_index, name: the class.
        pixels: pixels predicted as the class (nodata excluded).
        fraction: ``pixels`` over the input's valid pixels.
        area_m2, area_ha: the ground area, None without a pixel size.
    """

    input: str
    class_index: int
    name: str
    pixels: int
    fraction: float
    area_m2: float | None
    area_ha: float | None


def count_classes(class_map: np.ndarray) -> np.ndarray:
    """(7,) int64 pixels per class of a class map (other values, e.g. nodata 255, are not counted)."""
    return np.bincount(np.asarray(class_map, dtype=np.uint8).ravel(), minlength=256)[:NUM_CLASSES].astype(np.int64)


def class_areas(input_name: str, class_counts: Sequence[int], pixel_area_m2: float | None) -> list[ClassArea]:
    """Per class: pixels, fraction of the valid (non-nodata) pixels, m² and hectares.

    Args:
        input_name: the input's name in the table.
        class_counts: pixels per class, nodata excluded (:func:`count_classes`).
        pixel_area_m2: ground area of one pixel (None: no areas).

    Returns:
        One :class:`ClassArea` per class, in palette order.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    valid = int(counts.sum())
    rows = []
    for index, pixels in enumerate(counts.tolist()):
        area = pixels * pixel_area_m2 if pixel_area_m2 is not None else None
        rows.append(
            ClassArea(
                input=input_name,
                class_index=index,
                name=CLASS_NAMES[index],
                pixels=pixels,
                fraction=pixels / valid if valid else 0.0,
                area_m2=area,
                area_ha=area / M2_PER_HECTARE if area is not None else None,
            )
        )
    return rows


def check_stats_path(path: str | os.PathLike) -> Path:
    """``--stats``: a ``.csv`` or ``.json`` file name (its folder is created with the other outputs).

    Raises:
        InputError: another suffix, or an existing folder of that name.
    """
    path = Path(path)
    if path.suffix.lower() not in STATS_SUFFIXES:
        raise InputError(f"{path}: --stats writes a .csv or .json file")
    if path.is_dir():
        raise InputError(f"{path}: --stats is a folder; give a .csv or .json file")
    return path


def _format_stats(areas: Sequence[ClassArea], json_format: bool = False) -> str:
    """The table as CSV text (areas empty when unknown), or as a JSON list of objects (null)."""
    if json_format:
        return json.dumps([asdict(row) for row in areas], indent=2) + "\n"
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(STATS_FIELDS)
    for row in areas:
        out.writerow(
            [
                row.input,
                row.class_index,
                row.name,
                row.pixels,
                f"{row.fraction:.6f}",
                "" if row.area_m2 is None else f"{row.area_m2:.2f}",
                "" if row.area_ha is None else f"{row.area_ha:.4f}",
            ]
        )
    return buffer.getvalue()


def is_stats_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a table :func:`write_stats` wrote (its CSV header, or JSON rows of its fields)."""
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        if path.suffix.lower() != ".json":
            return handle.readline().strip() == ",".join(STATS_FIELDS)
        rows = json.load(handle)
    return isinstance(rows, list) and all(isinstance(r, dict) and tuple(r) == STATS_FIELDS for r in rows)


def write_stats(path: str | os.PathLike, areas: Sequence[ClassArea]) -> None:
    """Write the table atomically: JSON for a ``.json`` path, CSV otherwise.

    Raises:
        InputError: the file cannot be written.
    """
    path = Path(path)
    try:
        write_text_atomic(path, _format_stats(areas, json_format=path.suffix.lower() == ".json"))
    except WriteError:
        raise  # names the file already; a full disk stays a DiskFullError
    except OSError as err:
        raise InputError(f"{path}: cannot write statistics ({err.strerror or err})") from None
