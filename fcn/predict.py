"""Predicting folders of images: ``scripts/predict.py`` / ``fcn-predict``.

``python scripts/predict.py --model RUN_DIR --input DIR --output DIR`` writes one palette mask
``<id>_mask.png`` per image (``0001_sat.jpg`` -> ``0001_mask.png``, the course's naming), decoding the
next images and encoding the finished masks in a thread pool while the engine
(:class:`fcn.engine.Predictor`) runs the model. By default images are predicted at the scale the model
was trained at; ``--input-gsd`` or ``--scale`` say otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np

from .backends import artefact_format
from .checkpoints import load_model, resolve_model_path
from .engine import DEFAULT_TILE, Predictor
from .errors import ArgumentParser, InputError, multiple_of_32, non_negative_int, positive_float, positive_int, run_cli
from .figures import overlay_image
from .images import MASK_SUFFIX, list_images, read_rgb, tile_id, write_image_atomic, write_mask
from .palette import NUM_CLASSES
from .runtime import PRECISIONS

OVERLAY_JPEG_QUALITY = 90


# ---------------------------------------------------------------- folders


class PredictionJob(NamedTuple):
    """One input image and the files written for it (``overlay`` is None without ``--overlay``)."""

    image: Path
    mask: Path
    overlay: Path | None


def mask_name(path: str | os.PathLike) -> str:
    """File name of the predicted mask: ``0001_sat.jpg`` -> ``0001_mask.png``."""
    return f"{tile_id(path)}{MASK_SUFFIX}.png"


def overlay_name(path: str | os.PathLike) -> str:
    """File name of the overlay: ``0001_sat.jpg`` -> ``0001_overlay.jpg``."""
    return f"{tile_id(path)}_overlay.jpg"


def list_input_images(folder: str | os.PathLike) -> list[Path]:
    """Images to predict in ``folder``: ``.jpg``/``.jpeg``/``.png``, except ``*_mask.png`` masks.

    Raises:
        InputError: no such folder, or no image in it.
    """
    images = [p for p in list_images(folder) if not p.name.lower().endswith(f"{MASK_SUFFIX}.png")]
    if not images:
        raise InputError(f"{folder}: no .jpg/.jpeg/.png image to predict (files *_mask.png are skipped)")
    return images


def _same_path(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def plan_jobs(
    input_dir: str | os.PathLike, output_dir: str | os.PathLike, overlay_dir: str | os.PathLike | None = None
) -> list[PredictionJob]:
    """List the images of ``input_dir`` and the files to write for each, refusing any overwrite of inputs.

    Raises:
        InputError: missing or empty input folder, an output folder that is the input folder, two
            inputs with the same output name, or an output path that is an input file.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    images = list_input_images(input_dir)
    folders = [("--output", output_dir)] + ([("--overlay", Path(overlay_dir))] if overlay_dir is not None else [])
    for option, folder in folders:
        if _same_path(folder, input_dir):
            raise InputError(f"{folder}: {option} folder is the input folder; refusing to write next to the inputs")
    inputs = {p.resolve() for p in images}
    jobs, claimed = [], {}
    for image in images:
        job = PredictionJob(
            image, output_dir / mask_name(image), Path(overlay_dir) / overlay_name(image) if overlay_dir is not None else None
        )
        for target in (job.mask, job.overlay):
            if target is None:
                continue
            key = target.resolve()
            if key in inputs:
                raise InputError(f"{target}: output would overwrite an input file")
            if key in claimed:
                raise InputError(f"{image}: writes {target.name} like {claimed[key].name}; rename one of them")
            claimed[key] = image
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


def _prefetch(pool: ThreadPoolExecutor, read, jobs: Sequence[PredictionJob], depth: int) -> Iterator[tuple[PredictionJob, Future]]:
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
    """

    written: list[PredictionJob] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

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

    Returns:
        The report; ``report.failed`` is empty when everything was written.
    """
    on_error = on_error or (lambda line: print(f"error: {line}", file=sys.stderr, flush=True))
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

    def finish_write(job: PredictionJob, future: Future) -> None:
        try:
            future.result()
            report.written.append(job)
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
            writes.append((job, pool.submit(_write_outputs, job, class_map, rgb)))
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
        "(xxxx_sat.jpg -> xxxx_mask.png; files *_mask.png are skipped). Any image size.",
    )
    parser.add_argument("--model", required=True, metavar="MODEL", help="a .keras file, a run directory (its best.keras, "
                        "else last.keras), or a model exported by fcn-export (.onnx, .tflite, SavedModel directory)")
    parser.add_argument("--input", required=True, metavar="DIR", help="folder of images")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the masks (created; must not be the input folder)")
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--scale", type=positive_float, default=None, metavar="F",
                       help="resize images by F before inference; masks keep the input size (default: the scale the model "
                       "was trained at, so inputs like its training tiles are seen as in training)")
    scale.add_argument("--input-gsd", type=positive_float, default=None, metavar="M",
                       help="ground sample distance of the inputs in metres per pixel (e.g. 0.5 for full DeepGlobe tiles); "
                       "the scale becomes M / the model's training ground sample distance")
    parser.add_argument("--tile", type=multiple_of_32, default=DEFAULT_TILE, metavar="N", help=f"sliding-window side for larger images, multiple of 32 (default {DEFAULT_TILE})")
    parser.add_argument("--overlap", type=non_negative_int, default=None, metavar="N", help="minimum overlap of sliding windows in pixels (default: tile / 8)")
    parser.add_argument("--tta", action="store_true", help="average over the 8 flips/rotations (8x slower)")
    parser.add_argument("--batch-size", type=positive_int, default=4, metavar="N", help="images or windows per model call (default 4)")
    parser.add_argument("--overlay", metavar="DIR", help="also write <id>_overlay.jpg: the image blended with its mask, class boundaries in red")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="compute dtype policy (default: as saved; auto: mixed_float16 on tensor-core GPUs, mixed_bfloat16 on CPUs "
        "with AMX-BF16, float32 elsewhere). On CPU the .keras model with auto is the fastest choice",
    )
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N", help=f"reader/writer threads (default {default_workers()})")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.overlap is not None and args.overlap >= args.tile:
        raise InputError(f"--overlap must be smaller than --tile={args.tile}, got {args.overlap}")

    # Every check that can fail runs before the model is loaded.
    exported = artefact_format(args.model) is not None
    if exported:
        model_path = Path(args.model)
        if not model_path.exists():
            raise InputError(f"{model_path}: no such exported model")
        if args.precision not in (None, "auto", "float32"):
            raise InputError(f"--precision {args.precision}: {model_path} is an exported float32 model; "
                             "precision applies to .keras models")
    else:
        model_path = resolve_model_path(args.model, note=_to_stderr)
    jobs = plan_jobs(args.input, args.output, args.overlay)
    prepare_output_folder(args.output, "--output")
    if args.overlay is not None:
        prepare_output_folder(args.overlay, "--overlay")
    model = open_model(model_path, exported, args.precision)
    try:
        predictor = Predictor(model, scale=args.scale, input_gsd=args.input_gsd, tile=args.tile, overlap=args.overlap,
                              tta=args.tta, batch_size=args.batch_size)
    except ValueError as err:
        raise InputError(f"{model_path}: {err}") from None
    print(f"predicting at scale {predictor.scale:.4g} ({scale_reason(args, predictor)})", flush=True)
    report = predict_folder(predictor, jobs, workers=args.workers, verbose=0 if args.quiet else 1)
    summary = (
        f"wrote {len(report.written)} mask{'s' * (len(report.written) != 1)} to {args.output} in "
        f"{report.seconds:.1f} s ({report.images_per_second:.2f} images/s)"
    )
    if report.failed:
        summary += f"; {len(report.failed)} image{'s' * (len(report.failed) != 1)} failed (see above)"
    print(summary, flush=True)
    return 2 if report.failed else 0


def open_model(path: Path, exported: bool, precision: str | None):
    """A ``.keras`` model (with its ModelInfo), or an exported artefact as a backend (:mod:`fcn.backends`).

    Raises:
        InputError: the model cannot be opened or does not predict the palette's classes.
    """
    if not exported:
        return load_model(path, precision=precision)
    from .backends import open_backend

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
