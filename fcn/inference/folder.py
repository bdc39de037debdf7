"""Folder jobs of ``fcn-predict``: which inputs, which output files, and predicting a folder of images.

One palette mask ``<id>_mask.png`` per image (``0001_sat.jpg`` -> ``0001_mask.png``, the course's
naming); GeoTIFF scenes (``.tif``/``.tiff``) get ``<id>_mask.tif`` and are run by
:mod:`fcn.inference.scene_jobs`. :func:`predict_folder` decodes the next images and encodes the
finished masks in a thread pool while the engine (:class:`fcn.inference.engine.Predictor`) runs the model.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fcn.core.errors import InputError
from fcn.core.figures import OVERLAY_JPEG_QUALITY, overlay_image
from fcn.core.files import WriteError, is_disk_full, write_error
from fcn.core.folders import FolderScan, scan_folder
from fcn.core.images import (
    IMAGE_SUFFIXES,
    MASK_SUFFIX,
    image_size,
    read_rgb,
    tile_id,
    write_image_atomic,
    write_mask,
)
from fcn.core.mark import check_replaceable
from fcn.core.memory import check_memory
from fcn.core.paths import check_not_an_input, same_path
from fcn.core.progress import progress_bar
from fcn.core.workers import beside, io_workers, read_ahead
from fcn.inference.areas import count_classes, is_stats_file
from fcn.inference.engine import Predictor
from fcn.inference.geo import GEOTIFF_SUFFIXES, is_geotiff, scene_mask_name
from fcn.inference.memory import batch_memory, prediction_memory

log = logging.getLogger(__name__)

INPUT_SUFFIXES = IMAGE_SUFFIXES + GEOTIFF_SUFFIXES


class PredictionJob(NamedTuple):
    """One input (image or GeoTIFF scene) and the files written for it (``overlay`` None without ``--overlay``)."""

    image: Path
    mask: Path
    overlay: Path | None

    @property
    def is_scene(self) -> bool:
        """Whether the input is a GeoTIFF scene (predicted window by window, written as GeoTIFF)."""
        return is_geotiff(self.image)


def mask_name(path: str | os.PathLike) -> str:
    """File name of the predicted mask: ``0001_sat.jpg`` -> ``0001_mask.png``, ``scene.tif`` -> ``scene_mask.tif``."""
    if is_geotiff(path):
        return scene_mask_name(path)
    return f"{tile_id(path)}{MASK_SUFFIX}.png"


def _overlay_name(path: str | os.PathLike) -> str:
    """File name of the overlay: ``0001_sat.jpg`` -> ``0001_overlay.jpg`` (scenes: a downsampled preview)."""
    return f"{tile_id(path)}_overlay.jpg"


def _is_mask_file(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(f"{MASK_SUFFIX}{suffix}") for suffix in (".png",) + GEOTIFF_SUFFIXES)


def list_input_images(path: str | os.PathLike) -> list[Path]:
    """Inputs to predict: ``path`` itself when it is a file, else the images and GeoTIFFs of the folder.

    Images are ``.jpg``/``.jpeg``/``.png``, scenes ``.tif``/``.tiff``; in a folder, the masks this
    command writes (``*_mask.png``, ``*_mask.tif``) are skipped.

    Raises:
        InputError: no such file or folder, a file of another kind, or nothing to predict in the folder.
    """
    return _scan_inputs(path).files


def _scan_inputs(path: str | os.PathLike) -> FolderScan:
    """Like :func:`list_input_images`, and the entries that cannot be read (dangling links, loops), named.

    Raises:
        InputError: see :func:`list_input_images`; also a folder that cannot be listed.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in INPUT_SUFFIXES:
            raise InputError(f"{path}: not a .jpg/.jpeg/.png image or a .tif/.tiff GeoTIFF")
        return FolderScan([path])
    if not path.is_dir():
        raise InputError(f"{path}: no such file or folder")
    scan = scan_folder(path, INPUT_SUFFIXES, skip=_is_mask_file)
    if not scan.files and not scan.problems:
        raise InputError(
            f"{path}: no .jpg/.jpeg/.png image or .tif/.tiff scene to predict (files *_mask.png/.tif are skipped)"
        )
    return scan


class _Claims:
    """Output paths already promised to an input: no output may be an input or be written twice."""

    def __init__(self, inputs: Sequence[Path]):
        self.inputs = {p.resolve() for p in inputs}
        self.owners: dict[Path, str] = {}

    def claim(self, target: Path, owner: str, label: str) -> None:
        key = target.resolve()
        if key in self.inputs:
            raise InputError(f"{target}: output would overwrite an input file")
        if key in self.owners:
            raise InputError(f"{owner}: writes {target.name} like {self.owners[key]}; rename one of them")
        self.owners[key] = label


def plan_jobs(
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    overlay_dir: str | os.PathLike | None = None,
    stats_path: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    model: str | os.PathLike | None = None,
    problems: list[tuple[Path, str]] | None = None,
) -> list[PredictionJob]:
    """List the inputs of ``input_path`` and the files to write for each, refusing any overwrite of inputs.

    Outputs must not be inputs or files of ``model``, and an existing output the project did not
    write is refused unless ``overwrite`` (:func:`fcn.core.mark.check_replaceable`). Entries of the
    input folder that cannot be read are appended to ``problems`` (or refused when it is None).

    Args:
        input_path: a folder of images and scenes, or one file.
        output_dir: folder of the masks.
        overlay_dir: folder of the overlays (None: none).
        stats_path: the ``--stats`` file, checked like the other outputs (None: none).

    Raises:
        InputError: missing or empty input folder, an output folder that is the input folder, two
            inputs with the same output name, or an output path that is an input file.
    """
    input_path, output_dir = Path(input_path), Path(output_dir)
    scan = _scan_inputs(input_path)
    if scan.problems and problems is None:
        raise InputError(scan.problems[0][1])
    if problems is not None:
        problems.extend(scan.problems)
    images = scan.files
    folders = [("--output", output_dir)] + ([("--overlay", Path(overlay_dir))] if overlay_dir is not None else [])
    for option, folder in folders:
        if input_path.is_dir() and same_path(folder, input_path):
            raise InputError(f"{folder}: {option} folder is the input folder; refusing to write next to the inputs")
    claims = _Claims(images)
    if stats_path is not None:
        claims.claim(Path(stats_path), "--stats", "--stats")
        check_not_an_input([stats_path], model=model)
        check_replaceable(stats_path, overwrite=overwrite, option="--stats", ours=is_stats_file)
    jobs = []
    for image in images:
        job = PredictionJob(
            image,
            output_dir / mask_name(image),
            Path(overlay_dir) / _overlay_name(image) if overlay_dir is not None else None,
        )
        for target in (job.mask, job.overlay):
            if target is not None:
                claims.claim(target, str(image), image.name)
                check_not_an_input([target], model=model)
                check_replaceable(target, overwrite=overwrite)
        jobs.append(job)
    return jobs


def prepare_output_folder(folder: str | os.PathLike, option: str = "--output") -> Path:
    """Create ``folder`` if needed and check that a file can be written there.

    Raises:
        InputError: the folder cannot be created or written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".fcn-predict-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise InputError(f"{folder}: {option} folder cannot be written ({err.strerror or err})") from None
    return folder


@dataclass
class FolderReport:
    """What :func:`predict_folder` did.

    Attributes:
        written: jobs whose mask (and overlay) were written.
        failed: (image, one-line reason) of the images that were skipped.
        seconds: wall time of the whole loop, reading and writing included.
        class_counts: per written image, (7,) pixels per class (with ``with_class_counts=True``).
    """

    written: list[PredictionJob] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    class_counts: dict[Path, np.ndarray] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return len(self.written) / self.seconds if self.seconds > 0 else 0.0

    def fail(self, path: Path, reason: str) -> None:
        """Record a skipped input and log its one-line reason."""
        self.failed.append((path, reason))
        log.error("error: %s", reason)


def _write_outputs(job: PredictionJob, class_map: np.ndarray, rgb: np.ndarray | None) -> None:
    write_mask(job.mask, class_map)
    if job.overlay is not None:
        write_image_atomic(job.overlay, overlay_image(rgb, class_map), quality=OVERLAY_JPEG_QUALITY)


class _Writer:
    """Encodes and writes finished masks in the pool, at most ``limit`` waiting, and books the results."""

    def __init__(self, pool: ThreadPoolExecutor, report: FolderReport, limit: int):
        self.pool, self.report, self.limit = pool, report, limit
        self.pending: deque = deque()

    def submit(self, job: PredictionJob, class_map: np.ndarray, rgb: np.ndarray | None, counts) -> None:
        self.pending.append((job, self.pool.submit(_write_outputs, job, class_map, rgb), counts))
        while self.pending and (self.pending[0][1].done() or len(self.pending) > self.limit):
            self._finish(*self.pending.popleft())

    def drain(self) -> None:
        while self.pending:
            self._finish(*self.pending.popleft())

    def _finish(self, job: PredictionJob, future: Future, counts: np.ndarray | None) -> None:
        try:
            future.result()
        except OSError as err:
            if is_disk_full(err):
                raise write_error(job.mask, err) from None  # every later write would fail too: stop here
            self.report.fail(job.mask, str(err) if isinstance(err, WriteError) else str(write_error(job.mask, err)))
            return
        self.report.written.append(job)
        if counts is not None:
            self.report.class_counts[job.image] = counts


def predict_folder(
    predictor: Predictor,
    jobs: Sequence[PredictionJob],
    *,
    workers: int | None = None,
    progress: bool = True,
    with_class_counts: bool = False,
) -> FolderReport:
    """Predict every job's image and write its mask (and overlay), overlapping I/O with inference.

    Images are decoded by a thread pool ahead of the model and masks are encoded by the same pool
    behind it. An unreadable image or a failed write is logged (one line naming the file) and
    skipped; the other images are still written.

    Args:
        predictor: the inference engine.
        jobs: from :func:`plan_jobs` (output folders must exist).
        workers: pool threads (:func:`fcn.core.workers.io_workers` when None).
        progress: show the progress bar.
        with_class_counts: record each written image's pixels per class in ``report.class_counts``.

    Returns:
        The report; ``report.failed`` is empty when everything was written.
    """
    workers = workers or io_workers()
    report = FolderReport()
    keep_rgb = any(job.overlay is not None for job in jobs)
    start = time.perf_counter()
    with progress_bar(len(jobs), enabled=progress) as bar, ThreadPoolExecutor(max_workers=workers) as pool:

        def readable_images() -> Iterator[tuple[tuple[PredictionJob, np.ndarray | None], np.ndarray]]:
            for job, future in read_ahead(pool, _read_image, jobs, depth=predictor.batch_size + workers):
                try:
                    rgb = future.result()
                except InputError as err:
                    report.fail(job.image, str(err))
                    bar.update(1)
                    continue
                yield (job, rgb if keep_rgb else None), rgb

        writer = _Writer(pool, report, limit=2 * workers)
        for (job, rgb), class_map in beside(predictor.predict_many, readable_images()):
            writer.submit(job, class_map, rgb, count_classes(class_map) if with_class_counts else None)
            bar.update(1)
        writer.drain()
    report.seconds = time.perf_counter() - start
    return report


def fitting_images(
    jobs: Sequence[PredictionJob], scale: float, failures, tile: int, batch_size: int = 1, tta: bool = False
) -> list[PredictionJob]:
    """The image jobs whose header reads and whose prediction fits in memory; the others go to ``failures``.

    Reads each image's header only: an image over Pillow's pixel limit, an unreadable file, or one
    that ``scale`` (or ``batch_size`` images or windows per model call) makes too large for the memory
    available is one line naming it.
    """
    fitting = []
    for job in jobs:
        try:
            height, width = image_size(job.image)
            batch = min(batch_size, len(jobs)) if max(height, width) * scale <= tile else batch_size
            check_memory(
                prediction_memory(height, width, scale) + batch_memory(height, width, scale, tile, batch, tta),
                f"{job.image} ({height}x{width} px at scale {scale:g}, --batch-size {batch_size})",
                "a smaller --scale or --batch-size, or a .tif scene predicted window by window",
            )
        except InputError as err:
            failures.add(job.image, str(err))
            continue
        fitting.append(job)
    return fitting


def _read_image(job: PredictionJob) -> np.ndarray:
    return read_rgb(job.image)
