"""Export a trained FCN as a standalone inference artefact (the library behind ``fcn-export``).

The formats are Keras's own exporters (``Model.export``), run on the float32 model:

==============  ====================================  ===========================================
``--format``    artefact                              needs (beyond TensorFlow + Keras)
==============  ====================================  ===========================================
``saved_model`` TensorFlow SavedModel directory       nothing; runs with TensorFlow alone
``onnx``        ``.onnx`` file (tf2onnx)              export: tf2onnx, onnx; run: onnxruntime
``litert``      ``.tflite`` flatbuffer                run: ai-edge-litert (or TensorFlow)
==============  ====================================  ===========================================

Every artefact takes one float32 (B, H, W, 3) tensor named ``rgb`` of raw RGB values 0-255, any H
and W that are multiples of 32 (the preprocessing is inside, as in the ``.keras`` file), and returns
float32 (B, H, W, C) per-class softmax probabilities. The metadata (class names and colours from
:mod:`fcn.core.palette`, model name, the run's scale / ground resolution, input and output conventions)
travels in the ONNX file's ``metadata_props`` and, for the other formats, in a sidecar
``<artefact>.json`` (a SavedModel also keeps a copy in ``assets.extra/fcn.json``).
:func:`fcn.inference.artefact_metadata.read_metadata` reads it back from any of them; :mod:`fcn.inference.backends` runs them.

The command (:mod:`fcn.cli.export`) builds an :class:`ExportConfig` and runs :func:`run_export`::

    python scripts/export.py --model RUN_DIR --format onnx --output fcn8s.onnx [--info train_scale=0.5]
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import logging
import os
import shutil
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fcn.core.errors import InputError, first_line
from fcn.core.files import (
    TEMP_MARK,
    atomic_path,
    is_disk_full,
    missing_folders,
    remove_if_empty,
    remove_temp_files_of,
    sync_to_disk,
    write_bytes_atomic,
    write_error,
)
from fcn.core.mark import check_replaceable
from fcn.core.palette import NUM_CLASSES
from fcn.core.paths import check_not_an_input
from fcn.inference.artefact_metadata import INPUT_NAME, ONNX_OUTPUT_NAME, artefact_metadata
from fcn.inference.backends import EMBEDDED_METADATA, LITERT_SUFFIX, ONNX_SUFFIX, SAVED_MODEL_FILE, sidecar_path
from fcn.inference.folder import prepare_output_folder
from fcn.inference.parity import CHECK_SIZES, PARITY_MAX_ABS_DIFF, PARITY_MIN_ARGMAX_AGREEMENT, check_parity
from fcn.model.checkpoints import check_keras_file, load_model, model_info, resolve_model_path, with_precision

log = logging.getLogger(__name__)

FORMATS = ("saved_model", "onnx", "litert")
KERAS_FORMAT = {"saved_model": "tf_saved_model", "onnx": "onnx", "litert": "litert"}
SUFFIX = {"saved_model": "", "onnx": ONNX_SUFFIX, "litert": LITERT_SUFFIX}
EXPORT_EXTRA_HINT = "pip install 'fcn[export]'"


@dataclass
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        path: the artefact (file, or SavedModel directory).
        metadata_path: the sidecar JSON (None for ONNX: its metadata is inside).
        metadata: the metadata dict stored with it.
        seconds: time the export took.
    """

    path: Path
    metadata_path: Path | None
    metadata: dict
    seconds: float


# ---------------------------------------------------------------- export


def _input_signature():
    import tensorflow as tf

    return [tf.TensorSpec([None, None, None, 3], tf.float32, name=INPUT_NAME)]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _check_output_path(
    output: str | os.PathLike, format: str, *, overwrite: bool = False, model: str | os.PathLike | None = None
) -> Path:
    """Check that ``output`` can receive an artefact of ``format``; create its parent folder.

    An existing artefact fcn wrote is replaced (only once the new one is complete); a file fcn did
    not write is refused unless ``overwrite``, and the model being exported (any file of it) always.

    Raises:
        InputError: unknown format, or the path holds something that is not a replaceable artefact,
            or its folder cannot be written.
    """
    if format not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    output = Path(output)
    if format == "saved_model":
        if output.is_file():
            raise InputError(f"{output}: is a file; a SavedModel is a directory")
        if output.is_dir() and any(output.iterdir()) and not (output / SAVED_MODEL_FILE).is_file():
            raise InputError(f"{output}: directory exists and is not a SavedModel; refusing to replace it")
    elif output.is_dir():
        raise InputError(f"{output}: is a directory; --format {format} writes a file")
    sidecar = [] if format == "onnx" else [sidecar_path(output)]
    check_not_an_input([output, *sidecar], model=model)
    for path in [output, *sidecar]:
        check_replaceable(path, overwrite=overwrite, option="--output")
    prepare_output_folder(output.parent if str(output.parent) else Path("."), "--output")
    return output


def _quiet_converters() -> None:
    # tf2onnx logs every rewrite at INFO level; the absl-based converters obey TF_CPP_MIN_LOG_LEVEL.
    # Its errors too: a conversion that fails raises (or yields an invalid model, refused in one line).
    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _collect_garbage_every(seconds: float):
    """Run ``gc.collect()`` every ``seconds`` in a background thread while the block runs.

    tf2onnx's optimizer deep-copies the whole graph, weights included, before each of its passes;
    the copies are reference cycles that Python's generational collector frees late, so collecting
    often bounds the export's peak memory (figures in docs/BENCHMARKS.md, "Exported models").
    """
    stop = threading.Event()

    def collect():
        while not stop.wait(seconds):
            gc.collect()

    worker = threading.Thread(target=collect, name="fcn-export-gc", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


def _finish_onnx(raw: Path, target: Path, metadata: dict) -> None:
    """Name the output, attach the metadata and save the ONNX model to ``target``."""
    import onnx

    proto = onnx.load(str(raw))
    graph = proto.graph
    old_name = graph.output[0].name
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old_name:
                node.output[i] = ONNX_OUTPUT_NAME
        for i, name in enumerate(node.input):
            if name == old_name:
                node.input[i] = ONNX_OUTPUT_NAME
    graph.output[0].name = ONNX_OUTPUT_NAME
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.doc_string = (
        f"fcn {metadata['model_name']}: input '{INPUT_NAME}' float32 (B, H, W, 3) RGB 0-255, H and W multiples of 32; "
        f"output '{ONNX_OUTPUT_NAME}' float32 (B, H, W, {metadata['num_classes']}) softmax probabilities."
    )
    try:
        onnx.checker.check_model(proto)
    except Exception as err:  # ValidationError: its message is the whole failing node
        raise InputError(
            f"--format onnx: the converted model is not valid ONNX ({first_line(err)[:160]}); "
            "is --opset too old? tf2onnx's default works"
        ) from None
    write_bytes_atomic(target, proto.SerializeToString())  # checked; ONNX's own save does not sync or check


def _convert(model, raw: Path, format: str, opset: int | None, target: Path) -> None:
    """Run Keras's exporter for ``format`` into ``raw``; its failures become one-line InputErrors."""
    try:
        with warnings.catch_warnings(), _collect_garbage_every(0.5):
            # Keras's tf2onnx patch probes the removed np.object, which numpy 2 warns about.
            warnings.simplefilter("ignore", FutureWarning)
            model.export(
                str(raw),
                format=KERAS_FORMAT[format],
                input_signature=_input_signature(),
                verbose=False,
                **({"opset_version": opset} if format == "onnx" and opset is not None else {}),
            )
    except ImportError as err:
        raise InputError(f"--format {format} needs {err.name}: {EXPORT_EXTRA_HINT}") from None
    except Exception as err:  # the converters raise many types; the user gets the real one
        if is_disk_full(err) or _says_disk_full(err):
            raise write_error(target, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from None
        raise InputError(f"--format {format}: export failed ({err.__class__.__name__}: {first_line(err)})") from None


def _says_disk_full(err: BaseException) -> bool:
    """TensorFlow's savers report a full disk as ``ResourceExhaustedError`` naming one of its functions: the
    words give it away."""
    text = str(err)
    return any(words in text for words in (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT)))


def _swap_into_place(staging: Path, output: Path, metadata_path: Path | None, metadata: dict) -> None:
    """Rename the finished artefact to ``output``; the sidecar is written first and replaces the old one
    once the artefact is in place, and an old artefact goes only once the new one is complete."""
    with atomic_path(metadata_path) if metadata_path else contextlib.nullcontext() as tmp_json:
        if tmp_json is not None:
            tmp_json.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        sync_to_disk(staging)
        if output.exists():
            old = output.with_name(f".{output.name}{TEMP_MARK}old-{os.getpid()}")
            os.replace(output, old)
            os.replace(staging, output)
            _remove(old)
        else:
            os.replace(staging, output)


def export_model(
    model,
    output: str | os.PathLike,
    format: str,
    *,
    model_info: dict | None = None,
    source: str | os.PathLike | None = None,
    opset: int | None = None,
) -> ExportResult:
    """Export a float32 Keras FCN to ``output`` in ``format`` with its metadata.

    The artefact is written under a temporary name next to ``output`` and renamed into place when it
    is complete, so an interrupted or failed export never leaves a half-written file (an existing
    artefact at ``output`` is replaced only then).

    Args:
        model: a Keras model mapping float32 RGB 0-255 (B, H, W, 3) to (B, H, W, C) probabilities; a
            model under a mixed policy is exported as its float32 copy.
        output: artefact path: a directory for ``saved_model``, a file for ``onnx`` / ``litert``
            (conventionally ``.onnx`` / ``.tflite``, which :func:`fcn.inference.backends.open_backend` relies on).
        format: one of :data:`FORMATS`.
        model_info: run facts to store (see :func:`artefact_metadata`).
        source: the model file, recorded in the metadata.
        opset: ONNX opset (None: tf2onnx's default).

    Returns:
        What was written.

    Raises:
        InputError: bad output path, a missing export package, or a conversion that fails (the
            exporter's own error, first line).
    """
    output = _check_output_path(output, format)
    if format == "onnx":
        try:
            import onnx  # noqa: F401
            import tf2onnx  # noqa: F401
        except ImportError as err:
            raise InputError(f"--format onnx needs {err.name}: {EXPORT_EXTRA_HINT}") from None

    model = with_precision(model, "float32")  # Keras exports float32 policies only (ONNX); parity is stated in float32
    _quiet_converters()
    metadata = artefact_metadata(model, format, model_info=model_info, source=source)
    start = time.perf_counter()
    # Temporary names end with the format's suffix: Keras insists on ".tflite" for LiteRT.
    # Temporary names carry TEMP_MARK, so that the next run removes what a killed one left.
    staging = output.with_name(f".{output.name}{TEMP_MARK}{os.getpid()}{SUFFIX[format]}")
    raw = (
        output.with_name(f".{output.name}{TEMP_MARK}raw-{os.getpid()}{SUFFIX[format]}") if format == "onnx" else staging
    )
    metadata_path = None if format == "onnx" else sidecar_path(output)
    try:
        _convert(model, raw, format, opset, output)
        if format == "onnx":
            _finish_onnx(raw, output, metadata)
        else:
            if format == "saved_model":
                embedded = staging / EMBEDDED_METADATA
                embedded.parent.mkdir(parents=True, exist_ok=True)
                embedded.write_text(json.dumps(metadata, indent=2), encoding="utf-8")
            _swap_into_place(staging, output, metadata_path, metadata)
    except OSError as err:  # a full disk, an unwritable folder: one line naming the artefact
        raise write_error(output, err) from None
    finally:
        for leftover in {raw, staging}:
            _remove(leftover)
    return ExportResult(output, metadata_path, metadata, time.perf_counter() - start)


@dataclass(frozen=True)
class ExportConfig:
    """What ``fcn-export`` was asked to do.

    Attributes:
        model: a ``.keras`` file or a run directory (its best.keras, else last.keras).
        format: one of :data:`FORMATS`.
        output: the artefact path.
        info: facts stored besides the run's own (``--info KEY=VALUE``).
        opset: ONNX opset (None: tf2onnx's default).
        check: run the parity check afterwards.
    """

    model: Path
    format: str
    output: Path
    info: dict = field(default_factory=dict)
    opset: int | None = None
    check: bool = True
    overwrite: bool = False


def run_export(config: ExportConfig) -> Iterator[str]:
    """Export the model and check the artefact against it; yields the report lines as they come.

    Raises:
        InputError: a bad model or output path, a failed export, or an artefact that differs from
            the Keras model beyond the parity thresholds.
    """
    # Every check that can fail runs before the model is loaded.
    model_path = resolve_model_path(config.model)
    check_keras_file(model_path)
    check_not_an_input([config.output], model=config.model)
    created = missing_folders(Path(config.output).parent)
    try:
        output = _check_output_path(config.output, config.format, overwrite=config.overwrite, model=model_path)
        remove_temp_files_of([output, sidecar_path(output)])  # what a killed export left
        model = load_model(model_path, precision="float32", num_classes=NUM_CLASSES)
        info = {**model_info(model).to_dict(), **config.info}  # the run's scale travels with it
        result = export_model(model, output, config.format, model_info=info, source=model_path, opset=config.opset)
    except BaseException:
        remove_if_empty(created)
        raise
    where = f"{result.path}" + (
        f" (metadata: {result.metadata_path})" if result.metadata_path else " (metadata inside)"
    )
    yield f"exported {model_path} as {config.format} to {where} in {result.seconds:.1f} s"
    if not config.check:
        return
    try:
        parity = check_parity(model, result.path)
    except InputError as err:  # e.g. the runtime of this format is not installed here
        log.warning("note: parity check skipped: %s", err)
        return
    sizes = " and ".join(f"{h}x{w}" for h, w in CHECK_SIZES)
    yield f"parity vs Keras on random {sizes} images: {parity} ({'ok' if parity.ok else 'FAILED'})"
    if not parity.ok:
        raise InputError(
            f"{result.path}: differs from the Keras model beyond max |dp| {PARITY_MAX_ABS_DIFF:g} / "
            f"argmax agreement {100 * PARITY_MIN_ARGMAX_AGREEMENT:g} % ({parity}); do not ship it"
        )
