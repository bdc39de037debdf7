"""Export a trained FCN as a standalone inference artefact, and the ``fcn-export`` command.

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
:func:`read_metadata` reads it back from any of them; :mod:`fcn.inference.backends` runs them.

Command::

    python scripts/export.py --model RUN_DIR --format onnx --output fcn8s.onnx [--info train_scale=0.5]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcn.cli.common import ArgumentParser, positive_int, run_cli
from fcn.core.errors import InputError, first_line, to_stderr
from fcn.core.files import atomic_path
from fcn.core.palette import CLASSES, NUM_CLASSES
from fcn.inference.backends import (
    EMBEDDED_METADATA,
    LITERT_SUFFIX,
    ONNX_SUFFIX,
    SAVED_MODEL_FILE,
    artefact_format,
    metadata_from_props,
    open_backend,
    read_sidecar,
    sidecar_path,
)

FORMATS = ("saved_model", "onnx", "litert")
KERAS_FORMAT = {"saved_model": "tf_saved_model", "onnx": "onnx", "litert": "litert"}
SUFFIX = {"saved_model": "", "onnx": ONNX_SUFFIX, "litert": LITERT_SUFFIX}
INPUT_NAME = "rgb"
ONNX_OUTPUT_NAME = "probabilities"
KERAS_OUTPUT_NAME = "output_0"  # the name Keras gives the output of its SavedModel/LiteRT signature
METADATA_VERSION = 1
EXPORT_EXTRA_HINT = "pip install 'fcn[export]'"

# Parity of an artefact with the Keras model it came from, in float32 (issue 14).
PARITY_MAX_ABS_DIFF = 1e-4
PARITY_MIN_ARGMAX_AGREEMENT = 0.9999
# Random images the export self-check runs (height, width): two shapes, one not square.
CHECK_SIZES = ((64, 64), (96, 128))


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


@dataclass
class Parity:
    """How closely an artefact reproduces the Keras model on the same inputs.

    Attributes:
        max_abs_diff: largest |difference| of any probability.
        argmax_agreement: fraction of pixels whose argmax class is the same.
        pixels: pixels compared.
    """

    max_abs_diff: float
    argmax_agreement: float
    pixels: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= PARITY_MAX_ABS_DIFF and self.argmax_agreement >= PARITY_MIN_ARGMAX_AGREEMENT

    def __str__(self) -> str:
        return f"max |dp| {self.max_abs_diff:.2e}, argmax agreement {100 * self.argmax_agreement:.4f} % of {self.pixels} pixels"


def compare_probabilities(reference: np.ndarray, other: np.ndarray) -> Parity:
    """Compare two (..., C) probability arrays of the same shape.

    Raises:
        ValueError: the shapes differ.
    """
    reference, other = np.asarray(reference, np.float32), np.asarray(other, np.float32)
    if reference.shape != other.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {other.shape}")
    agree = np.argmax(reference, axis=-1) == np.argmax(other, axis=-1)
    return Parity(float(np.max(np.abs(reference - other))), float(np.mean(agree)), int(agree.size))


class ParityAccumulator:
    """Running :class:`Parity` over many batches (max of the max, pooled agreement)."""

    def __init__(self):
        self.max_abs_diff, self.agreeing, self.pixels = 0.0, 0, 0

    def update(self, reference: np.ndarray, other: np.ndarray) -> Parity:
        """Add one pair of probability arrays; returns that pair's own figures."""
        parity = compare_probabilities(reference, other)
        self.max_abs_diff = max(self.max_abs_diff, parity.max_abs_diff)
        self.agreeing += round(parity.argmax_agreement * parity.pixels)
        self.pixels += parity.pixels
        return parity

    def result(self) -> Parity:
        return Parity(self.max_abs_diff, self.agreeing / self.pixels if self.pixels else float("nan"), self.pixels)


# ---------------------------------------------------------------- metadata


def artefact_metadata(
    model, format: str, *, model_info: dict | None = None, source: str | os.PathLike | None = None
) -> dict:
    """The metadata stored with an exported artefact.

    Args:
        model: the Keras model being exported.
        format: one of :data:`FORMATS`.
        model_info: facts about the run, stored as given under ``"model_info"``, e.g.
            ``{"train_scale": 0.5, "tile_gsd": 1.195, "model_gsd": 2.39}``.
        source: the ``.keras`` file it came from.

    Returns:
        A JSON-serialisable dict.
    """
    import keras
    import tensorflow as tf

    from fcn import __version__

    num_classes = int(model.output_shape[-1])
    return {
        "fcn_metadata_version": METADATA_VERSION,
        "model_name": model.name,
        "format": format,
        "num_classes": num_classes,
        "class_names": [c.name for c in CLASSES[:num_classes]],
        "class_colors": [list(c.rgb) for c in CLASSES[:num_classes]],
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "shape": ["batch", "height", "width", 3],
            "channels": "RGB",
            "value_range": [0, 255],
            "side_multiple": 32,
            "preprocessing": "inside the model (RGB to BGR, minus the ImageNet mean)",
        },
        "output": {
            "name": ONNX_OUTPUT_NAME if format == "onnx" else KERAS_OUTPUT_NAME,
            "dtype": "float32",
            "shape": ["batch", "height", "width", num_classes],
            "content": "softmax probabilities per class; the class map is the argmax over the last axis",
        },
        "model_info": dict(model_info or {}),
        "source": str(source) if source is not None else None,
        "exported_by": {"fcn": __version__, "keras": keras.__version__, "tensorflow": tf.__version__},
    }


def read_metadata(path: str | os.PathLike) -> dict:
    """Read back the metadata of an artefact written by :func:`export_model`.

    Args:
        path: the ``.onnx`` file (metadata_props), or a ``.tflite`` file / SavedModel directory
            (sidecar ``<path>.json``, else a SavedModel's ``assets.extra/fcn.json``).

    Raises:
        InputError: missing artefact, or one that carries no fcn metadata.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such exported model")
    if artefact_format(path) == "onnx":
        import onnx

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as err:
            raise InputError(f"{path}: cannot read ONNX file ({err.__class__.__name__})") from None
        info = metadata_from_props({p.key: p.value for p in proto.metadata_props})
    else:
        info = read_sidecar(path)
    if "fcn_metadata_version" not in info:
        raise InputError(f"{path}: carries no fcn metadata (not written by fcn-export?)")
    return info


# ---------------------------------------------------------------- export


def _input_signature():
    import tensorflow as tf

    return [tf.TensorSpec([None, None, None, 3], tf.float32, name=INPUT_NAME)]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def check_output_path(output: str | os.PathLike, format: str) -> Path:
    """Check that ``output`` can receive an artefact of ``format``; create its parent folder.

    An existing artefact of the same kind is replaced (only once the new one is complete); anything
    else in the way is refused.

    Raises:
        InputError: unknown format, or the path holds something that is not a replaceable artefact,
            or its folder cannot be written.
    """
    from fcn.inference.predict import prepare_output_folder

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
    prepare_output_folder(output.parent if str(output.parent) else Path("."), "--output")
    return output


def _quiet_converters() -> None:
    # tf2onnx logs every rewrite at INFO level; the absl-based converters obey TF_CPP_MIN_LOG_LEVEL.
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _collect_garbage_every(seconds: float):
    """Run ``gc.collect()`` every ``seconds`` in a background thread while the block runs.

    tf2onnx's optimizer deep-copies the whole graph, weights included, before each of its passes;
    the copies are reference cycles that Python's generational collector frees late, so on FCN8s
    (160 MB of weights) the ONNX export peaked at 11 GiB and took 48 s. Collecting every 0.5 s
    keeps it at 4 GiB and 22 s (measured on the 2-core dev machine).
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
    onnx.checker.check_model(proto)
    onnx.save(proto, str(target))


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
    output = check_output_path(output, format)
    if format == "onnx":
        try:
            import onnx  # noqa: F401
            import tf2onnx  # noqa: F401
        except ImportError as err:
            raise InputError(f"--format onnx needs {err.name}: {EXPORT_EXTRA_HINT}") from None
    from fcn.model.checkpoints import with_precision

    model = with_precision(model, "float32")  # Keras exports float32 policies only (ONNX); parity is stated in float32
    _quiet_converters()
    metadata = artefact_metadata(model, format, model_info=model_info, source=source)
    start = time.perf_counter()
    # Temporary names end with the format's suffix: Keras insists on ".tflite" for LiteRT.
    staging = output.with_name(f".{output.name}.tmp-{os.getpid()}{SUFFIX[format]}")
    raw = staging.with_name(f".{output.name}.raw-{os.getpid()}{SUFFIX[format]}") if format == "onnx" else staging
    try:
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
            raise InputError(
                f"--format {format}: export failed ({err.__class__.__name__}: {first_line(err)})"
            ) from None
        if format == "onnx":
            _finish_onnx(raw, staging, metadata)
        elif format == "saved_model":
            embedded = staging / EMBEDDED_METADATA
            embedded.parent.mkdir(parents=True, exist_ok=True)
            embedded.write_text(json.dumps(metadata, indent=2), encoding="utf-8")
        metadata_path = None if format == "onnx" else sidecar_path(output)
        # The sidecar is written first and replaces the old one once the artefact is in place.
        with atomic_path(metadata_path) if metadata_path else contextlib.nullcontext() as tmp_json:
            if tmp_json is not None:
                tmp_json.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
            # Swap into place: an old artefact goes only once the new one is complete.
            if output.exists():
                old = output.with_name(f".{output.name}.old-{os.getpid()}")
                os.replace(output, old)
                os.replace(staging, output)
                _remove(old)
            else:
                os.replace(staging, output)
    finally:
        for leftover in {raw, staging}:
            _remove(leftover)
    return ExportResult(output, metadata_path, metadata, time.perf_counter() - start)


def check_parity(
    model, artefact: str | os.PathLike, sizes: Sequence[tuple[int, int]] = CHECK_SIZES, seed: int = 0
) -> Parity:
    """Run the artefact and the Keras model on random RGB images and compare their probabilities.

    Args:
        model: the Keras model that was exported.
        artefact: the exported file or directory.
        sizes: (height, width) of the images, one image per size (multiples of 32).
        seed: random seed of the images.

    Raises:
        InputError: the artefact's runtime is missing or cannot open it.
    """
    backend = open_backend(artefact)
    rng = np.random.default_rng(seed)
    total = ParityAccumulator()
    for height, width in sizes:
        batch = rng.uniform(0.0, 255.0, (1, height, width, 3)).astype(np.float32)
        total.update(np.asarray(model.predict_on_batch(batch), np.float32), backend(batch))
    return total.result()


# ---------------------------------------------------------------- command line


def parse_info(items: Sequence[str]) -> dict:
    """``KEY=VALUE`` strings to a dict; values are read as JSON when they parse (numbers, lists...).

    Raises:
        InputError: an item without ``=`` or with an empty key.
    """
    info = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--info expects KEY=VALUE, got {item!r}")
        try:
            info[key.strip()] = json.loads(value)
        except ValueError:
            info[key.strip()] = value
    return info


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="fcn-export",
        description="Export a trained FCN as a standalone model that takes raw RGB 0-255 (any height and width "
        "that are multiples of 32) and returns per-class probabilities, with its class names, colours and run "
        "facts attached (ONNX metadata; <output>.json for the others).",
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="MODEL",
        help="a .keras file, or a run directory (its best.keras, else last.keras)",
    )
    parser.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="saved_model (directory), onnx (.onnx file) or litert (.tflite file)",
    )
    parser.add_argument(
        "--output", required=True, metavar="PATH", help="artefact path; an existing artefact there is replaced"
    )
    parser.add_argument(
        "--info",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a fact to store besides the run's own (its scale and ground sample distance come from the "
        ".keras file), e.g. --info tile_gsd=0.3 (repeatable; values parsed as JSON when possible)",
    )
    parser.add_argument("--opset", type=positive_int, default=None, metavar="N", help="ONNX opset (default: tf2onnx's)")
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip the parity check (artefact vs Keras on two random images; needs the format's runtime)",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, note: Callable[[str], None] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    note = note or to_stderr
    from fcn.model.checkpoints import load_model, model_info, resolve_model_path

    extra_info = parse_info(args.info)
    # Every check that can fail runs before the model is loaded.
    model_path = resolve_model_path(args.model, note=note)
    output = check_output_path(args.output, args.format)
    model = load_model(model_path, precision="float32", num_classes=NUM_CLASSES, note=note)
    info = {**model_info(model).to_dict(), **extra_info}  # the run's scale travels with it
    result = export_model(model, output, args.format, model_info=info, source=model_path, opset=args.opset)
    where = f"{result.path}" + (
        f" (metadata: {result.metadata_path})" if result.metadata_path else " (metadata inside)"
    )
    print(f"exported {model_path} as {args.format} to {where} in {result.seconds:.1f} s", flush=True)
    if args.no_check:
        return 0
    try:
        parity = check_parity(model, result.path)
    except InputError as err:  # e.g. the runtime of this format is not installed here
        note(f"note: parity check skipped: {err}")
        return 0
    verdict = "ok" if parity.ok else "FAILED"
    print(
        f"parity vs Keras on random {' and '.join(f'{h}x{w}' for h, w in CHECK_SIZES)} images: {parity} ({verdict})",
        flush=True,
    )
    if not parity.ok:
        raise InputError(
            f"{result.path}: differs from the Keras model beyond max |dp| {PARITY_MAX_ABS_DIFF:g} / "
            f"argmax agreement {100 * PARITY_MIN_ARGMAX_AGREEMENT:g} % ({parity}); do not ship it"
        )
    return 0


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
