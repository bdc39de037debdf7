"""``fcn-predict --cluster``: the inputs of a run spread over the workers of a ``dask.distributed`` cluster.

The client (the command) plans and checks every input as a single-process run does, then submits
small tasks: a few image jobs (one model batch) or one scene. A task names files only; the worker
reads its inputs and writes its outputs itself, on storage every worker shares, through the same
functions the single-process run calls (:func:`fcn.inference.folder.predict_folder`,
:func:`fcn.inference.scene_jobs.predict_scenes`) and so through the same checked writer: the masks
are the same bytes. What comes back is small: the jobs written, one-line failures, class counts.

* Each worker process loads the model once (:func:`_worker_predictor`, cached by model path and run
  identity); an exported ``.onnx`` model never imports TensorFlow there.
* At most a few tasks per worker thread are in flight (:func:`_completed`): memory on the client
  stays bounded whatever the number of inputs.
* A worker that dies mid-task leaves no output under its final name (every file is written under a
  temporary name and renamed when whole); the scheduler runs its tasks again elsewhere.

dask is an optional dependency (``pip install 'fcn[cluster]'``), imported only here and lazily.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError, first_line
from fcn.core.files import DiskFullError, remove_temp_files_of, signature_note
from fcn.core.lazy import quiet_tensorflow
from fcn.core.palette import NUM_CLASSES
from fcn.core.progress import progress_bar
from fcn.core.workers import available_cores
from fcn.inference.backends import open_backend
from fcn.inference.engine import Predictor
from fcn.inference.folder import predict_folder
from fcn.inference.scene_jobs import JobFailures, predict_scenes
from fcn.model.checkpoints import load_model

log = logging.getLogger(__name__)

CLUSTER_HINT = "pip install 'fcn[cluster]'"
TASKS_PER_THREAD = 2  # tasks in flight per worker thread: one running, one queued behind it
_LOCAL = re.compile(r"^local(?::(\d+))?$")


@dataclass(frozen=True)
class ClusterSpec:
    """``--cluster``: ``local[:N]`` (a LocalCluster of N worker processes) or a scheduler's address."""

    address: str | None = None
    local_workers: int | None = None

    @classmethod
    def parse(cls, text: str) -> ClusterSpec:
        """``local``, ``local:N`` or ``tcp://HOST:PORT`` (any dask address with a scheme).

        Raises:
            ValueError: anything else.
        """
        match = _LOCAL.match(text)
        if match:
            workers = int(match.group(1)) if match.group(1) else available_cores()
            if workers < 1:
                raise ValueError("local:N needs at least 1 worker")
            return cls(local_workers=workers)
        if "://" in text and text.split("://", 1)[1]:
            return cls(address=text)
        raise ValueError(f"expected local, local:N or a scheduler address like tcp://HOST:8786, got {text!r}")

    def __str__(self) -> str:
        return self.address or f"local:{self.local_workers}"


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker needs to build the run's predictor: paths and settings only (it travels with every task)."""

    model: Path
    exported: bool
    precision: str | None
    identity: str
    predictor: tuple[tuple[str, object], ...]  # Predictor keyword arguments
    reading: object  # fcn.inference.scene_jobs.SceneReading
    model_threads: int | None = None
    io_threads: int | None = None
    with_counts: bool = False


@dataclass
class TaskResult:
    """What one task sends back: small things only."""

    inputs: int
    written: list = field(default_factory=list)  # PredictionJob
    failed: list[tuple[Path, str]] = field(default_factory=list)
    counts: dict[Path, np.ndarray] = field(default_factory=dict)  # image -> pixels per class
    areas: dict[Path, list] = field(default_factory=dict)  # scene -> ClassArea rows
    lines: list[str] = field(default_factory=list)
    disk_full: DiskFullError | None = None


# ---------------------------------------------------------------- on the worker

_PREDICTORS: dict[tuple, object] = {}  # one backend per worker process: the last (model, identity) asked for


def _worker_backend(setup: WorkerSetup):
    """The model of this run, loaded once per worker process (a new run's model replaces it)."""
    key = (str(setup.model), setup.identity, setup.precision, setup.model_threads)
    if key not in _PREDICTORS:
        _PREDICTORS.clear()
        quiet = logging.getLogger("fcn")  # the client prints each failure once; workers say nothing
        quiet.propagate = False
        if not quiet.handlers:
            quiet.addHandler(logging.NullHandler())
        if setup.exported:
            backend = open_backend(setup.model, threads=setup.model_threads)
            if backend.num_classes != NUM_CLASSES:
                raise InputError(f"{setup.model}: model predicts {backend.num_classes} classes, not {NUM_CLASSES}")
        else:
            quiet_tensorflow()  # as the command does: TensorFlow's start-up lines stay off the worker's stderr
            _limit_tensorflow_threads(setup.model_threads)
            backend = load_model(setup.model, precision=setup.precision)
        _PREDICTORS[key] = backend
    return _PREDICTORS[key]


def _limit_tensorflow_threads(threads: int | None) -> None:
    """Local workers share the cores: each TensorFlow gets its share (before its runtime starts)."""
    if threads is None:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised in this worker: it keeps its pools
        log.debug("TensorFlow's thread pools were already set up in this worker")


def _worker_predictor(setup: WorkerSetup):
    return Predictor(_worker_backend(setup), **dict(setup.predictor))


def _run_task(setup: WorkerSetup, images: Sequence, scenes: Sequence) -> TaskResult:
    """Predict some image jobs (one model batch) or scene plans on this worker; the outputs go to shared storage.

    Image jobs go through :func:`fcn.inference.folder.predict_folder` and scenes through
    :func:`fcn.inference.scene_jobs.predict_scenes`, as in a single-process run.
    """
    result = TaskResult(inputs=len(images) + len(scenes))
    predictor = _worker_predictor(setup)
    with signature_note(setup.identity):
        try:
            if images:
                report = predict_folder(
                    predictor, images, workers=setup.io_threads, progress=False, with_class_counts=setup.with_counts
                )
                result.written += report.written
                result.failed += report.failed
                result.counts.update(report.class_counts)
            if scenes:
                failures = JobFailures()
                areas = {} if setup.with_counts else None
                lines = predict_scenes(predictor, scenes, setup.reading, failures, areas, progress=False)
                result.lines += _lines_and_count(lines, result, [plan.job for plan in scenes], failures)
                result.failed += failures.items
                result.areas.update(areas or {})
        except DiskFullError as err:
            result.disk_full = err
    return result


def _lines_and_count(lines: Iterator[str], result: TaskResult, jobs: list, failures) -> list[str]:
    """Run ``predict_scenes``'s generator to its end; the scenes that did not fail go to ``result.written``."""
    collected = list(lines)
    failed = {path for path, _ in failures.items}
    result.written += [job for job in jobs if job.image not in failed]
    return collected


# ---------------------------------------------------------------- on the client


def require_distributed():
    """The ``distributed`` module; an InputError naming the extra to install when it is missing."""
    try:
        import distributed
    except ImportError:
        raise InputError(f"--cluster needs dask.distributed: {CLUSTER_HINT}") from None
    return distributed


@contextmanager
def _connect(spec: ClusterSpec):
    """A dask ``Client`` of the cluster ``spec`` names; a local cluster lives as long as the block.

    Raises:
        InputError: dask is not installed, or the scheduler cannot be reached.
    """
    distributed = require_distributed()
    if spec.local_workers is not None:
        with (
            _quiet_dask(),
            distributed.LocalCluster(
                n_workers=spec.local_workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = distributed.Client(spec.address, timeout="20s")
    except (OSError, TimeoutError) as err:
        raise InputError(f"--cluster {spec.address}: cannot reach the scheduler ({err})") from None
    with client:
        yield client


@contextmanager
def _quiet_dask():
    """dask's own warnings (a worker slow to exit at shutdown, say) only with ``-v``: a failure reaches us anyway."""
    logger = logging.getLogger("distributed")
    level = logger.level
    if not log.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _local_model_threads(spec: ClusterSpec) -> int | None:
    """Model threads per worker: the cores shared out among local workers; a remote worker uses its machine's."""
    if spec.local_workers is None:
        return None
    return max(1, available_cores() // spec.local_workers)


def worker_setup(config, model_path: Path, exported: bool, identity: str, with_counts: bool) -> WorkerSetup:
    """The :class:`WorkerSetup` of a run's ``PredictConfig`` (paths made absolute: workers have other working folders)."""
    return WorkerSetup(
        model=Path(model_path).absolute(),
        exported=exported,
        precision=config.precision,
        identity=identity,
        predictor=tuple(config.predictor_options.items()),
        reading=config.reading,
        model_threads=_local_model_threads(config.cluster),
        io_threads=config.workers or 2,
        with_counts=with_counts,
    )


def _absolute(job):
    return type(job)(*(None if p is None else Path(p).absolute() for p in job))


def _make_tasks(images: Sequence, scenes: Sequence, batch_size: int) -> list[tuple[list, list]]:
    """Tasks of ``batch_size`` consecutive image jobs (a model batch, as the single process forms them) or one scene.

    Paths are made absolute: a worker started elsewhere has another working folder.
    """
    images = [_absolute(job) for job in images]
    tasks = [(images[i : i + batch_size], []) for i in range(0, len(images), batch_size)]
    return tasks + [([], [replace(plan, job=_absolute(plan.job))]) for plan in scenes]


def _completed(client, setup: WorkerSetup, tasks: list[tuple[list, list]]) -> Iterator[TaskResult]:
    """Submit ``tasks`` a window at a time and yield their results as they finish (in any order).

    A task that fails as a whole (its worker died more often than the scheduler allows, or the model
    cannot load there) comes back as the failure of each of its inputs.
    """
    from distributed import as_completed

    threads = sum(client.nthreads().values()) or 1
    window = max(2, TASKS_PER_THREAD * threads)
    remaining = iter(tasks)
    running, submitted = as_completed(), {}

    def submit(task: tuple[list, list]) -> None:
        future = client.submit(_run_task, setup, *task, pure=False)
        submitted[future.key] = task
        running.add(future)

    for task in [next(remaining) for _ in range(min(window, len(tasks)))]:
        submit(task)
    for future in running:
        task = submitted.pop(future.key)
        try:
            result = future.result()
        except InputError:
            raise  # the model itself: every task would fail the same way
        except Exception as err:
            result = _failed_task(task, err)
        future.release()
        following = next(remaining, None)
        if following is not None:
            submit(following)
        yield result


def _failed_task(task: tuple[list, list], err: BaseException) -> TaskResult:
    images, scenes = task
    paths = [job.image for job in images] + [plan.job.image for plan in scenes]
    reason = f"{err.__class__.__name__}: {first_line(err)}"
    return TaskResult(inputs=len(paths), failed=[(path, f"{path}: failed on the cluster ({reason})") for path in paths])


@dataclass
class ClusterOutcome:
    """What the cluster wrote: the jobs, the class counts of images, the class areas of scenes, and the times.

    Attributes:
        startup: seconds to start (``local``) or join the cluster.
        seconds: seconds from then until the last result.
    """

    written: list = field(default_factory=list)
    counts: dict[Path, np.ndarray] = field(default_factory=dict)
    areas: dict[Path, list] = field(default_factory=dict)
    startup: float = 0.0
    seconds: float = 0.0


def predict_on_cluster(
    spec: ClusterSpec, setup: WorkerSetup, images: Sequence, scenes: Sequence, failures, progress: bool = True
) -> Iterator[str]:
    """Run the planned image jobs and scene plans on the cluster; yields scene lines, returns a :class:`ClusterOutcome`.

    Failures are recorded in ``failures`` (one logged line each) and the other inputs still run. A
    full disk stops the run at the first task that meets it.

    Raises:
        DiskFullError: the shared storage is full.
    """
    outcome = ClusterOutcome()
    tasks = _make_tasks(images, scenes, dict(setup.predictor)["batch_size"])
    jobs = [*images, *(plan.job for plan in scenes)]
    original = {_absolute(job).image: job for job in jobs}
    total, start = len(jobs), time.perf_counter()
    with _connect(spec) as client, progress_bar(total, unit="file", enabled=progress) as bar:
        outcome.startup = time.perf_counter() - start
        workers = len(client.nthreads())
        log.info("cluster %s: %d worker%s, %d tasks", spec, workers, "s" * (workers != 1), len(tasks))
        for result in _completed(client, setup, tasks):
            for path, reason in result.failed:
                failures.add(path, reason)
            if result.disk_full is not None:
                raise result.disk_full
            outcome.written += [original[job.image] for job in result.written]
            outcome.counts.update({original[path].image: counts for path, counts in result.counts.items()})
            outcome.areas.update({original[path].image: rows for path, rows in result.areas.items()})
            bar.update(result.inputs)
            yield from result.lines
        outcome.seconds = time.perf_counter() - start - outcome.startup
    remove_temp_files_of([p for job in jobs for p in (job.mask, job.overlay) if p is not None])  # of killed workers
    return outcome
