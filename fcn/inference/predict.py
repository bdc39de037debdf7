"""Predicting images and GeoTIFF scenes: ``scripts/predict.py`` / ``fcn-predict``.

``python scripts/predict.py --model RUN_DIR --input DIR --output DIR`` writes one palette mask
``<id>_mask.png`` per image (``0001_sat.jpg`` -> ``0001_mask.png``, the course's naming), decoding the
next images and encoding the finished masks in a thread pool while the engine
(:class:`fcn.inference.engine.Predictor`) runs the model. By default images are predicted at the scale the model
was trained at; ``--input-gsd`` or ``--scale`` say otherwise.

``.tif``/``.tiff`` inputs are GeoTIFF scenes (:mod:`fcn.inference.geo`, :mod:`fcn.inference.scenes`): read and predicted
window by window with bounded memory, written as ``<id>_mask.tif`` class maps with the input's CRS and
transform, at the scale their pixel size calls for. ``--stats`` tabulates the classes' areas.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fcn.cli.common import (
    ArgumentParser,
    band_numbers,
    multiple_of_32,
    non_negative_int,
    positive_float,
    positive_int,
    run_cli,
)
from fcn.core.errors import InputError
from fcn.core.figures import OVERLAY_JPEG_QUALITY, overlay_image
from fcn.core.images import IMAGE_SUFFIXES, MASK_SUFFIX, read_rgb, tile_id, write_image_atomic, write_mask
from fcn.core.palette import NUM_CLASSES
from fcn.inference.areas import check_stats_path, class_areas, count_classes, write_stats
from fcn.inference.backends import artefact_format
from fcn.inference.engine import DEFAULT_TILE, Predictor, window_grid
from fcn.inference.geo import (
    GEOTIFF_SUFFIXES,
    check_value_range,
    is_geotiff,
    open_scene,
    require_rasterio,
    scene_mask_name,
    write_overlay_preview,
)
from fcn.inference.scenes import predict_scene, scene_batch_size, scene_scale
from fcn.model.checkpoints import ModelInfo, load_model, model_info, read_model_info, resolve_model_path
from fcn.model.runtime import PRECISIONS

INPUT_SUFFIXES = IMAGE_SUFFIXES + GEOTIFF_SUFFIXES


# ---------------------------------------------------------------- inputs and outputs


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


def overlay_name(path: str | os.PathLike) -> str:
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
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in INPUT_SUFFIXES:
            raise InputError(f"{path}: not a .jpg/.jpeg/.png image or a .tif/.tiff GeoTIFF")
        return [path]
    if not path.is_dir():
        raise InputError(f"{path}: no such file or folder")
    inputs = sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES and not _is_mask_file(p)
    )
    if not inputs:
        raise InputError(
            f"{path}: no .jpg/.jpeg/.png image or .tif/.tiff scene to predict (files *_mask.png/.tif are skipped)"
        )
    return inputs


def _same_path(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def plan_jobs(
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    overlay_dir: str | os.PathLike | None = None,
    stats_path: str | os.PathLike | None = None,
) -> list[PredictionJob]:
    """List the inputs of ``input_path`` and the files to write for each, refusing any overwrite of inputs.

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
    images = list_input_images(input_path)
    folders = [("--output", output_dir)] + ([("--overlay", Path(overlay_dir))] if overlay_dir is not None else [])
    for option, folder in folders:
        if input_path.is_dir() and _same_path(folder, input_path):
            raise InputError(f"{folder}: {option} folder is the input folder; refusing to write next to the inputs")
    inputs = {p.resolve() for p in images}
    jobs, claimed = [], {}

    def claim(target: Path, owner: str, label: str) -> None:
        key = target.resolve()
        if key in inputs:
            raise InputError(f"{target}: output would overwrite an input file")
        if key in claimed:
            raise InputError(f"{owner}: writes {target.name} like {claimed[key]}; rename one of them")
        claimed[key] = label

    if stats_path is not None:
        claim(Path(stats_path), "--stats", "--stats")
    for image in images:
        job = PredictionJob(
            image,
            output_dir / mask_name(image),
            Path(overlay_dir) / overlay_name(image) if overlay_dir is not None else None,
        )
        for target in (job.mask, job.overlay):
            if target is not None:
                claim(target, str(image), image.name)
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


def _write_outputs(job: PredictionJob, class_map: np.ndarray, rgb: np.ndarray | None) -> None:
    write_mask(job.mask, class_map)
    if job.overlay is not None:
        write_image_atomic(job.overlay, overlay_image(rgb, class_map), quality=OVERLAY_JPEG_QUALITY)


def _prefetch(
    pool: ThreadPoolExecutor, read, jobs: Sequence[PredictionJob], depth: int
) -> Iterator[tuple[PredictionJob, Future]]:
    """Yield (job, future of read(job.image)) in order, keeping ``depth`` reads in flight."""
    in_flight: deque = deque()
    remaining = iter(jobs)
    for job in remaining:
        in_flight.append((job, pool.submit(read, job.image)))
        if len(in_flight) >= depth:
            break
    while in_flight:
        yield in_flight.popleft()
        job = next(remaining, None)
        if job is not None:
            in_flight.append((job, pool.submit(read, job.image)))


@dataclass
class FolderReport:
    """What :func:`predict_folder` did.

    Attributes:
        written: jobs whose mask (and overlay) were written.
        failed: (image, one-line reason) of the images that were skipped.
        seconds: wall time of the whole loop, reading and writing included.
        class_counts: per written image, (7,) pixels per class (with ``count_classes=True``).
    """

    written: list[PredictionJob] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    class_counts: dict[Path, np.ndarray] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return len(self.written) / self.seconds if self.seconds > 0 else 0.0


def default_workers() -> int:
    """Reader/writer threads: PIL decodes and encodes without the GIL; TensorFlow has the other cores."""
    return max(2, min(4, os.cpu_count() or 1))


def predict_folder(
    predictor: Predictor,
    jobs: Sequence[PredictionJob],
    *,
    workers: int | None = None,
    verbose: int = 1,
    on_error: Callable[[str], None] | None = None,
    with_class_counts: bool = False,
) -> FolderReport:
    """Predict every job's image and write its mask (and overlay), overlapping I/O with inference.

    Images are decoded by a thread pool ahead of the model and masks are encoded by the same pool
    behind it. An unreadable image or a failed write is reported (one line naming the file) and
    skipped; the other images are still written.

    Args:
        predictor: the inference engine.
        jobs: from :func:`plan_jobs` (output folders must exist).
        workers: pool threads (``default_workers()`` when None).
        verbose: 1 shows a ``keras.utils.Progbar``; 0 is silent.
        on_error: receives each failure line (``error: ...`` on stderr when None).
        with_class_counts: record each written image's pixels per class in ``report.class_counts``.

    Returns:
        The report; ``report.failed`` is empty when everything was written.
    """
    on_error = on_error or _report_error
    workers = workers or default_workers()
    report = FolderReport()
    progress = None
    if verbose:
        import keras

        progress = keras.utils.Progbar(len(jobs), unit_name="image")
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress.update(done)

    def fail(path: Path, reason: str) -> None:
        report.failed.append((path, reason))
        on_error(reason)

    keep_rgb = any(job.overlay is not None for job in jobs)
    predicted: deque = deque()  # (job, rgb or None) of the images handed to the predictor, in order
    writes: deque = deque()
    max_pending_writes = 2 * workers

    def finish_write(job: PredictionJob, future: Future, counts: np.ndarray | None) -> None:
        try:
            future.result()
            report.written.append(job)
            if counts is not None:
                report.class_counts[job.image] = counts
        except OSError as err:
            fail(job.mask, f"{job.mask}: cannot write ({err.strerror or err})")

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def readable_images() -> Iterator[np.ndarray]:
            for job, future in _prefetch(pool, read_rgb, jobs, depth=predictor.batch_size + workers):
                try:
                    rgb = future.result()
                except InputError as err:
                    fail(job.image, str(err))
                    advance()
                    continue
                predicted.append((job, rgb if keep_rgb else None))
                yield rgb

        for class_map in predictor.predict_many(readable_images()):
            job, rgb = predicted.popleft()
            counts = count_classes(class_map) if with_class_counts else None
            writes.append((job, pool.submit(_write_outputs, job, class_map, rgb), counts))
            advance()
            while writes and (writes[0][1].done() or len(writes) > max_pending_writes):
                finish_write(*writes.popleft())
        while writes:
            finish_write(*writes.popleft())
    report.seconds = time.perf_counter() - start
    return report


# ---------------------------------------------------------------- command line


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="fcn-predict",
        description="Predict a palette mask <id>_mask.png for every .jpg/.jpeg/.png image of a folder "
        "(xxxx_sat.jpg -> xxxx_mask.png; files *_mask.png are skipped), any size, and a class-map GeoTIFF "
        "<id>_mask.tif for every .tif/.tiff scene (window by window, georeferenced like the input).",
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="MODEL",
        help="a .keras file, a run directory (its best.keras, "
        "else last.keras), or a model exported by fcn-export (.onnx, .tflite, SavedModel directory)",
    )
    parser.add_argument(
        "--input", required=True, metavar="PATH", help="a folder of images and GeoTIFF scenes, or one file"
    )
    parser.add_argument(
        "--output", required=True, metavar="DIR", help="folder for the masks (created; must not be the input folder)"
    )
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument(
        "--scale",
        type=positive_float,
        default=None,
        metavar="F",
        help="resize inputs by F before inference; masks keep the input size (default: the scale the model "
        "was trained at, so inputs like its training tiles are seen as in training; for GeoTIFFs with a "
        "projected CRS, their pixel size / the model's training ground sample distance)",
    )
    scale.add_argument(
        "--input-gsd",
        type=positive_float,
        default=None,
        metavar="M",
        help="ground sample distance of the inputs in metres per pixel (e.g. 0.5 for full DeepGlobe tiles); "
        "the scale becomes M / the model's training ground sample distance (needed for GeoTIFFs in degrees)",
    )
    parser.add_argument(
        "--tile",
        type=multiple_of_32,
        default=DEFAULT_TILE,
        metavar="N",
        help=f"sliding-window side for larger images, multiple of 32 (default {DEFAULT_TILE})",
    )
    parser.add_argument(
        "--overlap",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="minimum overlap of sliding windows in pixels (default: tile / 8)",
    )
    parser.add_argument("--tta", action="store_true", help="average over the 8 flips/rotations (8x slower)")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=4,
        metavar="N",
        help="images or windows per model call (default 4; GeoTIFF scenes: at most 1 window of 1024², or the "
        "same pixels in smaller windows, to bound memory)",
    )
    parser.add_argument(
        "--overlay",
        metavar="DIR",
        help="also write <id>_overlay.jpg: the image blended with its mask, class "
        "boundaries in red (for GeoTIFF scenes, downsampled to at most 4096 px a side)",
    )
    parser.add_argument(
        "--bands",
        type=band_numbers,
        default=None,
        metavar="R,G,B",
        help="GeoTIFF bands read as red, green, blue (or one grey band), counted from 1 (default: by colour "
        "interpretation, else the first three)",
    )
    parser.add_argument(
        "--value-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="GeoTIFF values mapped linearly to 0-255 (default: uint8 as it is; other types: each band's 2nd-98th "
        "percentiles)",
    )
    parser.add_argument(
        "--stats",
        metavar="FILE",
        help="write pixels, share of valid pixels, m² and ha per input and class to "
        "FILE.csv or FILE.json (areas from a projected CRS, or from --input-gsd)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="compute dtype policy (default: as saved; auto: mixed_float16 on tensor-core GPUs, mixed_bfloat16 on CPUs "
        "with AMX-BF16, float32 elsewhere). On CPU the .keras model with auto is the fastest choice",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"reader/writer threads (default {default_workers()})",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def _report_error(line: str) -> None:
    print(f"error: {line}", file=sys.stderr, flush=True)


@dataclass
class ScenePlan:
    """A scene that passed the checks before the model loads, and the scale it runs at."""

    job: PredictionJob
    scale: float
    reason: str


def plan_scenes(
    jobs: Sequence[PredictionJob], args, info: ModelInfo, fail: Callable[[Path, str], None]
) -> list[ScenePlan]:
    """Open every scene's header, check its bands and find its scale; report the ones that cannot run.

    Args:
        jobs: the scene jobs.
        args: the parsed command line (``bands``, ``value_range``, ``scale``, ``input_gsd``).
        info: the model's :class:`fcn.model.checkpoints.ModelInfo`.
        fail: receives (input, one-line reason) for each scene left out.

    Returns:
        The scenes to predict, in order.
    """
    if not jobs:
        return []
    try:
        require_rasterio()
    except InputError as err:
        others = len(jobs) - 1
        also = f" and {others} other GeoTIFF input{'s' * (others != 1)}" if others else ""
        fail(jobs[0].image, f"{jobs[0].image}{also}: {err}")
        for job in jobs[1:]:
            fail(job.image, "")
        return []
    plans = []
    for job in jobs:
        try:
            with open_scene(job.image, bands=args.bands, value_range=args.value_range) as scene:
                scale, reason = scene_scale(scene, info, scale=args.scale, input_gsd=args.input_gsd)
        except InputError as err:
            fail(job.image, str(err))
            continue
        plans.append(ScenePlan(job, scale, reason))
    return plans


def _pixel_area(input_gsd: float | None) -> float | None:
    return None if input_gsd is None else input_gsd * input_gsd


def predict_scenes(
    predictor: Predictor,
    plans: Sequence[ScenePlan],
    args,
    fail: Callable[[Path, str], None],
    stats: dict[Path, list] | None,
) -> int:
    """Predict the planned scenes one after the other; returns how many were written.

    Each scene prints the scale it runs at; a scene that fails is reported through ``fail`` and the
    next one still runs. With ``stats``, each written scene's class areas are stored under its path.
    """
    written = 0
    for plan in plans:
        job = plan.job
        scene_predictor = predictor.replace(scale=plan.scale)
        batch = scene_batch_size(scene_predictor)
        try:
            with open_scene(job.image, bands=args.bands, value_range=args.value_range) as scene:
                windows = len(
                    window_grid(
                        *scene_predictor.working_size(scene.height, scene.width),
                        scene_predictor.tile,
                        scene_predictor.overlap,
                    ).windows
                )
                capped = (
                    f", {batch} window{'s' * (batch != 1)} per model call"
                    if batch < min(windows, args.batch_size)
                    else ""
                )
                print(
                    f"{job.image.name}: {scene.height}x{scene.width} px, predicting at scale {plan.scale:.4g} "
                    f"({plan.reason}), {windows} window{'s' * (windows != 1)}{capped}",
                    flush=True,
                )
                result = predict_scene(scene_predictor, scene, job.mask, verbose=0 if args.quiet else 1)
                if job.overlay is not None:
                    write_overlay_preview(scene, job.mask, job.overlay)
                area = scene.pixel_area_m2 if scene.pixel_area_m2 is not None else _pixel_area(args.input_gsd)
        except InputError as err:
            fail(job.image, str(err))
            continue
        written += 1
        if stats is not None:
            stats[job.image] = class_areas(job.image.name, result.class_counts, area)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.overlap is not None and args.overlap >= args.tile:
        raise InputError(f"--overlap must be smaller than --tile={args.tile}, got {args.overlap}")
    args.value_range = check_value_range(args.value_range)
    stats_path = check_stats_path(args.stats) if args.stats is not None else None

    # Every check that can fail runs before the model is loaded.
    exported = artefact_format(args.model) is not None
    if exported:
        model_path = Path(args.model)
        if not model_path.exists():
            raise InputError(f"{model_path}: no such exported model")
        if args.precision not in (None, "auto", "float32"):
            raise InputError(
                f"--precision {args.precision}: {model_path} is an exported float32 model; "
                "precision applies to .keras models"
            )
    else:
        model_path = resolve_model_path(args.model)
    jobs = plan_jobs(args.input, args.output, args.overlay, stats_path)
    image_jobs = [job for job in jobs if not job.is_scene]
    scene_jobs = [job for job in jobs if job.is_scene]
    if (args.bands is not None or args.value_range is not None) and not scene_jobs:
        raise InputError(f"{args.input}: --bands and --value-range apply to .tif/.tiff inputs, and there is none")
    prepare_output_folder(args.output, "--output")
    if args.overlay is not None:
        prepare_output_folder(args.overlay, "--overlay")
    if stats_path is not None:
        prepare_output_folder(stats_path.parent, "--stats")
    model, info = None, None
    if not exported:
        try:  # the scale rule of scenes needs it; reading it does not load TensorFlow
            info = read_model_info(model_path)
        except Exception:  # a damaged file: load_model says what is wrong in one line
            info = None
    if info is None:
        model = open_model(model_path, exported, args.precision)
        info = model.info if exported else model_info(model)
    if args.input_gsd is not None:
        try:
            info.scale_for(args.input_gsd)
        except ValueError as err:
            raise InputError(f"{model_path}: {err}") from None

    failed: list[tuple[Path, str]] = []

    def fail(path: Path, reason: str) -> None:
        failed.append((path, reason))
        if reason:
            _report_error(reason)

    plans = plan_scenes(scene_jobs, args, info, fail)
    stats: dict[Path, list] | None = {} if stats_path is not None else None
    written, start, rate = 0, time.perf_counter(), ""
    if image_jobs or plans:
        model = model if model is not None else open_model(model_path, exported, args.precision)
        try:
            predictor = Predictor(
                model,
                scale=args.scale,
                input_gsd=args.input_gsd,
                tile=args.tile,
                overlap=args.overlap,
                tta=args.tta,
                batch_size=args.batch_size,
            )
        except ValueError as err:
            raise InputError(f"{model_path}: {err}") from None
        if image_jobs:
            print(f"predicting at scale {predictor.scale:.4g} ({scale_reason(args, predictor)})", flush=True)
            report = predict_folder(
                predictor,
                image_jobs,
                workers=args.workers,
                verbose=0 if args.quiet else 1,
                on_error=_report_error,
                with_class_counts=stats is not None,
            )
            failed.extend(report.failed)
            written += len(report.written)
            rate = f" ({report.images_per_second:.2f} images/s)"
            if stats is not None:
                for job in report.written:
                    stats[job.image] = class_areas(
                        job.image.name, report.class_counts[job.image], _pixel_area(args.input_gsd)
                    )
        written += predict_scenes(predictor, plans, args, fail, stats)
    if stats:
        write_stats(stats_path, [row for job in jobs if job.image in stats for row in stats[job.image]])
    seconds = time.perf_counter() - start
    summary = f"wrote {written} mask{'s' * (written != 1)} to {args.output} in {seconds:.1f} s{rate}"
    if stats:
        summary += f"; statistics in {stats_path}"
    if failed:
        summary += f"; {len(failed)} input{'s' * (len(failed) != 1)} failed (see above)"
    print(summary, flush=True)
    return 2 if failed else 0


def open_model(path: Path, exported: bool, precision: str | None):
    """A ``.keras`` model (with its ModelInfo), or an exported artefact as a backend (:mod:`fcn.inference.backends`).

    Raises:
        InputError: the model cannot be opened or does not predict the palette's classes.
    """
    if not exported:
        return load_model(path, precision=precision)
    from fcn.inference.backends import open_backend

    backend = open_backend(path)
    if backend.num_classes != NUM_CLASSES:
        raise InputError(f"{path}: model predicts {backend.num_classes} classes, the palette has {NUM_CLASSES}")
    return backend


def scale_reason(args, predictor: Predictor) -> str:
    """Why the predictor runs at its scale, for the line predict.py prints."""
    info = predictor.backend.info
    if args.scale is not None:
        return "--scale"
    if args.input_gsd is not None:
        return f"input {args.input_gsd:g} m/px, model trained at {info.model_gsd:.4g} m/px"
    if info.train_scale == 1.0:
        return "the model was trained at its tiles' own size"
    return "the scale the model was trained at; --scale or --input-gsd change it"


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
