"""Reading and writing tiles and masks on disk, with errors that name the file."""

from __future__ import annotations

import io
import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from fcn.core.errors import InputError
from fcn.core.files import project_signature, write_bytes_atomic
from fcn.core.palette import class_to_rgb, rgb_to_class

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# The course's file naming: <id>_sat.jpg tiles and <id>_mask.png masks.
SAT_SUFFIX = "_sat"
MASK_SUFFIX = "_mask"


# Pillow's modes for 16-bit (and 32-bit integer) single-band images.
_DEEP_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB; grayscale is expanded and alpha dropped.

    16-bit images keep their high byte (value >> 8), as TensorFlow's decoder does for training,
    instead of Pillow's default conversion, which saturates them to white.

    Raises:
        InputError: the file is missing or cannot be decoded, holds floating-point pixels, or has more
            pixels than Pillow's decompression-bomb limit.
    """
    Image = _pillow()
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in _DEEP_GREY_MODES:
                grey = (np.clip(np.asarray(img), 0, 65535).astype(np.uint16) >> 8).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=-1)
            if img.mode == "F":
                raise InputError(f"{path}: floating-point pixels; convert the image to 8 or 16 bits per channel")
            if img.mode != "RGB":
                img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Image.DecompressionBombError:
        raise InputError(_too_many_pixels(path)) from None
    except (OSError, ValueError, SyntaxError) as err:  # UnidentifiedImageError is an OSError
        raise InputError(f"{path}: cannot read image ({_reason(err)})") from None


def _pillow():
    """``PIL.Image``, with its decompression-bomb warning silenced.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (twice, and decodes the image) and refuses above
    twice that (:func:`_too_many_pixels` is then the one line). Images between the two are large
    orthophotos more often than bombs: they are read, and the commands' memory estimate guards them.
    The filter is set at every call, as other code (a test runner) may reset the filters;
    ``warnings.catch_warnings`` would not do, as it is not thread-safe and images are read in threads.
    """
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    return Image


def _too_many_pixels(path: str | os.PathLike) -> str:
    """The one-line refusal of an image over Pillow's pixel limit."""
    return (
        f"{path}: more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, Pillow's limit against decompression bombs; "
        "cut it into tiles, or save it as a .tif to predict it window by window"
    )


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a palette mask and decode it to (H, W) uint8 class indices (course rule)."""
    return rgb_to_class(read_rgb(path))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image from its header, without decoding the pixels.

    Raises:
        InputError: missing, unreadable, or over Pillow's pixel limit.
    """
    Image = _pillow()
    try:
        with Image.open(path) as img:
            width, height = img.size
            return height, width
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Image.DecompressionBombError:
        raise InputError(_too_many_pixels(path)) from None
    except (OSError, ValueError, SyntaxError) as err:
        raise InputError(f"{path}: cannot read image ({_reason(err)})") from None


def _reason(err: Exception) -> str:
    if err.__class__.__name__ == "UnidentifiedImageError":
        return "not an image file, or a format Pillow cannot read"  # its own text repeats the path
    return f"{err.__class__.__name__}: {err}"


def _encode_image(rgb: np.ndarray, suffix: str, kind: str | None = None, **save_kwargs) -> bytes:
    """An RGB array encoded in memory in the format of ``suffix``, signed as the project's.

    PNGs get a ``Software`` text chunk and JPEGs a comment (:func:`fcn.core.files.project_signature`),
    the mark that lets a later run replace them; ``kind`` ``dataset`` marks data (tiles, ground truth),
    which predictions never replace.
    """
    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None:
        raise ValueError(f"no image format for {suffix!r}")
    signature = project_signature(kind)
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", signature)
        save_kwargs.setdefault("pnginfo", info)
    elif fmt == "JPEG":
        save_kwargs.setdefault("comment", signature)
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buffer, fmt, **save_kwargs)
    return buffer.getvalue()


def write_image_atomic(path: str | os.PathLike, rgb: np.ndarray, kind: str | None = None, **save_kwargs) -> None:
    """Write an RGB image through the checked writer (encoded in memory, then temp file + fsync + check + rename).

    Encoding in memory first matters: Pillow's JPEG writer does not raise on a short write to a file.

    Raises:
        WriteError: the file cannot be written (:class:`fcn.core.files.DiskFullError` on a full disk).
    """
    path = Path(path)
    write_bytes_atomic(path, _encode_image(rgb, path.suffix, kind, **save_kwargs))


def write_mask(path: str | os.PathLike, class_map: np.ndarray, kind: str | None = None) -> None:
    """Write a (H, W) class map as a palette-coloured PNG, signed; ``kind`` ``dataset`` marks ground truth."""
    write_image_atomic(path, class_to_rgb(class_map), kind)


_TRAILERS = {".png": b"IEND\xaeB`\x82", ".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9"}


def looks_whole(path: str | os.PathLike) -> bool:
    """Whether a PNG or JPEG file ends as a whole one does (IEND chunk / end-of-image marker).

    A cheap check (the last bytes only) of files another run wrote, e.g. the tiles a resumed
    conversion counts as done: a write cut off by a full disk or a crash fails it. Other suffixes: True.
    """
    path = Path(path)
    trailer = _TRAILERS.get(path.suffix.lower())
    if trailer is None:
        return path.is_file()
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64))
            return trailer in handle.read()
    except OSError:
        return False


# The one rule every command uses to tell tiles and masks apart by name (any case; any character in
# the id, a newline included).
_PAIR_NAME = re.compile(rf"(?P<id>.+)(?:(?P<sat>{SAT_SUFFIX}\.(?:jpg|jpeg|png))|{MASK_SUFFIX}\.png)", re.I | re.S)


def pair_role(name: str) -> tuple[str, str] | None:
    """``("sat", id)`` for ``<id>_sat.jpg|.jpeg|.png``, ``("mask", id)`` for ``<id>_mask.png``, else None."""
    match = _PAIR_NAME.fullmatch(name)
    if match is None:
        return None
    return ("sat" if match["sat"] else "mask"), match["id"]


def log_skipped_names(folder: str | os.PathLike, names: list[str]) -> None:
    """Warn, naming them, about images of ``folder`` that :func:`pair_role` names neither tile nor mask."""
    if names:
        shown = ", ".join(map(repr, names[:5])) + (", ..." if len(names) > 5 else "")
        logger.warning(
            "%s: skipped %d image(s) named neither <id>_sat.jpg nor <id>_mask.png: %s", folder, len(names), shown
        )


def tile_id(path: str | os.PathLike) -> str:
    """The id a tile or mask file stands for: ``0001_sat.jpg``, ``0001_mask.png`` and ``0001.png`` all give ``0001``."""
    stem = Path(path).stem
    for suffix in (SAT_SUFFIX, MASK_SUFFIX):
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):  # any case, as pair_role
            return stem[: -len(suffix)]
    return stem


def _list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (.jpg, .jpeg, .png) directly in ``folder``, sorted by name (hidden files, such as the
    temporary files of a killed write, left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    try:
        entries = list(folder.iterdir())
    except OSError as err:
        raise InputError(f"{folder}: folder cannot be read ({err.strerror or err})") from None
    return sorted(
        p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
