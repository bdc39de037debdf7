"""Small builders shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fcn.core.palette import NUM_CLASSES, class_to_rgb
from fcn.data.pairs import Pair

# A tiny FCN: the real architecture (every layer, every skip) at 1/16 of the width; it builds and
# runs in milliseconds. The full-width models are checked by the seed-parity tests only.
TINY_WIDTH = 1 / 16
# history.csv's header, pinned: the run directory's format that readers (bench, notebooks) rely on.
HISTORY_HEADER = [
    "epoch",
    "loss",
    "val_loss",
    "val_miou",
    "iou_urban",
    "iou_agriculture",
    "iou_rangeland",
    "iou_forest",
    "iou_water",
    "iou_barren",
    "lr",
    "seconds",
]


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def conv_softmax_model(kernel_size: int, num_classes: int = NUM_CLASSES, seed: int = 0):
    """Conv (kernel_size x kernel_size, same padding) + softmax on RGB 0-255, any input size.

    With kernel size 1 it is translation- and flip-equivariant with a one-pixel receptive field, so
    sliding windows and TTA must reproduce its whole-image output to float precision.
    """
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 64)(inputs)
    x = keras.layers.Conv2D(
        num_classes,
        kernel_size,
        padding="same",
        kernel_initializer=keras.initializers.RandomNormal(stddev=1.0 / kernel_size, seed=seed),
        bias_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=seed + 1),
    )(x)
    return keras.Model(inputs, keras.layers.Softmax()(x))


def tiny_fcn(name: str = "fcn8s", seed: int = 0, **kwargs):
    """A randomly initialised tiny FCN whose outputs vary with the input (no zero score layers)."""
    import keras

    from fcn.model.builders import build_model

    keras.utils.set_random_seed(seed)
    options = dict(input_shape=(None, None, 3), weights=None, paper_init=False, width=TINY_WIDTH)
    return build_model(name, **{**options, **kwargs})


def tiny_train_args(train_dir, val_dir, out, *extra) -> list[str]:
    """train.py arguments for a tiny FCN8s on the synthetic tiles (seconds per epoch)."""
    return [
        "--model",
        "fcn8s",
        "--train-dir",
        str(train_dir),
        "--val-dir",
        str(val_dir),
        "--out",
        str(out),
        "--weights",
        "none",
        "--width",
        str(TINY_WIDTH),
        "--batch-size",
        "4",
        "--precision",
        "float32",
        "--progress",
        "none",
        *map(str, extra),
    ]


def train_config(argv):
    """fcn-train's :class:`TrainConfig` of ``argv`` (what its main() would train) and the parsed namespace."""
    from fcn.cli import train

    args = train.get_args_parser().parse_args(argv)
    return train._config_of(args), args


def write_pair(folder: Path, pair_id: str, rgb: np.ndarray, classes: np.ndarray, image_ext: str = ".png") -> Pair:
    """Write <id>_sat<ext> and <id>_mask.png; PNG images keep pixels exact."""
    folder.mkdir(parents=True, exist_ok=True)
    image_path = folder / f"{pair_id}_sat{image_ext}"
    mask_path = folder / f"{pair_id}_mask.png"
    Image.fromarray(rgb).save(image_path)
    Image.fromarray(class_to_rgb(classes)).save(mask_path)
    return Pair(pair_id, image_path, mask_path)


def random_pair(folder: Path, pair_id: str, rng: np.random.Generator, size=(32, 32), image_ext=".png") -> Pair:
    classes = rng.integers(0, 7, size, dtype=np.uint8)
    rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    return write_pair(folder, pair_id, rgb, classes, image_ext)


# ---------------------------------------------------------------- GeoTIFF scenes (rasterio imported only here)

SCENE_CRS = "EPSG:32633"  # UTM 33N: metres


def landscape(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Blocky random RGB (patches of 12 px plus noise): class maps with several classes and edges."""
    rng = np.random.default_rng(seed)
    patches = rng.integers(0, 256, (height // 12 + 1, width // 12 + 1, 3))
    coarse = np.kron(patches, np.ones((12, 12, 1)))[:height, :width]
    return (0.75 * coarse + 0.25 * rng.integers(0, 256, (height, width, 3))).astype(np.uint8)


def write_tif(
    path: Path,
    bands,
    *,
    crs=SCENE_CRS,
    pixel: float = 0.5,
    origin: tuple[float, float] = (500_000, 4_000_000),
    nodata=None,
    colorinterp=None,
    mask=None,
    **options,
) -> Path:
    """Write (C, H, W) bands as a GeoTIFF (top-left corner at ``origin``); ``mask`` (H, W) bool becomes an
    internal mask; ``options`` go to rasterio (compress=...)."""
    import rasterio
    from rasterio.transform import from_origin

    bands = np.asarray(bands)
    profile = dict(driver="GTiff", height=bands.shape[1], width=bands.shape[2], count=bands.shape[0], dtype=bands.dtype)
    if crs is not None:
        profile.update(crs=crs, transform=from_origin(*origin, pixel, pixel))
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile, **options) as dst:
        dst.write(bands)
        if colorinterp is not None:
            dst.colorinterp = colorinterp
        if mask is not None:
            dst.write_mask(mask.astype(np.uint8) * 255)
    return path


def rgb_tif(path: Path, rgb: np.ndarray, **kwargs) -> Path:
    """Write an (H, W, 3) image as a 3-band GeoTIFF (see write_tif)."""
    return write_tif(path, rgb.transpose(2, 0, 1), **kwargs)


def read_tif(path: Path):
    """(first band, profile, colormap of band 1) of a GeoTIFF."""
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1), src.profile, src.colormap(1)
