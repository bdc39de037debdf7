"""Exported models as inference backends: ONNX Runtime, TensorFlow SavedModel and LiteRT.

A backend is any object with

* ``num_classes``: the number of output channels;
* ``metadata``: what ``fcn-export`` stored with the artefact (see :mod:`fcn.inference.export`; empty for a
  model exported elsewhere), and ``info``, its :class:`fcn.model.checkpoints.ModelInfo` (the scale and
  ground sample distance the model was trained at; defaults when unknown);
* ``__call__(batch)``: float32 (B, H, W, 3) raw RGB 0-255, H and W multiples of 32 ->
  float32 (B, H, W, C) softmax probabilities, as numpy arrays.

:class:`fcn.inference.engine.Predictor` accepts such an object in place of a Keras model; padding, scale,
sliding windows and TTA stay in the engine. Each runtime is imported on first use, so a missing
optional package only matters to the format that needs it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError, first_line
from fcn.core.workers import available_cores
from fcn.model.checkpoints import ModelInfo

# Artefact kinds by how they look on disk (fcn.inference.export writes these).
ONNX_SUFFIX = ".onnx"
LITERT_SUFFIX = ".tflite"
SAVED_MODEL_FILE = "saved_model.pb"
SIDECAR_SUFFIX = ".json"  # <artefact>.json: the metadata of formats without a metadata field of their own
EMBEDDED_METADATA = Path("assets.extra") / "fcn.json"  # a copy inside a SavedModel directory
ONNX_RUNTIME_HINT = "pip install 'fcn[onnx]' (or: pip install onnxruntime)"
LITERT_RUNTIME_HINT = "pip install 'fcn[export]' (or: pip install ai-edge-litert)"


def artefact_format(path: str | os.PathLike) -> str | None:
    """The exported format stored at ``path``: ``"onnx"``, ``"litert"``, ``"saved_model"``, or None.

    Decided by the file suffix (``.onnx``, ``.tflite``) or, for a directory, by its
    ``saved_model.pb``; the path need not exist for a suffix to count.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ONNX_SUFFIX:
        return "onnx"
    if suffix == LITERT_SUFFIX:
        return "litert"
    if path.is_dir() and (path / SAVED_MODEL_FILE).is_file():
        return "saved_model"
    return None


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the metadata of a SavedModel or LiteRT artefact lives: ``<path>.json``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def metadata_from_props(props: dict[str, str]) -> dict:
    """Decode ONNX ``metadata_props`` written by :func:`fcn.inference.export.export_model`.

    Each top-level metadata key is one property whose value is JSON; a property that is not JSON
    (written by another tool) is kept as its string.
    """
    info = {}
    for key, value in props.items():
        try:
            info[key] = json.loads(value)
        except (TypeError, ValueError):
            info[key] = value
    return info


def read_sidecar(path: str | os.PathLike) -> dict:
    """The metadata JSON next to (or, for a SavedModel, inside) an artefact; {} when there is none.

    Raises:
        InputError: the file exists but is not a JSON object.
    """
    path = Path(path)
    for candidate in (sidecar_path(path), path / EMBEDDED_METADATA):
        if candidate.is_file():
            try:
                info = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise InputError(f"{candidate}: cannot read metadata ({err.__class__.__name__}: {err})") from None
            if not isinstance(info, dict):
                raise InputError(f"{candidate}: metadata is not a JSON object")
            return info
    return {}


def _check_exists(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such {what}")


def _model_info(metadata: dict) -> ModelInfo:
    """The ModelInfo that fcn-export stored under ``model_info`` (defaults for other artefacts)."""
    stored = metadata.get("model_info")
    return ModelInfo.from_dict(stored) if isinstance(stored, dict) else ModelInfo()


def _num_classes(shape, info: dict, path: Path) -> int:
    last = shape[-1] if shape else None
    if isinstance(last, (int, np.integer)) and last > 0:
        return int(last)
    if isinstance(info.get("num_classes"), int):
        return int(info["num_classes"])
    raise InputError(f"{path}: cannot tell the number of classes (output shape {list(shape)})")


class OnnxBackend:
    """An ONNX model run by ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (None: every core this process may use).
        providers: ONNX Runtime execution providers, in order of preference (None: CUDA when this
            onnxruntime build has it, then CPU).

    Raises:
        InputError: onnxruntime is not installed, or the file is missing or is not an FCN-like model
            (one (B, H, W, 3) input, one (B, H, W, C) output).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None, providers: list[str] | None = None):
        self.path = Path(path)
        _check_exists(self.path, "ONNX model file")
        try:
            import onnxruntime as ort
        except ImportError:
            raise InputError(f"{self.path}: running ONNX models needs onnxruntime: {ONNX_RUNTIME_HINT}") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or available_cores()
        # One graph, one op at a time: all threads go to each convolution (the graph is a chain).
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Worker threads sleep between ops instead of spinning: the cores are shared with the
        # threads that decode and write images (and, often, with other jobs).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as err:  # onnxruntime raises its own types for missing or corrupt files
            raise InputError(
                f"{self.path}: cannot load ONNX model ({err.__class__.__name__}: {first_line(err)})"
            ) from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[-1] != 3:
            raise InputError(
                f"{self.path}: expected one (B, H, W, 3) input and one output, got inputs "
                f"{[(i.name, i.shape) for i in inputs]} and outputs {[(o.name, o.shape) for o in outputs]}"
            )
        if inputs[0].type != "tensor(float)":
            raise InputError(f"{self.path}: expected a float32 input, got {inputs[0].type}")
        self._input_name, self._output_name = inputs[0].name, outputs[0].name
        self.metadata = metadata_from_props(dict(self._session.get_modelmeta().custom_metadata_map))
        self.info = _model_info(self.metadata)
        self.num_classes = _num_classes(outputs[0].shape, self.metadata, self.path)
        self.providers = self._session.get_providers()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (B, H, W, C) float32 of a float32 (B, H, W, 3) batch of RGB 0-255."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self._session.run([self._output_name], {self._input_name: batch})[0]


class SavedModelBackend:
    """A TensorFlow SavedModel written by ``fcn-export --format saved_model`` (its ``serve`` endpoint).

    Needs TensorFlow only: no Keras and no fcn code run inside it.

    Raises:
        InputError: missing directory, or not a SavedModel with a ``serve`` endpoint.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        _check_exists(self.path, "SavedModel directory")
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(self.path))
        except Exception as err:
            raise InputError(
                f"{self.path}: cannot load SavedModel ({err.__class__.__name__}: {first_line(err)})"
            ) from None
        if not hasattr(loaded, "serve"):
            raise InputError(f"{self.path}: SavedModel has no 'serve' endpoint (not written by Keras's Model.export)")
        self._loaded = loaded  # keeps the variables alive
        self._serve = loaded.serve
        self.metadata = read_sidecar(self.path)
        self.info = _model_info(self.metadata)
        signature = loaded.signatures.get("serving_default")
        shape = list(next(iter(signature.structured_outputs.values())).shape) if signature is not None else []
        self.num_classes = _num_classes(shape, self.metadata, self.path)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (B, H, W, C) float32 of a float32 (B, H, W, 3) batch of RGB 0-255."""
        return np.asarray(self._serve(np.ascontiguousarray(batch, dtype=np.float32)))


class LiteRTBackend:
    """A LiteRT (TensorFlow Lite) flatbuffer, run by ``ai_edge_litert`` (else TensorFlow's interpreter).

    Args:
        path: the ``.tflite`` file.
        threads: interpreter threads (None: every core this process may use).

    Raises:
        InputError: missing file, no LiteRT interpreter installed, or an unreadable model.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        self.path = Path(path)
        _check_exists(self.path, "LiteRT model file")
        interpreter_class = _litert_interpreter_class()
        if interpreter_class is None:
            raise InputError(f"{self.path}: running LiteRT models needs ai-edge-litert: {LITERT_RUNTIME_HINT}")
        try:
            self._interpreter = interpreter_class(model_path=str(self.path), num_threads=threads or available_cores())
            signatures = self._interpreter.get_signature_list()
            key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
            self._runner = self._interpreter.get_signature_runner(key)
        except Exception as err:
            raise InputError(
                f"{self.path}: cannot load LiteRT model ({err.__class__.__name__}: {first_line(err)})"
            ) from None
        (self._input_name,) = signatures[key]["inputs"]
        (self._output_name,) = signatures[key]["outputs"]
        self.metadata = read_sidecar(self.path)
        self.info = _model_info(self.metadata)
        output = self._runner.get_output_details()[self._output_name]
        self.num_classes = _num_classes(list(output["shape_signature"]), self.metadata, self.path)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (B, H, W, C) float32 of a float32 (B, H, W, 3) batch of RGB 0-255."""
        outputs = self._runner(**{self._input_name: np.ascontiguousarray(batch, dtype=np.float32)})
        return outputs[self._output_name]


def _litert_interpreter_class() -> Callable | None:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:  # TensorFlow still ships the interpreter (deprecated in favour of ai-edge-litert)
        import tensorflow as tf

        return tf.lite.Interpreter
    except (ImportError, AttributeError):
        return None


BACKENDS = {"onnx": OnnxBackend, "saved_model": SavedModelBackend, "litert": LiteRTBackend}


def open_backend(path: str | os.PathLike, **kwargs):
    """Open an exported artefact as a backend, choosing the runtime by :func:`artefact_format`.

    Args:
        path: ``.onnx`` file, ``.tflite`` file or SavedModel directory.
        **kwargs: passed to the backend's constructor (e.g. ``threads``).

    Raises:
        InputError: not an exported artefact, or the backend cannot open it.
    """
    kind = artefact_format(path)
    if kind is None:
        raise InputError(f"{path}: not an exported model (.onnx file, .tflite file or SavedModel directory)")
    if kind == "saved_model":
        kwargs.pop("threads", None)  # TensorFlow's own thread pools
    return BACKENDS[kind](path, **kwargs)
