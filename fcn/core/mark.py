"""What an output may replace: files the project wrote carry its mark; anything else needs ``--overwrite``.

:func:`carries_mark` reads the mark (an image's software tag, ONNX metadata, a JSON sidecar) and
:func:`check_replaceable` refuses to replace a file without it. No TensorFlow here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from fcn.core.errors import InputError
from fcn.core.files import is_signature

_OVERWRITE_HINT = "--overwrite replaces it"
_ONNX_MARK = b"fcn_metadata_version"  # export's key in the ONNX metadata_props
_ONNX_TAIL_BYTES = 1 << 20  # metadata_props are serialised after the graph: near the end


def carries_mark(path: str | os.PathLike) -> bool:
    """Whether the file (or SavedModel directory) at ``path`` was written by this project.

    PNG: ``Software`` text chunk; JPEG: comment; TIFF: software tag; ONNX: fcn metadata; a
    directory, ``.tflite`` or any other file: a sidecar ``<path>.json`` (or a SavedModel's
    ``assets.extra/fcn.json``) with fcn metadata; ``.json``: fcn metadata inside.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if path.is_dir():
            return _has_fcn_json(path.with_name(path.name + ".json")) or _has_fcn_json(
                path / "assets.extra" / "fcn.json"
            )
        if suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            return _image_signed(path)
        if suffix == ".onnx":
            return _onnx_signed(path)
        if suffix == ".json":
            return _has_fcn_json(path)
        return _has_fcn_json(path.with_name(path.name + ".json"))
    except OSError:
        return False


def _image_signed(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.format == "PNG":
                return is_signature(img.info.get("Software"))
            if img.format == "JPEG":
                return is_signature(img.info.get("comment"))
            if img.format == "TIFF":
                return is_signature(img.tag_v2.get(305))  # 305: Software
    except Exception:  # not an image Pillow reads (e.g. a BigTIFF it refuses): ask GDAL
        pass
    if path.suffix.lower() in (".tif", ".tiff"):
        return _gdal_signed(path)
    return False


def _gdal_signed(path: Path) -> bool:
    try:
        import rasterio
    except ImportError:
        return False
    try:
        with rasterio.open(path) as dataset:
            return is_signature(dataset.tags().get("TIFFTAG_SOFTWARE"))
    except Exception:
        return False


def _onnx_signed(path: Path) -> bool:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - _ONNX_TAIL_BYTES))
        if _ONNX_MARK in handle.read():
            return True
        handle.seek(0)
        while chunk := handle.read(16 << 20):
            if _ONNX_MARK in chunk:
                return True
    return False


def _has_fcn_json(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size > (16 << 20):
        return False
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if isinstance(content, dict):
        return "fcn_metadata_version" in content or is_signature(content.get("written_by"))
    return False


def check_replaceable(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    option: str = "",
    ours: Callable[[Path], bool] | None = None,
) -> None:
    """Refuse to replace an existing file the project did not write (unless ``overwrite``).

    Args:
        path: an output about to be written.
        overwrite: the command's ``--overwrite``.
        option: the option that named it (for the message), e.g. ``--output``.
        ours: a recogniser for formats without an embedded mark (e.g. the statistics table).

    Raises:
        InputError: ``path`` exists, is not the project's, and ``overwrite`` is False.
    """
    path = Path(path)
    if overwrite or not (path.exists() or path.is_symlink()):
        return
    if carries_mark(path) or (ours is not None and _safe(ours, path)):
        return
    what = f"{option} " if option else ""
    raise InputError(f"{path}: {what}exists and was not written by fcn; refusing to replace it ({_OVERWRITE_HINT})")


def _safe(check: Callable[[Path], bool], path: Path) -> bool:
    try:
        return bool(check(path))
    except Exception:
        return False
