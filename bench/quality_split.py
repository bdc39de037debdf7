"""bench/quality.py's split: one folder of tiles linked into ``train/`` and ``val/`` by a validation id spec."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from fcn.core.errors import InputError

DEFAULT_VAL_IDS = "0160-0199,0008,0097,0107"
SPLIT_MARKER = ".fcn-quality-split"


def parse_id_spec(spec: str) -> list[tuple[str, str]]:
    """Parse ``"0160-0199,0008"`` into ``[("0160", "0199"), ("0008", "0008")]``.

    Raises:
        InputError: empty spec, a range that is not two numbers, or a range whose end precedes its start.
    """
    items = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        bounds = [b.strip() for b in part.split("-")]
        if len(bounds) == 1:
            items.append((bounds[0], bounds[0]))
            continue
        if len(bounds) != 2 or not all(b.isdigit() for b in bounds):
            raise InputError(f"--val-ids: {part!r} is not an id or a numeric range A-B")
        if int(bounds[1]) < int(bounds[0]):
            raise InputError(f"--val-ids: range {part!r} ends before it starts")
        items.append((bounds[0], bounds[1]))
    if not items:
        raise InputError("--val-ids: no id given")
    return items


def select_ids(available: Sequence[str], spec: str, folder: Path) -> list[str]:
    """The ids of ``available`` that ``spec`` names (numeric ids compare as numbers: 8 matches 0008).

    Raises:
        InputError: a single id that is not in ``folder``, or a range that matches no tile there.
    """
    chosen: list[str] = []
    for start, end in parse_id_spec(spec):
        if start == end and not start.isdigit():
            matches = [i for i in available if i == start]
        else:
            low, high = int(start), int(end)
            matches = [i for i in available if i.isdigit() and low <= int(i) <= high]
        if not matches:
            what = f"id {start}" if start == end else f"range {start}-{end}"
            raise InputError(f"{folder}: --val-ids {what} matches no tile in this folder")
        chosen += [i for i in matches if i not in chosen]
    return chosen


def _link(source: Path, target: Path) -> None:
    try:
        target.symlink_to(source.resolve())
    except OSError:
        try:
            os.link(source, target)
        except OSError as err:
            raise InputError(
                f"{target}: cannot link to {source} ({err.strerror or err}); use --train-dir/--val-dir"
            ) from None


def _clear_split_folder(folder: Path) -> None:
    """Empty a split folder made by an earlier call (only links and tile files, never anything else)."""
    for path in folder.iterdir():
        if path.is_symlink() or (
            path.is_file() and path.name.endswith(("_sat.jpg", "_sat.jpeg", "_sat.png", "_mask.png"))
        ):
            path.unlink()
        else:
            raise InputError(f"{path}: unexpected file in the split folder; remove it or pick another --out")


def make_split(data_dir: str | Path, val_spec: str, split_dir: str | Path) -> tuple[Path, Path]:
    """Link the tiles of one folder into ``split_dir/train`` and ``split_dir/val``.

    Args:
        data_dir: folder of ``<id>_sat.jpg`` + ``<id>_mask.png`` pairs.
        val_spec: validation ids, e.g. ``"0160-0199,0008,0097,0107"`` (see :func:`select_ids`);
            every other tile goes to training.
        split_dir: created; rebuilt when it holds an earlier split.

    Returns:
        ``(train_dir, val_dir)``.

    Raises:
        InputError: bad data folder or spec, an empty split, or a ``split_dir`` that holds other files.
    """
    from fcn.data.pairs import find_pairs

    data_dir, split_dir = Path(data_dir), Path(split_dir)
    pairs = find_pairs(data_dir)
    val_ids = set(select_ids([p.id for p in pairs], val_spec, data_dir))
    if len(val_ids) == len(pairs):
        raise InputError(f"{data_dir}: --val-ids takes every tile; nothing is left to train on")
    if split_dir.exists() and any(split_dir.iterdir()) and not (split_dir / SPLIT_MARKER).exists():
        raise InputError(f"{split_dir}: exists and was not made by bench/quality.py; pick another --out")
    folders = {"train": split_dir / "train", "val": split_dir / "val"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
        _clear_split_folder(folder)
    (split_dir / SPLIT_MARKER).write_text(f"data: {data_dir.resolve()}\nval ids: {val_spec}\n")
    for pair in pairs:
        folder = folders["val" if pair.id in val_ids else "train"]
        for source in (pair.image_path, pair.mask_path):
            _link(source, folder / source.name)
    return folders["train"], folders["val"]
