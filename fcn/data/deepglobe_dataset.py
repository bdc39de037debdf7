"""The DeepGlobe-derived dataset folder: its manifest ``split.json``, resuming, and converting every source.

:func:`convert_dataset` draws the train/validation split over source images, checks that an existing
output folder was written with the same parameters and split (or clears it with ``overwrite``), and
converts the sources in a pool (:func:`fcn.data.deepglobe.convert_source`). The command is
:mod:`fcn.cli.prepare_deepglobe`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fcn.core.errors import InputError
from fcn.core.files import TEMP_MARK, write_text_atomic
from fcn.core.images import image_size
from fcn.core.jpeg_check import damaged_jpeg_error
from fcn.core.memory import check_memory
from fcn.core.paths import check_apart
from fcn.core.progress import progress_bar
from fcn.core.workers import available_cores
from fcn.data.deepglobe import (
    DEFAULT_SEED,
    DEFAULT_VAL_FRACTION,
    TRAIN_DIR,
    VALIDATION_DIR,
    SourceResult,
    TileParameters,
    convert_source,
    find_sources,
    split_sources,
)
from fcn.data.integrity import jpeg_decoder_warnings

log = logging.getLogger(__name__)

MANIFEST_NAME = "split.json"
MANIFEST_FORMAT = "fcn-deepglobe-split/1"

# A written tile, and a temp file that write_image_atomic leaves behind if the process is killed.
_TILE_RE = re.compile(r"^(?P<id>.+)_(?P<cell>\d+)_(?:sat\.jpg|mask\.png)$")
_TEMP_RE = re.compile(rf"^\..+_\d+_(?:sat\.jpg|mask\.png){re.escape(TEMP_MARK)}.+$")


@dataclass
class ConversionSummary:
    """Totals of a whole run; ``failed`` maps source id to the one-line reason."""

    sources: int = 0
    cells_written: int = 0
    cells_skipped: int = 0
    upscaled: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def line(self, output_dir: str | os.PathLike) -> str:
        """The one-line account the command prints."""
        return (
            f"{self.sources} source images: {self.cells_written} tiles written, "
            f"{self.cells_skipped} already done, {len(self.failed)} images failed -> {output_dir}"
        )


def _manifest(params: TileParameters, val_fraction: float, seed: int, splits: dict[str, list[str]], input_dir) -> dict:
    """The content of split.json: parameters and split (compared when resuming) plus the input folder."""
    return {
        "format": MANIFEST_FORMAT,
        "input": str(Path(input_dir).resolve()),
        "parameters": {**asdict(params), "val_fraction": val_fraction, "seed": seed},
        "splits": splits,
    }


def _tile_files(output_dir: Path) -> list[Path]:
    """Tiles and leftover temp files in the split folders of ``output_dir``."""
    found = []
    for split in (TRAIN_DIR, VALIDATION_DIR):
        folder = output_dir / split
        if folder.is_dir():
            found += [p for p in folder.iterdir() if p.is_file() and (_TILE_RE.match(p.name) or _TEMP_RE.match(p.name))]
    return found


def _prepare_output(output_dir: Path, manifest: dict, overwrite: bool) -> None:
    """Check that ``output_dir`` can be resumed (or clear it for ``overwrite``) and write the manifest.

    Resuming with other parameters or another split would mix incompatible tiles, so it is refused.
    """
    manifest_path = output_dir / MANIFEST_NAME
    existing = _tile_files(output_dir)
    if overwrite:
        for path in existing:
            path.unlink(missing_ok=True)
    else:
        for path in existing:
            if _TEMP_RE.match(path.name):  # a write killed half-way; its tile is redone
                path.unlink(missing_ok=True)
        if manifest_path.is_file():
            try:
                previous = json.loads(manifest_path.read_text())
            except (OSError, ValueError) as err:
                raise InputError(f"{manifest_path}: cannot read ({err}); use --overwrite") from None
            for key in ("parameters", "splits"):
                if previous.get(key) != manifest[key]:
                    raise InputError(
                        f"{manifest_path}: this folder was written with other {key}; "
                        "use --overwrite or another --output"
                    )
        elif any(_TILE_RE.match(p.name) for p in existing):
            raise InputError(f"{output_dir}: holds tiles but no {MANIFEST_NAME}; use --overwrite or another --output")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(manifest_path, json.dumps(manifest, indent=2) + "\n")
    except OSError as err:
        raise InputError(f"{output_dir}: cannot write the output folder ({err.strerror or err})") from None


def convert_dataset(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    params: TileParameters | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = DEFAULT_SEED,
    overwrite: bool = False,
    workers: int = 1,
    executor: str = "thread",
    progress: bool = True,
) -> ConversionSummary:
    """Convert a DeepGlobe folder into the course layout (train/, validation/, split.json).

    Args:
        input_dir: DeepGlobe training folder (``<id>_sat.jpg`` + ``<id>_mask.png``).
        output_dir: dataset root to write; created if needed.
        params: tile size, grid and JPEG quality (None: the defaults).
        val_fraction: share of the *source images* that go to validation.
        seed: seed of the split.
        overwrite: delete the tiles already in ``output_dir`` and redo everything.
        workers: images converted in parallel.
        executor: ``"thread"`` or ``"process"`` pool (threads are as fast here: Pillow releases
            the GIL while decoding, resizing and encoding).
        progress: show the progress bar.

    Returns:
        A :class:`ConversionSummary`; corrupt inputs are in ``failed`` (and were logged as errors).

    Raises:
        InputError: missing/empty input folder, an image without mask, or an output folder written
            with other parameters (without ``overwrite``).
    """
    params = params or TileParameters()
    if params.size < 1 or params.grid < 1 or workers < 1:
        raise ValueError("size, grid and workers must be >= 1")
    check_apart(input_dir, output_dir)  # tiles among the sources: a train/validation leak
    pairs = find_sources(input_dir)
    _check_memory(pairs, params, min(workers, len(pairs)))  # each worker holds its own image and tiles
    splits = split_sources([p.source_id for p in pairs], val_fraction, seed)
    split_of = {sid: split for split, ids in splits.items() for sid in ids}
    output_dir = Path(output_dir)
    manifest = _manifest(params, val_fraction, seed, splits, input_dir)
    _prepare_output(output_dir, manifest, overwrite)

    summary = ConversionSummary(sources=len(pairs))
    pairs = _sound_sources(pairs, split_of, summary)
    pool_type: type[Executor] = {"thread": ThreadPoolExecutor, "process": ProcessPoolExecutor}[executor]
    with (
        progress_bar(len(pairs), enabled=progress) as bar,
        pool_type(max_workers=max(1, min(workers, len(pairs)))) as pool,
    ):
        futures = [
            pool.submit(convert_source, pair, split_of[pair.source_id], output_dir, params, overwrite) for pair in pairs
        ]
        try:
            for future in as_completed(futures):
                _book(summary, future.result())
                bar.update(1)
        except BaseException:
            # On Ctrl-C only the images in progress finish (atomically); the queued ones are dropped.
            for future in futures:
                future.cancel()
            raise
    if summary.upscaled:
        log.warning(
            "warning: %d source images have cells smaller than %d px: their tiles are upscaled (check --grid and --size)",
            summary.upscaled,
            params.size,
        )
    manifest["failed"] = dict(sorted(summary.failed.items()))
    write_text_atomic(output_dir / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    return summary


def _tiling_memory(height: int, width: int, size: int, grid: int, processes: int = 1) -> int:
    """Bytes cutting one (height, width) image and its mask into ``grid``² tiles of ``size``² needs.

    Per process: the source image and mask (RGB uint8), one cell of each as float32 while resized,
    and the resized tile, its class map and its encoded copies.
    """
    cell = -(-height // grid) * -(-width // grid)
    tile = size * size
    return int(processes * (2 * height * width * 3 + 2 * cell * 3 * 4 + tile * (3 * 4 + 3 * 3 + 1)))


def _check_memory(pairs, params: TileParameters, processes: int) -> None:
    """Refuse, before any work, a tile size / grid whose largest image cannot be cut in the memory available."""
    largest, where = 0, None
    for pair in pairs:
        try:
            height, width = image_size(pair.image_path)
        except InputError:
            continue  # reported by its conversion, and the other images still done
        if height * width > largest:
            largest, where = height * width, (pair.image_path, height, width)
    if where is not None:
        path, height, width = where
        check_memory(
            _tiling_memory(height, width, params.size, params.grid, processes),
            f"{path}: --size {params.size} --grid {params.grid}",
            "choose a smaller --size",
        )


def _sound_sources(pairs: list, split_of: dict[str, str], summary: ConversionSummary) -> list:
    """The sources whose JPEG decodes without libjpeg's corruption warnings (the check of every command,
    with training's decoder); the others are booked as failed, one error line each."""
    damaged = jpeg_decoder_warnings([pair.image_path for pair in pairs])
    for pair in pairs:
        if pair.image_path in damaged:
            error = damaged_jpeg_error(pair.image_path, damaged[pair.image_path])
            _book(summary, SourceResult(pair.source_id, split_of[pair.source_id], error=error))
    return [pair for pair in pairs if pair.image_path not in damaged]


def _book(summary: ConversionSummary, result: SourceResult) -> None:
    """Add one source's result to the totals; a failed source is logged as one error line."""
    summary.cells_written += result.written
    summary.cells_skipped += result.skipped
    summary.upscaled += result.upscaled
    if result.error:
        summary.failed[result.source_id] = result.error
        log.error("error: %s", result.error)


@dataclass(frozen=True)
class PrepareDeepGlobeConfig:
    """What ``fcn-prepare-deepglobe`` was asked to do (see :func:`convert_dataset` for each field)."""

    input: Path
    output: Path
    params: TileParameters = TileParameters()
    val_fraction: float = DEFAULT_VAL_FRACTION
    seed: int = DEFAULT_SEED
    overwrite: bool = False
    workers: int | None = None
    progress: bool = True


def prepare_deepglobe(config: PrepareDeepGlobeConfig) -> ConversionSummary:
    """:func:`convert_dataset` for a config; ``workers`` None means one per available core."""
    return convert_dataset(
        config.input,
        config.output,
        config.params,
        val_fraction=config.val_fraction,
        seed=config.seed,
        overwrite=config.overwrite,
        workers=config.workers or available_cores(),
        progress=config.progress,
    )
