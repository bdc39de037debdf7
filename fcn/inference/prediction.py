"""A whole ``fcn-predict`` run over images and GeoTIFF scenes, from a :class:`PredictConfig`.

Every check that can fail (flags, paths, output names, scene headers) runs before the model is
loaded. Images are predicted at the scale the model was trained at unless ``scale`` or ``input_gsd``
say otherwise; scenes at the scale their pixel size calls for (:mod:`fcn.inference.scene_jobs`).
``stats`` tabulates the classes' areas (:mod:`fcn.inference.areas`).

A model exported by ``fcn-export`` (``.onnx``, ``.tflite``, SavedModel) runs without importing
Keras: only ``.keras`` models load it, lazily.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from fcn.core.errors import EXIT_USER_ERROR, InputError
from fcn.core.files import missing_folders, remove_if_empty, remove_temp_files_of, signature_note
from fcn.core.palette import NUM_CLASSES
from fcn.inference.areas import ClassArea, check_stats_path, class_areas, write_stats
from fcn.inference.backends import artefact_format, open_backend
from fcn.inference.cluster import ClusterSpec, predict_on_cluster, require_distributed, worker_setup
from fcn.inference.engine import DEFAULT_TILE, Predictor
from fcn.inference.folder import fitting_images, plan_jobs, predict_folder, prepare_output_folder
from fcn.inference.geo import check_value_range
from fcn.inference.jpeg_inputs import jpeg_decoder, sound_images
from fcn.inference.provenance import run_identity, split_finished
from fcn.inference.region import RegionOutputs, mask_class_areas, region_totals, write_region_outputs
from fcn.inference.scene_jobs import JobFailures, SceneReading, pixel_area, plan_scenes, predict_scenes
from fcn.model.checkpoints import (
    ModelInfo,
    check_keras_file,
    load_model,
    model_info,
    read_model_info,
    resolve_model_path,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 4


@dataclass(frozen=True)
class PredictConfig:
    """What ``fcn-predict`` was asked to do (see ``fcn-predict --help`` for each field)."""

    model: Path
    input: Path
    output: Path
    scale: float | None = None
    input_gsd: float | None = None
    tile: int = DEFAULT_TILE
    overlap: int | None = None
    tta: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    overlay: Path | None = None
    bands: tuple[int, ...] | None = None
    value_range: tuple[float, float] | None = None
    stats: Path | None = None
    precision: str | None = None
    workers: int | None = None
    progress: bool = True
    overwrite: bool = False
    cluster: ClusterSpec | None = None
    resume: bool = False
    region: RegionOutputs = RegionOutputs()

    @property
    def predictor_options(self) -> dict:
        """The :class:`Predictor` settings of this run (its scale, windows, TTA and batch)."""
        return dict(
            scale=self.scale,
            input_gsd=self.input_gsd,
            tile=self.tile,
            overlap=self.overlap,
            tta=self.tta,
            batch_size=self.batch_size,
        )

    @property
    def reading(self) -> SceneReading:
        return SceneReading(self.bands, self.value_range, self.scale, self.input_gsd)


def _open_model(path: Path, exported: bool, precision: str | None):
    """A ``.keras`` model (with its ModelInfo), or an exported artefact as a backend (:mod:`fcn.inference.backends`).

    Raises:
        InputError: the model cannot be opened or does not predict the palette's classes.
    """
    if not exported:
        return load_model(path, precision=precision)

    backend = open_backend(path)
    if backend.num_classes != NUM_CLASSES:
        raise InputError(f"{path}: model predicts {backend.num_classes} classes, the palette has {NUM_CLASSES}")
    return backend


def _scale_reason(config: PredictConfig, info: ModelInfo) -> str:
    """Why images are predicted at the scale they are, for the line the command prints."""
    if config.scale is not None:
        return "--scale"
    if config.input_gsd is not None:
        return f"input {config.input_gsd:g} m/px, model trained at {info.model_gsd:.4g} m/px"
    if info.train_scale == 1.0:
        return "the model was trained at its tiles' own size"
    return "the scale the model was trained at; --scale or --input-gsd change it"


def _checked(config: PredictConfig) -> PredictConfig:
    """The config with ``value_range`` normalised; refuses flag combinations that cannot work."""
    if config.overlap is not None and config.overlap >= config.tile:
        raise InputError(f"--overlap must be smaller than --tile={config.tile}, got {config.overlap}")
    if config.stats is not None:
        check_stats_path(config.stats)
    if config.cluster is not None:
        require_distributed()
    return replace(config, value_range=check_value_range(config.value_range))


def _prepare_outputs(config: PredictConfig) -> list[Path]:
    """Create the output folders; returns those that did not exist (deepest first)."""
    created: list[Path] = []
    folders = [(config.output, "--output"), (config.overlay, "--overlay")]
    if config.stats is not None:
        folders.append((Path(config.stats).parent, "--stats"))
    for option in ("mosaic", "polygons"):
        if getattr(config.region, option) is not None:
            folders.append((Path(getattr(config.region, option)).parent, f"--{option}"))
    for folder, option in folders:
        if folder is not None:
            created = missing_folders(folder) + created
            prepare_output_folder(folder, option)
    return created


def _model_path(config: PredictConfig) -> tuple[Path, bool]:
    """The model file and whether it is an exported artefact; refuses a precision an artefact cannot take."""
    if artefact_format(config.model) is None:
        path = resolve_model_path(config.model)
        check_keras_file(path)
        return path, False
    path = Path(config.model)
    if not path.exists():
        raise InputError(f"{path}: no such exported model")
    if config.precision not in (None, "auto", "float32"):
        raise InputError(
            f"--precision {config.precision}: {path} is an exported float32 model; precision applies to .keras models"
        )
    return path, True


@dataclass
class PredictionRun:
    """One run of ``fcn-predict``: :meth:`start` checks everything, :meth:`lines` predicts and reports.

    Attributes:
        written: masks written so far.
        failures: inputs left out, with their reasons.
    """

    config: PredictConfig
    model_path: Path
    exported: bool
    jobs: list
    info: ModelInfo
    model: object = None
    written: int = 0
    failures: JobFailures = field(default_factory=JobFailures)
    areas: dict[Path, list[ClassArea]] | None = None
    created: list[Path] = field(default_factory=list)
    identity: str = ""  # the model and settings, recorded in every output's mark (fcn.inference.provenance)
    skipped: int = 0  # inputs a resumed run found finished

    def _image_scale(self) -> float:
        """The scale plain images run at (the rule of :class:`fcn.inference.engine.Predictor`)."""
        if self.config.scale is not None:
            return self.config.scale
        if self.config.input_gsd is not None:
            return self.info.scale_for(self.config.input_gsd)
        return self.info.train_scale or 1.0

    @classmethod
    def start(cls, config: PredictConfig) -> PredictionRun:
        """Check the flags, paths, output names and the model's facts; loads no model unless it must.

        Raises:
            InputError: anything that would fail later, named in one line.
        """
        config = _checked(config)
        model_path, exported = _model_path(config)
        problems: list[tuple[Path, str]] = []
        jobs = plan_jobs(
            config.input,
            config.output,
            config.overlay,
            config.stats,
            overwrite=config.overwrite,
            model=model_path,
            problems=problems,
        )
        if (config.bands is not None or config.value_range is not None) and not any(j.is_scene for j in jobs):
            raise InputError(f"{config.input}: --bands and --value-range apply to .tif/.tiff inputs, and there is none")
        if config.region.wanted and not any(j.is_scene for j in jobs):
            raise InputError(f"{config.input}: --mosaic and --polygons apply to .tif/.tiff scenes, and there is none")
        config.region.check(model_path, config.overwrite)
        created = _prepare_outputs(config)
        try:
            run = cls._opened(config, model_path, exported, jobs)
        except BaseException:
            remove_if_empty(created)
            raise
        run.created, run.identity = created, run_identity(model_path, config)
        for path, reason in problems:
            run.failures.add(path, reason)
        remove_temp_files_of([p for job in jobs for p in (job.mask, job.overlay) if p is not None])
        return run

    @classmethod
    def _opened(cls, config: PredictConfig, model_path: Path, exported: bool, jobs: list) -> PredictionRun:
        """The run with the model's facts read (and the model loaded when they need it)."""
        model, info = None, None
        if not exported:
            try:  # the scale rule of scenes needs it; reading it does not load TensorFlow
                info = read_model_info(model_path)
            except Exception:  # a damaged file: load_model says what is wrong in one line
                info = None
        if info is None:
            model = _open_model(model_path, exported, config.precision)
            info = model.info if exported else model_info(model)
        if config.input_gsd is not None:
            try:
                info.scale_for(config.input_gsd)
            except ValueError as err:
                raise InputError(f"{model_path}: {err}") from None
        areas = {} if config.stats is not None else None
        return cls(config, model_path, exported, jobs, info, model, areas=areas)

    @property
    def exit_code(self) -> int:
        return EXIT_USER_ERROR if self.failures.items else 0

    def lines(self) -> Iterator[str]:
        """Predict every input; yields the report lines (scale per input kind, the summary) as they come.

        An output folder the run created is removed again when the run writes nothing into it.
        """
        try:
            yield from self._lines()
        finally:
            if not self.written:
                remove_if_empty(self.created)

    def _lines(self) -> Iterator[str]:
        config, start, rate = self.config, time.perf_counter(), ""
        jobs = self._unfinished()
        images = fitting_images(
            [job for job in jobs if not job.is_scene],
            self._image_scale(),
            self.failures,
            config.tile,
            config.batch_size,
            config.tta,
        )
        images = sound_images(images, self.failures, jpeg_decoder(tensorflow=not self.exported))
        plans = plan_scenes([job for job in jobs if job.is_scene], config.reading, self.info, self.failures)
        with signature_note(self.identity):
            if (images or plans) and config.cluster is not None:
                rate = yield from self._on_cluster(images, plans)
            elif images or plans:
                rate = yield from self._here(images, plans)
            if self.areas:
                rows = [row for job in self.jobs if job.image in self.areas for row in self.areas[job.image]]
                write_stats(config.stats, rows + (region_totals(rows) if len(self.areas) > 1 else []))
            failed = {path for path, _ in self.failures.items}
            yield from write_region_outputs(
                config.region, [j for j in self.jobs if j.is_scene and j.image not in failed]
            )
        yield self._summary(time.perf_counter() - start, rate)

    def _unfinished(self) -> list:
        """The jobs to run: all of them, or with ``resume`` those whose outputs this model and settings did not finish."""
        if not self.config.resume:
            return self.jobs
        todo, done = split_finished(self.jobs, self.identity)
        self.skipped = len(done)
        for job in done if self.areas is not None else []:
            area = pixel_area(self.config.input_gsd)
            self.areas[job.image] = mask_class_areas(job.mask, job.image.name, area)
        return todo

    def _here(self, images: list, plans: list) -> Iterator[str]:
        """Predict in this process; returns the speed note of the summary."""
        predictor, rate = self._predictor(), ""
        if images:
            yield f"predicting at scale {predictor.scale:.4g} ({_scale_reason(self.config, predictor.backend.info)})"
            rate = self._predict_images(predictor, images)
        self.written += yield from predict_scenes(
            predictor, plans, self.config.reading, self.failures, self.areas, self.config.progress
        )
        return rate

    def _on_cluster(self, images: list, plans: list) -> Iterator[str]:
        """Predict on the ``--cluster`` workers (:mod:`fcn.inference.cluster`); returns the speed note."""
        config = self.config
        if images:
            yield f"predicting at scale {self._image_scale():.4g} ({_scale_reason(config, self.info)})"
        setup = worker_setup(config, self.model_path, self.exported, self.identity, self.areas is not None)
        outcome = yield from predict_on_cluster(config.cluster, setup, images, plans, self.failures, config.progress)
        self.written += len(outcome.written)
        if self.areas is not None:
            for path, counts in outcome.counts.items():
                self.areas[path] = class_areas(path.name, counts, pixel_area(config.input_gsd))
            self.areas.update(outcome.areas)
        rate = len(outcome.written) / outcome.seconds if outcome.seconds > 0 else 0.0
        return f" ({rate:.2f} files/s on --cluster {config.cluster}, {outcome.startup:.1f} s to start it)"

    def _predictor(self) -> Predictor:
        config = self.config
        if self.model is None:
            self.model = _open_model(self.model_path, self.exported, config.precision)
        try:
            return Predictor(self.model, **config.predictor_options)
        except ValueError as err:
            raise InputError(f"{self.model_path}: {err}") from None

    def _predict_images(self, predictor: Predictor, images: list) -> str:
        """Predict the plain images; returns the speed note of the summary."""
        report = predict_folder(
            predictor,
            images,
            workers=self.config.workers,
            progress=self.config.progress,
            with_class_counts=self.areas is not None,
        )
        self.failures.items.extend(report.failed)
        self.written += len(report.written)
        if self.areas is not None:
            for job in report.written:
                counts = report.class_counts[job.image]
                self.areas[job.image] = class_areas(job.image.name, counts, pixel_area(self.config.input_gsd))
        return f" ({report.images_per_second:.2f} images/s)"

    def _summary(self, seconds: float, rate: str) -> str:
        written, failed = self.written, len(self.failures.items)
        summary = f"wrote {written} mask{'s' * (written != 1)} to {self.config.output} in {seconds:.1f} s{rate}"
        if self.skipped:
            summary += f"; {self.skipped} input{'s' * (self.skipped != 1)} already done (--resume)"
        if self.areas:
            summary += f"; statistics in {self.config.stats}"
        if failed:
            summary += f"; {failed} input{'s' * (failed != 1)} failed (see above)"
        return summary
