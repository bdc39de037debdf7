"""Reading and writing tiles and masks on disk, with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError
from fcn.core.files import atomic_path
from fcn.core.palette import class_to_rgb, rgb_to_class

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
        InputError: the file is missing or cannot be decoded, or holds floating-point pixels.
    """
    from PIL import Image, UnidentifiedImageError

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
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise InputError(f"{path}: cannot read image ({_reason(err)})") from None


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a palette mask and decode it to (H, W) uint8 class indices (course rule)."""
    return rgb_to_class(read_rgb(path))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image from its header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
            return height, width
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise InputError(f"{path}: cannot read image ({_reason(err)})") from None


def _reason(err: Exception) -> str:
    if err.__class__.__name__ == "UnidentifiedImageError":
        return "not an image file, or a format Pillow cannot read"  # its own text repeats the path
    return f"{err.__class__.__name__}: {err}"


def write_image_atomic(path: str | os.PathLike, rgb: np.ndarray, **save_kwargs) -> None:
    """Write an RGB image so that a reader never sees a half-written file (temp file + rename)."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(tmp, **save_kwargs)


def write_mask(path: str | os.PathLike, class_map: np.ndarray) -> None:
    """Write a (H, W) class map as a palette-coloured PNG."""
    write_image_atomic(path, class_to_rgb(class_map))


def tile_id(path: str | os.PathLike) -> str:
    """The id a tile or mask file stands for: ``0001_sat.jpg``, ``0001_mask.png`` and ``0001.png`` all give ``0001``."""
    stem = Path(path).stem
    for suffix in (SAT_SUFFIX, MASK_SUFFIX):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (.jpg, .jpeg, .png) directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
