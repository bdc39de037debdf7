"""bench/throughput.py, part 3: the real pipelines (input pipeline, fcn-train, prediction, mean IoU) on tiles on disk."""

from __future__ import annotations

import io
import shutil
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent

from throughput_measure import _timed, training_model  # noqa: E402

# ---------------------------------------------------------------- tiles


def prepare_tiles(out_dir: Path, image_size: int, limit: int, data_dir: Path | None = None) -> tuple[Path, Path]:
    """``out_dir/train`` (``limit`` tiles) and ``out_dir/val`` (one tile), every tile ``image_size`` square.

    From ``data_dir``: its first ``limit`` pairs train and the next one validates (the last pair
    does both when there are too few), copied, or resized (image bilinear, JPEG quality 95; mask
    nearest) when not at the size. Without ``data_dir``: synthetic tiles.
    """
    if data_dir is None:
        from fcn.data.synthetic import make_synthetic_dataset

        return make_synthetic_dataset(out_dir, n_train=limit, n_val=1, size=image_size, seed=0)

    from PIL import Image

    from fcn.core.images import read_mask, read_rgb, write_image_atomic, write_mask
    from fcn.data.pairs import find_pairs

    pairs = find_pairs(data_dir)
    chosen = {"train": pairs[:limit], "val": pairs[limit : limit + 1] or pairs[-1:]}
    folders = {}
    for split, split_pairs in chosen.items():
        folder = out_dir / split
        folder.mkdir(parents=True)
        for pair in split_pairs:
            rgb, classes = read_rgb(pair.image_path), read_mask(pair.mask_path)
            if rgb.shape[:2] == (image_size, image_size) and pair.image_path.suffix.lower() in (".jpg", ".jpeg"):
                shutil.copyfile(pair.image_path, folder / f"{pair.id}_sat.jpg")
                shutil.copyfile(pair.mask_path, folder / f"{pair.id}_mask.png")
                continue
            size = (image_size, image_size)
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
            classes = np.asarray(Image.fromarray(classes).resize(size, Image.Resampling.NEAREST))
            write_image_atomic(folder / f"{pair.id}_sat.jpg", rgb, quality=95)
            write_mask(folder / f"{pair.id}_mask.png", classes)
        folders[split] = folder
    return folders["train"], folders["val"]


# ---------------------------------------------------------------- 3. real pipelines


def input_pipeline_figures(train_dir: Path, image_size: int, batch_size: int, seconds: float) -> dict:
    """Images/s of the ``fcn.training.trainer`` input pipeline alone (decode + augment + batch, no model)."""
    try:
        from input_pipeline import measure_input_pipeline
    except ImportError:
        measure_input_pipeline = None
    from fcn.data.pairs import find_pairs

    pairs = find_pairs(train_dir)
    if measure_input_pipeline is not None:
        return measure_input_pipeline(pairs, image_size=image_size, batch_size=batch_size, seconds=seconds)

    from fcn.data.pipeline import make_dataset

    batches = iter(make_dataset(pairs, batch_size=batch_size, training=True, image_size=image_size, repeat=True))
    next(batches)
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images += int(next(batches)[0].shape[0])
    elapsed = time.perf_counter() - start
    return {"images_per_s": images / elapsed, "images": images, "seconds": elapsed, "tiles": len(pairs)}


def train_end_to_end_figures(
    train_dir: Path,
    val_dir: Path,
    run_dir: Path,
    model_name: str,
    precision: str,
    batch_size: int,
    image_size: int,
    epochs: int = 3,
) -> dict:
    """``fcn-train`` (:func:`fcn.cli.train.main`) for ``epochs`` epochs; figures of its last epoch.

    The first epoch traces; the first step after the first checkpoint save stalls once for about one
    extra step (a bare ``model.fit`` + ``model.save`` shows the same, so it is Keras/TensorFlow's, and
    amortised over a real run), so the third epoch is the steady state.

    ``history.csv``'s seconds cover the epoch's training steps and its validation pass (not the
    checkpoint writes). The validation pass is timed again here the way ``fcn.training.trainer`` runs it (a new
    :class:`fcn.inference.engine.Predictor`, so traced again, on the validation tiles) and subtracted for
    ``train_img_s``.

    Returns:
        dict with ``epoch_s``, ``validation_s``, ``images_per_epoch``, ``train_img_s`` (without
        validation) and ``train_img_s_with_validation``.
    """
    from fcn.model.runfiles import RunFiles
    from fcn.training.config import read_train_config
    from fcn.training.inputs import load_data

    flags = {
        "--train-dir": train_dir,
        "--val-dir": val_dir,
        "--out": run_dir,
        "--model": model_name,
        "--epochs": epochs,
        "--batch-size": batch_size,
        "--image-size": image_size,
        "--weights": "none",
        "--precision": precision,
        "--jit-compile": "off",
        "--progress": "none",
    }
    run_fcn_train([str(item) for pair in flags.items() for item in pair])
    files = RunFiles(run_dir)
    epoch_s = files.read_history()[-1]["seconds"]

    train_pairs, val_tiles, _ = load_data(read_train_config(run_dir))
    validation_s = validation_seconds(files, val_tiles, model_name, precision, batch_size)

    steps = max(1, len(train_pairs) // batch_size)
    images = min(len(train_pairs), steps * batch_size)
    return {
        "epochs": epochs,
        "tiles": len(train_pairs),
        "validation_tiles": len(val_tiles),
        "images_per_epoch": images,
        "epoch_s": epoch_s,
        "validation_s": validation_s,
        "train_img_s": images / max(epoch_s - validation_s, 1e-9),
        "train_img_s_with_validation": images / epoch_s,
    }


def run_fcn_train(argv: list[str]) -> None:
    """``fcn-train`` in this process, its output kept back (and its tail raised if it fails)."""
    from fcn.cli import train

    log = io.StringIO()
    with redirect_stdout(log):
        code = train.main(argv)
    if code != 0:
        raise RuntimeError(f"fcn-train exited with {code}: {log.getvalue()[-500:]}")


def validation_seconds(files, val_tiles: list, model_name: str, precision: str, batch_size: int) -> float:
    """Seconds of one validation pass run as ``fcn.training.trainer`` runs it (a new Predictor: traced again)."""
    from fcn.model.checkpoints import read_model_info
    from fcn.training.build import validation_predictor
    from fcn.training.callbacks import EpochValidation, StopControl

    model, _ = training_model(model_name, precision, jit=False)
    info = read_model_info(files.last)
    validation = EpochValidation(
        val_tiles, lambda m: validation_predictor(m, info, batch_size), [], None, StopControl()
    )
    validation.set_model(model)
    return _timed(lambda: validation.on_epoch_end(0, {}))


def predict_figures(tiles_dir: Path, model_name: str, precision: str, batch_size: int, image_size: int) -> dict:
    """``predict_folder`` (the ``fcn-predict`` path) and the naive per-image loop on the same tiles."""
    from predict_speed import compare

    from fcn.model.builders import build_model
    from fcn.model.precision import resolve_precision

    policy = resolve_precision(precision)
    model = build_model(
        model_name, input_shape=(None, None, 3), weights=None, dtype_policy=None if policy == "float32" else policy
    )
    return compare(model, tiles_dir, batch_size=batch_size, tile=max(512, image_size))


def mean_iou_figures(mask_source: Path, work_dir: Path) -> dict:
    """``fcn-mean-iou`` vs the course tool's way on the tiles' masks and a perturbed copy of them."""
    from mean_iou_speed import compare, perturbed_predictions

    gt_dir, pred_dir = work_dir / "gt", work_dir / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir()
    for mask in sorted(mask_source.glob("*_mask.png")):
        shutil.copyfile(mask, gt_dir / mask.name)
    perturbed_predictions(gt_dir, pred_dir)
    result = compare(gt_dir, pred_dir, repeats=2)
    return {key: result[key] for key in ("num_images", "ours_s", "course_s", "speedup", "agree")}
