"""What an output may replace: files the project wrote carry its mark; anything else needs ``--overwrite``.

:func:`carries_mark` reads the mark (an image's software tag, ONNX metadata, a JSON sidecar) and
:func:`check_replaceable` refuses to replace a file without it, and data fcn wrote (a mark of kind
``dataset``: the tiles and ground truth of ``--demo`` and ``prepare_deepglobe``), which is no result to
redo; :func:`check_dataset_replaceable` is its inverse, for the writers of such data. No TensorFlow here.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from fcn.core.errors import InputError
from fcn.core.files import DATASET_KIND, is_signature, signature_kind

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


def image_mark(path: str | os.PathLike) -> str | None:
    """The mark inside an image (PNG ``Software`` text, JPEG comment, TIFF software tag), or None."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            value = {"PNG": img.info.get("Software"), "JPEG": img.info.get("comment")}.get(img.format)
            if img.format == "TIFF":
                value = img.tag_v2.get(305)  # 305: Software
            if value is not None or img.format in ("PNG", "JPEG", "TIFF"):
                return _text(value)
    except Exception:  # not an image Pillow reads (e.g. a BigTIFF it refuses): ask GDAL
        pass
    if path.suffix.lower() in (".tif", ".tiff"):
        return _gdal_mark(path)
    return None


def _text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    return value if isinstance(value, str) else None


def _image_signed(path: Path) -> bool:
    return is_signature(image_mark(path))


def _gdal_mark(path: Path) -> str | None:
    try:
        import rasterio
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a mask without georeference
            with rasterio.open(path) as dataset:
                return _text(dataset.tags().get("TIFFTAG_SOFTWARE"))
    except Exception:
        return None


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
    """Refuse to replace an existing file the project did not write, or wrote as data (unless ``overwrite``).

    Args:
        path: an output about to be written.
        overwrite: the command's ``--overwrite``.
        option: the option that named it (for the message), e.g. ``--output``.
        ours: a recogniser for formats without an embedded mark (e.g. the statistics table).

    Raises:
        InputError: ``path`` exists, is not the project's or is its data, and ``overwrite`` is False.
    """
    path = Path(path)
    if overwrite or not (path.exists() or path.is_symlink()):
        return
    what = f"{option} " if option else ""
    if _is_dataset_file(path):
        raise InputError(
            f"{path}: {what}exists and is data fcn wrote (a tile or ground-truth mask of --demo or "
            f"prepare_deepglobe), not a prediction; refusing to replace it ({_OVERWRITE_HINT})"
        )
    if carries_mark(path) or (ours is not None and _safe(ours, path)):
        return
    raise InputError(f"{path}: {what}exists and was not written by fcn; refusing to replace it ({_OVERWRITE_HINT})")


def _is_dataset_file(path: Path) -> bool:
    """Whether ``path`` is an image whose mark says ``dataset`` (:data:`fcn.core.files.DATASET_KIND`)."""
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        return False
    try:
        return signature_kind(image_mark(path)) == DATASET_KIND
    except OSError:
        return False


def check_dataset_replaceable(path: str | os.PathLike) -> None:
    """Refuse to replace an existing file that fcn did not write as data (a tile or ground-truth mask).

    Raises:
        InputError: ``path`` exists and is not an image marked ``dataset`` (a user's file, or a prediction).
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not (path.is_file() and _is_dataset_file(path))):
        raise InputError(
            f"{path}: exists and is not a tile or mask fcn wrote as data; refusing to replace it "
            "(use an empty output folder)"
        )


def _safe(check: Callable[[Path], bool], path: Path) -> bool:
    try:
        return bool(check(path))
    except Exception:
        return False
