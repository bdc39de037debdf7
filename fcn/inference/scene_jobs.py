"""Scene jobs of ``fcn-predict``: GeoTIFF inputs checked before the model loads, then predicted one by one.

Each scene is read and predicted window by window (:mod:`fcn.inference.scenes`) at the scale its pixel
size calls for, and written as a georeferenced ``<id>_mask.tif`` class map. A scene that cannot run is
logged (one line naming the file) and the next one still runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fcn.core.errors import InputError
from fcn.core.files import DiskFullError
from fcn.inference.areas import ClassArea, class_areas
from fcn.inference.engine import Predictor, window_grid
from fcn.inference.folder import PredictionJob
from fcn.inference.geo import open_scene, require_rasterio
from fcn.inference.geo_writer import write_overlay_preview
from fcn.inference.scenes import predict_scene, scene_batch_size, scene_scale
from fcn.model.checkpoints import ModelInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SceneReading:
    """How scenes are read and scaled: ``--bands``, ``--value-range``, ``--scale``, ``--input-gsd``."""

    bands: tuple[int, ...] | None = None
    value_range: tuple[float, float] | None = None
    scale: float | None = None
    input_gsd: float | None = None

    def open(self, path: Path):
        return open_scene(path, bands=self.bands, value_range=self.value_range)


@dataclass
class ScenePlan:
    """A scene that passed the checks before the model loads, and the scale it runs at."""

    job: PredictionJob
    scale: float
    reason: str


@dataclass
class JobFailures:
    """Inputs left out, with their one-line reasons (logged when recorded; empty reasons are not)."""

    items: list[tuple[Path, str]] = field(default_factory=list)

    def add(self, path: Path, reason: str) -> None:
        self.items.append((path, reason))
        if reason:
            log.error("error: %s", reason)


def plan_scenes(
    jobs: Sequence[PredictionJob], reading: SceneReading, info: ModelInfo, failures: JobFailures
) -> list[ScenePlan]:
    """Open every scene's header, check its bands and find its scale; record the ones that cannot run.

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
        failures.add(jobs[0].image, f"{jobs[0].image}{also}: {err}")
        for job in jobs[1:]:
            failures.add(job.image, "")
        return []
    plans = []
    for job in jobs:
        try:
            with reading.open(job.image) as scene:
                scale, reason = scene_scale(scene, info, scale=reading.scale, input_gsd=reading.input_gsd)
        except InputError as err:
            failures.add(job.image, str(err))
            continue
        plans.append(ScenePlan(job, scale, reason))
    return plans


def pixel_area(input_gsd: float | None) -> float | None:
    """Ground area of a pixel from ``--input-gsd`` (None without it)."""
    return None if input_gsd is None else input_gsd * input_gsd


def _scene_line(plan: ScenePlan, scene, predictor: Predictor, batch_size: int) -> str:
    """``scene.tif: HxW px, predicting at scale S (reason), N windows[, B windows per model call]``."""
    grid = window_grid(*predictor.working_size(scene.height, scene.width), predictor.tile, predictor.overlap)
    windows = len(grid.windows)
    batch = scene_batch_size(predictor)
    capped = f", {batch} window{'s' * (batch != 1)} per model call" if batch < min(windows, batch_size) else ""
    return (
        f"{plan.job.image.name}: {scene.height}x{scene.width} px, predicting at scale {plan.scale:.4g} "
        f"({plan.reason}), {windows} window{'s' * (windows != 1)}{capped}"
    )


def predict_scenes(
    predictor: Predictor,
    plans: Sequence[ScenePlan],
    reading: SceneReading,
    failures: JobFailures,
    areas: dict[Path, list[ClassArea]] | None = None,
    progress: bool = True,
) -> Iterator[str]:
    """Predict the planned scenes one after the other, yielding each scene's line before it runs.

    A scene that fails is recorded in ``failures`` and the next one still runs. With ``areas``, each
    written scene's class areas are stored under its path. The generator's return value (the
    ``StopIteration`` value, or ``yield from``'s) is how many scenes were written.
    """
    written = 0
    for plan in plans:
        job = plan.job
        scene_predictor = predictor.replace(scale=plan.scale)
        try:
            with reading.open(job.image) as scene:
                yield _scene_line(plan, scene, scene_predictor, predictor.batch_size)
                result = predict_scene(scene_predictor, scene, job.mask, verbose=int(progress))
                if job.overlay is not None:
                    write_overlay_preview(scene, job.mask, job.overlay)
                area = scene.pixel_area_m2 if scene.pixel_area_m2 is not None else pixel_area(reading.input_gsd)
        except DiskFullError:
            raise  # every later scene would fail the same way: stop at the first
        except InputError as err:
            failures.add(job.image, str(err))
            continue
        written += 1
        if areas is not None:
            areas[job.image] = class_areas(job.image.name, result.class_counts, area)
    return written
