"""Tile/mask pairs on disk: finding them, checking them up front, decoding them.

A data folder holds ``<id>_sat.jpg`` (or ``.jpeg`` / ``.png``) satellite tiles and their
``<id>_mask.png`` palette masks. :func:`find_pairs` matches them by id and validates every file
before any training starts, so that a bad file is reported at once (one line naming it) instead
of crashing the input pipeline hours later. No TensorFlow here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fcn.core.errors import InputError
from fcn.core.folders import scan_folder
from fcn.core.images import IMAGE_SUFFIXES, log_skipped_names, pair_role, read_mask, read_rgb
from fcn.core.images import image_size as read_image_size
from fcn.core.workers import io_workers, ordered_map

# The validation tiles whose masks the course study shows (training tracks them when present).
TRACKED_VAL_IDS = ("0008", "0097", "0107")
# Threads that read file headers and trailers (cheap reads; more than the cores keeps the disk busy).
CHECK_WORKERS = 16


# End-of-file markers. A file cut short (interrupted copy or download, full disk) has a valid
# header, so a header read passes it; the missing trailer gives it away without decoding.
_JPEG_END = b"\xff\xd9"
_PNG_END = b"IEND\xaeB`\x82"
_TAIL_BYTES = 4096


class Pair(NamedTuple):
    """One training example on disk: a satellite tile and its palette mask."""

    id: str
    image_path: Path
    mask_path: Path


def _natural_key(pair_id: str):
    # DeepGlobe ids are not zero-padded (855, 6399, 10901): sort numbers as numbers.
    return (0, int(pair_id), pair_id) if pair_id.isdigit() else (1, 0, pair_id)


def _has_end_marker(path: Path) -> bool:
    """Whether a JPEG/PNG file ends with its format's trailer (EOI / IEND), ignoring zero padding."""
    with open(path, "rb") as f:
        magic = f.read(8)
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - _TAIL_BYTES))
        tail = f.read().rstrip(b"\0")
    if magic.startswith(b"\x89PNG"):
        return tail.endswith(_PNG_END)
    if magic.startswith(b"\xff\xd8"):
        return tail.endswith(_JPEG_END)
    return False


def _check_file(path: Path, check_pixels: bool) -> tuple[int, int]:
    """(height, width) of an image after checking it can be read; raises InputError naming it."""
    size = read_image_size(path)
    # A missing trailer is only a hint (a writer may append extra data after the image): confirm
    # with a full decode before calling the file truncated.
    if check_pixels or not _has_end_marker(path):
        read_rgb(path)
    return size


def _check_pair(pair: Pair, check_pixels: bool) -> str | None:
    """The one-line problem with a pair, or None when it is usable."""
    try:
        image_hw = _check_file(pair.image_path, check_pixels)
        mask_hw = _check_file(pair.mask_path, check_pixels)
    except InputError as err:
        return str(err)
    except OSError as err:  # unreadable (permissions, I/O error) while looking at the trailer
        return f"{err.filename or pair.image_path}: cannot read file ({err.strerror or err})"
    if image_hw != mask_hw:
        return (
            f"{pair.mask_path}: mask is {mask_hw[0]}x{mask_hw[1]} (HxW) but its image "
            f"{pair.image_path.name} is {image_hw[0]}x{image_hw[1]}"
        )
    return None


def first_tile(folder: str | os.PathLike) -> Path | None:
    """The tile ``find_pairs`` would list first (lowest id), found by name alone: nothing is read or checked."""
    roles = ((pair_role(p.name), p) for p in Path(folder).iterdir() if not p.name.startswith("."))
    tiles = {role[1]: p for role, p in roles if role and role[0] == "sat" and p.is_file()}
    return tiles[min(tiles, key=_natural_key)] if tiles else None


def find_pairs(
    folder: str | os.PathLike,
    *,
    check_pixels: bool = False,
    workers: int | None = None,
) -> list[Pair]:
    """Match ``<id>_sat.{jpg,jpeg,png}`` tiles with ``<id>_mask.png`` masks and validate them all.

    Every file is checked in parallel before this returns: its header must decode, it must not be
    truncated (JPEG/PNG end marker present, confirmed by a full decode when missing), and the mask
    must have the size of its image. With ``check_pixels=True`` every file is also fully decoded,
    which additionally catches damage in the middle of a file that the decoders would reject
    (most such damage only garbles pixels and does not stop training).

    Args:
        folder: directory holding the tiles and masks (not searched recursively). Images named
            neither way are skipped, with a warning naming them.
        check_pixels: fully decode every image and mask too (slower; see the README for timings).
        workers: threads for the checks (default: a small multiple of the CPU count).

    Returns:
        The pairs sorted by id (numeric ids in numeric order).

    Raises:
        InputError: missing or empty folder, an image without mask or mask without image, two
            images with the same id, an unreadable or truncated file, or a mask whose size differs
            from its image. The message names the first offending file and counts the others.
    """
    tiles, masks, problems = _list_tiles_and_masks(Path(folder))
    for pair_id in sorted(tiles.keys() - masks.keys(), key=_natural_key):
        problems.append(f"{tiles[pair_id]}: no mask {pair_id}_mask.png next to it")
    for pair_id in sorted(masks.keys() - tiles.keys(), key=_natural_key):
        problems.append(f"{masks[pair_id]}: no image {pair_id}_sat.jpg (or .jpeg/.png) next to it")
    _raise_first(problems)

    if not tiles:
        raise InputError(f"{folder}: no <id>_sat.jpg + <id>_mask.png pairs in this folder")

    pairs = [Pair(i, tiles[i], masks[i]) for i in sorted(tiles, key=_natural_key)]
    with ThreadPoolExecutor(max_workers=workers or io_workers(CHECK_WORKERS)) as pool:
        results = list(pool.map(lambda p: _check_pair(p, check_pixels), pairs))
    _raise_first([r for r in results if r is not None])
    return pairs


def _list_tiles_and_masks(folder: Path) -> tuple[dict[str, Path], dict[str, Path], list[str]]:
    """Tiles and masks by id (named by :func:`fcn.core.images.pair_role`, the rule of every command), and
    the problems of the listing; images named otherwise are skipped and said so."""
    scan = scan_folder(folder, IMAGE_SUFFIXES)  # hidden files (temporary files of killed writes) left out
    tiles: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    problems = [message for _, message in scan.problems]  # dangling links, unreadable entries
    skipped = []
    for path in scan.files:
        role = pair_role(path.name)
        if role is None:
            skipped.append(path.name)
        else:
            kind, pair_id = role
            found = tiles if kind == "sat" else masks
            if pair_id in found:
                what = "image" if kind == "sat" else "mask"
                problems.append(f"{path}: a second {what} for id {pair_id} (also {found[pair_id].name})")
            else:
                found[pair_id] = path
    log_skipped_names(folder, skipped)
    return tiles, masks, problems


def read_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Decode a pair: (H, W, 3) uint8 RGB tile and (H, W) uint8 class map.

    Raises:
        InputError: a file cannot be read, or the mask's size differs from the tile's.
    """
    rgb, labels = read_rgb(pair.image_path), read_mask(pair.mask_path)
    if rgb.shape[:2] != labels.shape:
        raise InputError(
            f"{pair.mask_path}: mask is {labels.shape[0]}x{labels.shape[1]} (HxW) but its image "
            f"{pair.image_path.name} is {rgb.shape[0]}x{rgb.shape[1]}"
        )
    return rgb, labels


def read_pairs(pairs: Sequence[Pair], workers: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`read_pair` of each pair, in order, decoded a few pairs ahead in a thread pool."""
    return ordered_map(read_pair, pairs, workers)


def _raise_first(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})" if len(problems) > 1 else ""
        raise InputError(problems[0] + more)
