"""Reading and writing tiles and masks on disk, with errors that name the file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import InputError
from .palette import class_to_rgb, rgb_to_class

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# The course's file naming: <id>_sat.jpg tiles and <id>_mask.png masks.
SAT_SUFFIX = "_sat"
MASK_SUFFIX = "_mask"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask is process-wide, so probing it later could race with other threads.
_UMASK = _read_umask()


def make_like_new_file(path: str | os.PathLike) -> None:
    """Give a temporary file (``tempfile.mkstemp`` makes them 0600) the mode a new file would get."""
    os.chmod(path, 0o666 & ~_UMASK)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB; grayscale is expanded and alpha dropped.

    Raises:
        InputError: the file is missing or cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
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

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(tmp, **save_kwargs)
        make_like_new_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_mask(path: str | os.PathLike, class_map: np.ndarray) -> None:
    """Write a (H, W) class map as a palette-coloured PNG."""
    write_image_atomic(path, class_to_rgb(class_map))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (.jpg, .jpeg, .png) directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
