"""How close training and prediction come to what this machine can compute.

    python bench/throughput.py [--data DIR] [--limit N] [--quick] [--json FILE]
                               [--models fcn8s,fcn32s] [--precisions float32,mixed_bfloat16] [--jit]
                               [--batch-size 8] [--image-size 512] [--steps N]

One run measures, on the machine it runs on (see docs/BENCHMARKS.md for what each figure means):

1. the peak: square ``tf.linalg.matmul`` products (n = 1024, 2048, 4096; not 4096 with ``--quick``)
   per dtype (float32, bfloat16, float16 where the device runs it), after a warm-up; GFLOP/s =
   2 n^3 / t of the fastest product of any size (the best size depends on caches and the library);
2. the bare model, each configuration (model x precision x XLA) in its own subprocess: train steps
   (``train_on_batch`` of the model exactly as ``fcn.training.trainer`` compiles it, on in-memory tensors) and
   forward passes (``predict_on_batch``, the compiled predict function) at batch B and the image
   size, as images/s, GFLOP/s and fraction of the peak of the compute dtype, plus that process's
   peak resident memory (``ru_maxrss``);
3. the real pipelines for the first model, as fractions of the bare model at the same settings: the
   ``fcn.training.trainer`` input pipeline alone (``bench/input_pipeline.py``), ``fcn-train`` end to end
   (seconds of the last epoch in ``history.csv``, with and without its validation pass) and
   ``fcn.inference.folder.predict_folder`` on tiles on disk;
4. a first script's per-image loop (read, ``model.predict`` one tile, argmax, colour, write) against
   ``predict_folder`` on the same tiles (``bench/predict_speed.py``);
5. ``fcn-mean-iou`` against the course tool's way on the tiles' masks (``bench/mean_iou_speed.py``).

FLOPs are counted from the model's layers by ``bench/flops.py``'s ``count_flops`` (2 per multiply-add of
the convolutions; elementwise layers are not counted). A training step counts 3x the forward FLOPs.

Tiles: ``--data DIR`` (a folder of ``<id>_sat.jpg`` + ``<id>_mask.png``) gives the first ``--limit``
tiles for training and the next one for validation, resized to ``--image-size`` when they are not
that size already; without ``--data`` synthetic tiles are generated. TensorFlow keeps its own thread
defaults (one intra-op thread per core). ``--quick`` (fcn8s only, 128 px, batch 2, 2 timed steps, 8
tiles, first precision only for the pipelines) is a smoke run of two or three minutes on 2 cores, not
a measurement.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fcn.cli.common import run_cli  # noqa: E402
from fcn.core.errors import InputError  # noqa: E402

# A training step does the forward pass, the gradient with respect to the activations and the one
# with respect to the weights; the last two each cost about one forward pass.
TRAIN_FLOPS_PER_FORWARD = 3
MATMUL_DTYPES = ("float32", "bfloat16", "float16")
# The matmul peak that bounds each precision: mixed policies compute in their half dtype.
PEAK_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
FULL = {
    "image_size": 512,
    "batch_size": 8,
    "steps": 5,
    "limit": 16,
    "models": "fcn8s,fcn32s",
    "matmul_sizes": (1024, 2048, 4096),
    "matmul_seconds": 2.0,
    "pipeline_seconds": 10.0,
}
QUICK = {
    "image_size": 128,
    "batch_size": 2,
    "steps": 2,
    "limit": 8,
    "models": "fcn8s",
    "matmul_sizes": (1024, 2048),
    "matmul_seconds": 1.0,
    "pipeline_seconds": 3.0,
}


# ---------------------------------------------------------------- machine


def max_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def machine_info() -> dict:
    """CPU, accelerators, versions and thread settings of this process."""
    import keras
    import tensorflow as tf

    cpu_model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu_model in (platform.machine(), ""):
                cpu_model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cpus = os.cpu_count()
    return {
        "cpu": cpu_model,
        "cpus": usable_cpus,
        "cpu_features": sorted(f for f in flags if f.startswith(("avx", "amx", "fma"))),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        # 0 means TensorFlow's default (the number of cores); set by TF_NUM_INTRAOP_THREADS etc.
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# ---------------------------------------------------------------- 1. peak


def matmul_peak(dtype: str, n: int = 4096, seconds: float = 3.0, min_repeats: int = 5, max_repeats: int = 30) -> dict:
    """GFLOP/s of an ``n x n`` by ``n x n`` matmul in ``dtype`` on the default device.

    One warm-up product, then samples until ``seconds`` have passed (at least ``min_repeats``). A
    sample is a group of products long enough (about 20 ms) that launching them and fetching the
    last result (so a GPU has finished) cost little; on a CPU one product usually suffices.

    Returns:
        dict with ``gflops`` (the fastest sample: the peak), ``median_gflops``, ``repeats``
        (samples), ``products_per_repeat``, ``n``; or ``error`` when the device has no kernel for
        this dtype.
    """
    import tensorflow as tf

    def products(count: int) -> float:
        began = time.perf_counter()
        for _ in range(count):
            result = tf.linalg.matmul(a, b)
        result[0, 0].numpy()
        return time.perf_counter() - began

    try:
        a = tf.cast(tf.random.uniform((n, n), -1, 1, seed=1), dtype)
        b = tf.cast(tf.random.uniform((n, n), -1, 1, seed=2), dtype)
        products(1)
    except (tf.errors.OpError, TypeError, ValueError) as err:
        return {"n": n, "error": f"{type(err).__name__}: {str(err).splitlines()[0]}"}
    per_sample = int(min(100, max(1, 0.02 / products(1))))
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < seconds):
        times.append(products(per_sample) / per_sample)
    flops = 2.0 * n**3
    return {
        "n": n,
        "gflops": flops / min(times) / 1e9,
        "median_gflops": flops / statistics.median(times) / 1e9,
        "repeats": len(times),
        "products_per_repeat": per_sample,
    }


def matmul_peaks(sizes, seconds: float) -> dict:
    """Per dtype of :data:`MATMUL_DTYPES`: the :func:`matmul_peak` of the fastest size, with ``by_size``."""
    peaks = {}
    for dtype in MATMUL_DTYPES:
        by_size = [matmul_peak(dtype, n, seconds) for n in sizes]
        measured = [entry for entry in by_size if "error" not in entry]
        best = max(measured, key=lambda entry: entry["gflops"]) if measured else dict(by_size[-1])
        peaks[dtype] = {
            **best,
            "by_size": {str(entry["n"]): entry.get("gflops", entry.get("error")) for entry in by_size},
        }
    return peaks


# ---------------------------------------------------------------- 2. bare model


def training_model(model_name: str, precision: str, jit: bool):
    """The compiled model ``fcn.training.trainer`` would train (random init), and its dtype policy."""
    from fcn.model import runtime
    from fcn.training.build import build_training_model
    from fcn.training.config import TrainConfig

    config = TrainConfig(model=model_name, weights="none", precision=precision, jit_compile="on" if jit else "off")
    policy = runtime.resolve_precision(precision)
    return build_training_model(config, policy, epoch_steps=1), policy


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def bare_model_figures(
    model_name: str, precision: str, jit: bool, batch_size: int, image_size: int, steps: int
) -> dict:
    """Train-step and forward throughput of one configuration on in-memory tensors (this process).

    Each phase runs one untimed call first (tracing, XLA compilation), then ``steps`` timed calls;
    images/s come from the median call. ``train_on_batch`` returns the loss and ``predict_on_batch``
    the probabilities, so every timed call has finished on the device.

    Returns:
        dict of the settings, ``forward_gflop_per_image``, ``train_step_s`` / ``predict_step_s``
        (every timed call), ``train_img_s``, ``predict_img_s``, ``train_gflops``,
        ``predict_gflops``, ``first_train_step_s`` / ``first_predict_s`` (with tracing),
        ``rss_after_build_mb`` and ``train_peak_rss_mb`` (peak resident memory of this process
        after the training steps).
    """
    import tensorflow as tf

    from bench.flops import count_flops

    model, policy = training_model(model_name, precision, jit)
    rss_after_build = max_rss_mb()
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32"))
    labels = tf.constant(rng.integers(0, 7, (batch_size, image_size, image_size)).astype("int32"))

    first_train = _timed(lambda: model.train_on_batch(images, labels))
    train_times = [_timed(lambda: model.train_on_batch(images, labels)) for _ in range(steps)]
    train_peak_rss = max_rss_mb()
    first_predict = _timed(lambda: model.predict_on_batch(images))
    predict_times = [_timed(lambda: model.predict_on_batch(images)) for _ in range(steps)]

    forward_flops = count_flops(model, (image_size, image_size, 3))
    train_img_s = batch_size / statistics.median(train_times)
    predict_img_s = batch_size / statistics.median(predict_times)
    return {
        "model": model_name,
        "precision": policy,
        "jit": jit,
        "batch_size": batch_size,
        "image_size": image_size,
        "forward_gflop_per_image": forward_flops / 1e9,
        "first_train_step_s": first_train,
        "train_step_s": train_times,
        "train_img_s": train_img_s,
        "train_gflops": train_img_s * TRAIN_FLOPS_PER_FORWARD * forward_flops / 1e9,
        "first_predict_s": first_predict,
        "predict_step_s": predict_times,
        "predict_img_s": predict_img_s,
        "predict_gflops": predict_img_s * forward_flops / 1e9,
        "rss_after_build_mb": rss_after_build,
        "train_peak_rss_mb": train_peak_rss,
    }


def bare_model_in_subprocess(
    model_name: str, precision: str, jit: bool, batch_size: int, image_size: int, steps: int
) -> dict:
    """:func:`bare_model_figures` in a fresh Python process, so that its peak memory is its own.

    Returns:
        Its dict; or the settings with ``error`` (the last lines of the child's stderr) when it failed.
    """
    config = {
        "model_name": model_name,
        "precision": precision,
        "jit": jit,
        "batch_size": batch_size,
        "image_size": image_size,
        "steps": steps,
    }
    child = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(config)], capture_output=True, text=True
    )
    lines = child.stdout.strip().splitlines()
    if child.returncode == 0 and lines:
        return json.loads(lines[-1])
    tail = " | ".join((child.stderr or child.stdout).strip().splitlines()[-3:])
    return {
        "model": model_name,
        "precision": precision,
        "jit": jit,
        "batch_size": batch_size,
        "image_size": image_size,
        "error": f"exit code {child.returncode}: {tail}",
    }


def add_fractions(entry: dict, peaks: dict) -> dict:
    """Add ``train_fraction_of_peak`` / ``predict_fraction_of_peak`` against the compute dtype's peak."""
    peak = peaks.get(PEAK_DTYPE.get(entry.get("precision"), "float32"), {}).get("gflops")
    if peak and "error" not in entry:
        entry["peak_dtype"] = PEAK_DTYPE[entry["precision"]]
        entry["train_fraction_of_peak"] = entry["train_gflops"] / peak
        entry["predict_fraction_of_peak"] = entry["predict_gflops"] / peak
    return entry


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
    from fcn.cli import train
    from fcn.model.checkpoints import read_model_info
    from fcn.training.build import validation_predictor
    from fcn.training.callbacks import EpochValidation, StopControl
    from fcn.training.inputs import load_data
    from fcn.training.runfiles import RunFiles

    argv = [
        "--train-dir",
        str(train_dir),
        "--val-dir",
        str(val_dir),
        "--out",
        str(run_dir),
        "--model",
        model_name,
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch_size),
        "--image-size",
        str(image_size),
        "--weights",
        "none",
        "--precision",
        precision,
        "--jit-compile",
        "off",
        "--verbose",
        "0",
    ]
    log = io.StringIO()
    with redirect_stdout(log):
        code = train.main(argv)
    if code != 0:
        raise RuntimeError(f"fcn-train exited with {code}: {log.getvalue()[-500:]}")
    files = RunFiles(run_dir)
    epoch_s = files.read_history()[-1]["seconds"]

    train_pairs, val_tiles, _ = load_data(files.read_train_config())
    model, _ = training_model(model_name, precision, jit=False)
    info = read_model_info(files.last)
    validation = EpochValidation(
        val_tiles, lambda m: validation_predictor(m, info, batch_size), [], None, StopControl()
    )
    validation.set_model(model)
    validation_s = _timed(lambda: validation.on_epoch_end(0, {}))
    del model

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


def predict_figures(tiles_dir: Path, model_name: str, precision: str, batch_size: int, image_size: int) -> dict:
    """``predict_folder`` (the ``fcn-predict`` path) and the naive per-image loop on the same tiles."""
    from predict_speed import compare

    from fcn.model.builders import build_model
    from fcn.model.runtime import resolve_precision

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


# ---------------------------------------------------------------- the whole benchmark


def run_benchmark(args, say=print) -> dict:
    """All measurements for parsed arguments; ``say`` receives progress lines."""
    import keras

    results: dict = {"load_average_before": load_average(), "machine": machine_info()}
    results["settings"] = {
        "quick": args.quick,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "models": args.models,
        "precisions": args.precisions,
        "jit": args.jit,
        "limit": args.limit,
        "data": str(args.data) if args.data else "synthetic",
        "train_flops_per_forward": TRAIN_FLOPS_PER_FORWARD,
    }

    say(f"peak: square matmuls of n = {', '.join(map(str, args.matmul_sizes))} per dtype")
    peaks = matmul_peaks(args.matmul_sizes, args.matmul_seconds)
    results["peaks"] = peaks
    results["peak_gflops"] = peaks["float32"].get("gflops")

    results["bare"] = []
    for model_name in args.models:
        for precision in args.precisions:
            for jit in [False, True] if args.jit else [False]:
                say(
                    f"bare model: {model_name} {precision} xla {'on' if jit else 'off'} "
                    f"(batch {args.batch_size} at {args.image_size} px, subprocess)"
                )
                entry = bare_model_in_subprocess(
                    model_name, precision, jit, args.batch_size, args.image_size, args.steps
                )
                results["bare"].append(add_fractions(entry, peaks))
                if "error" in entry:
                    say(f"  failed: {entry['error']}")

    primary = next((e for e in results["bare"] if "error" not in e and not e["jit"]), None)
    if primary is not None:
        results.update({key: primary[key] for key in ("train_img_s", "predict_img_s")})
        results["train_fraction_of_peak"] = primary.get("train_fraction_of_peak")
        results["predict_fraction_of_peak"] = primary.get("predict_fraction_of_peak")
        results["primary"] = {"model": primary["model"], "precision": primary["precision"], "jit": False}
        results["peak_memory_mb"] = primary["train_peak_rss_mb"]

    def bare_of(model_name, precision):
        return next(
            (
                e
                for e in results["bare"]
                if e["model"] == model_name and e.get("precision") == precision and not e["jit"] and "error" not in e
            ),
            None,
        )

    if args.bare_only:
        results["load_average_after"] = load_average()
        return results
    pipeline_precisions = args.precisions[:1] if args.quick else args.precisions
    model_name = args.models[0]
    with tempfile.TemporaryDirectory(prefix="fcn-throughput-") as tmp:
        tmp = Path(tmp)
        say(f"tiles: {args.limit} + 1 at {args.image_size} px from {args.data or 'synthetic data'}")
        train_dir, val_dir = prepare_tiles(tmp / "tiles", args.image_size, args.limit, args.data)

        say("input pipeline alone")
        results["input_pipeline"] = input_pipeline_figures(
            train_dir, args.image_size, args.batch_size, args.pipeline_seconds
        )
        first_bare = bare_of(model_name, resolve(args.precisions[0]))
        if first_bare:
            results["input_pipeline"]["fraction_of_bare_train"] = (
                results["input_pipeline"]["images_per_s"] / first_bare["train_img_s"]
            )

        results["train_end_to_end"], results["predict_end_to_end"] = [], []
        for precision in pipeline_precisions:
            bare = bare_of(model_name, resolve(precision))
            say(f"train.py end to end: {model_name} {precision}, 3 epochs")
            entry = {"model": model_name, "precision": resolve(precision)}
            try:
                entry.update(
                    train_end_to_end_figures(
                        train_dir,
                        val_dir,
                        tmp / f"run-{precision}",
                        model_name,
                        precision,
                        args.batch_size,
                        args.image_size,
                    )
                )
                if bare:
                    entry["fraction_of_bare"] = entry["train_img_s"] / bare["train_img_s"]
            except RuntimeError as err:
                entry["error"] = str(err)
            results["train_end_to_end"].append(entry)
            shutil.rmtree(tmp / f"run-{precision}", ignore_errors=True)  # checkpoints: hundreds of MB
            keras.backend.clear_session()
            gc.collect()

            say(f"predict.py end to end and the per-image loop: {model_name} {precision}")
            entry = {
                "model": model_name,
                "precision": resolve(precision),
                **predict_figures(train_dir, model_name, precision, args.batch_size, args.image_size),
            }
            if bare:
                entry["fraction_of_bare"] = entry["cli_images_per_s"] / bare["predict_img_s"]
                entry["naive_fraction_of_bare"] = entry["naive_images_per_s"] / bare["predict_img_s"]
            results["predict_end_to_end"].append(entry)
            keras.backend.clear_session()
            gc.collect()

        say("mean IoU: fcn-mean-iou vs the course tool")
        results["mean_iou"] = mean_iou_figures(train_dir, tmp / "miou")
    results["load_average_after"] = load_average()
    return results


def resolve(precision: str) -> str:
    from fcn.model.runtime import resolve_precision

    return resolve_precision(precision)


# ---------------------------------------------------------------- report


def _fmt(value, spec=".2f", missing="-") -> str:
    return missing if value is None else format(value, spec)


def format_report(results: dict) -> str:
    """The readable table printed at the end of a run."""
    machine, settings = results["machine"], results["settings"]
    size, batch = settings["image_size"], settings["batch_size"]
    lines = [
        f"machine: {machine['cpu']}, {machine['cpus']} CPUs, GPUs: {', '.join(machine['gpus']) or 'none'}; "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}",
        f"load average (1/5/15 min) before {results['load_average_before']}, after {results['load_average_after']}"
        + ("   [--quick: a smoke run, not a measurement]" if settings["quick"] else ""),
    ]
    if max(results["load_average_before"] or [0]) > 0.5 * machine["cpus"]:
        lines.append(
            "busy machine: each figure is measured at its own moment, so ratios between them (even above 1) "
            "partly reflect the changing load"
        )
    lines += ["", "peak (square matmul, fastest product of any size):"]
    for dtype, peak in results["peaks"].items():
        if "error" in peak:
            lines.append(f"  {dtype:<9} n={peak['n']}: not run ({peak['error']})")
        else:
            sizes = ", ".join(
                f"{n}: {v:.1f}" if isinstance(v, float) else f"{n}: failed" for n, v in peak["by_size"].items()
            )
            lines.append(f"  {dtype:<9} {peak['gflops']:8.1f} GFLOP/s at n={peak['n']} (best by n: {sizes})")

    lines += [
        "",
        f"bare model, batch {batch} at {size}x{size}, in-memory tensors "
        f"(train = {TRAIN_FLOPS_PER_FORWARD} x forward FLOPs; % of the compute dtype's matmul peak):",
    ]
    header = (
        f"  {'model':<7} {'precision':<15} {'xla':<4} {'GFLOP/img':>9} {'train img/s':>11} {'GFLOP/s':>8} {'%peak':>6} "
        f"{'predict img/s':>13} {'GFLOP/s':>8} {'%peak':>6} {'peak RSS MiB':>12}"
    )
    lines.append(header)
    for e in results["bare"]:
        xla = "on" if e["jit"] else "off"
        if "error" in e:
            lines.append(f"  {e['model']:<7} {e['precision']:<15} {xla:<4} failed: {e['error'][:120]}")
            continue
        lines.append(
            f"  {e['model']:<7} {e['precision']:<15} {xla:<4} {e['forward_gflop_per_image']:>9.2f} {e['train_img_s']:>11.3f} "
            f"{e['train_gflops']:>8.1f} {_fmt(_pct(e.get('train_fraction_of_peak')), '.1f'):>6} {e['predict_img_s']:>13.3f} "
            f"{e['predict_gflops']:>8.1f} {_fmt(_pct(e.get('predict_fraction_of_peak')), '.1f'):>6} {e['train_peak_rss_mb']:>12.0f}"
        )

    pipeline = results.get("input_pipeline", {})
    lines += [
        "",
        f"real pipelines ({settings['models'][0]}, batch {batch} at {size}x{size}; "
        "'vs bare' = images/s divided by the bare model's at the same settings):",
        f"  {'path':<50} {'precision':<15} {'img/s':>9} {'vs bare':>8}",
    ]
    if pipeline:
        lines.append(
            f"  {'input pipeline alone (decode + augment), vs train':<50} {'-':<15} "
            f"{pipeline['images_per_s']:>9.2f} {_fmt(pipeline.get('fraction_of_bare_train')):>8}"
        )
    for e in results.get("train_end_to_end", []):
        if "error" in e:
            lines.append(f"  {'train.py epoch':<50} {e['precision']:<15} failed: {e['error'][:100]}")
            continue
        lines.append(
            f"  {'train.py epoch without its validation pass':<50} {e['precision']:<15} "
            f"{e['train_img_s']:>9.2f} {_fmt(e.get('fraction_of_bare')):>8}"
        )
        lines.append(
            f"  {'train.py epoch as logged (incl. %.1f s validation)' % e['validation_s']:<50} "
            f"{e['precision']:<15} {e['train_img_s_with_validation']:>9.2f}"
        )
    for e in results.get("predict_end_to_end", []):
        lines.append(
            f"  {'predict.py folder (predict_folder), vs predict':<50} {e['precision']:<15} "
            f"{e['cli_images_per_s']:>9.2f} {_fmt(e.get('fraction_of_bare')):>8}"
        )
        lines.append(
            f"  {'per-image loop (model.predict one tile)':<50} {e['precision']:<15} "
            f"{e['naive_images_per_s']:>9.2f} {_fmt(e.get('naive_fraction_of_bare')):>8}"
            f"   predict.py is {e['speedup']:.2f}x faster"
        )
    miou = results.get("mean_iou")
    if miou:
        lines += [
            "",
            f"mean IoU of {miou['num_images']} masks: fcn-mean-iou {miou['ours_s']:.3f} s, course tool way "
            f"{miou['course_s']:.3f} s ({miou['speedup']:.1f}x); same numbers: {'yes' if miou['agree'] else 'NO'}",
        ]
    if results.get("peak_memory_mb") is not None:
        p = results["primary"]
        lines.append(
            f"peak memory of a training process ({p['model']}, {p['precision']}, batch {batch} at {size}x{size}): "
            f"{results['peak_memory_mb']:.0f} MiB (ru_maxrss)"
        )
    return "\n".join(lines)


def _pct(fraction):
    return None if fraction is None else 100 * fraction


# ---------------------------------------------------------------- command line


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="folder of <id>_sat.jpg + <id>_mask.png tiles (default: synthetic)")
    parser.add_argument(
        "--limit", type=int, help=f"training tiles taken (default {FULL['limit']}, --quick {QUICK['limit']})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: small tiles, few steps, first precision for the pipelines"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every figure as JSON")
    parser.add_argument(
        "--models",
        help=f"comma-separated; the first one also runs the pipelines (default "
        f"{FULL['models']}, --quick {QUICK['models']})",
    )
    parser.add_argument(
        "--precisions",
        help="comma-separated dtype policies (default float32,mixed_bfloat16; with a GPU also mixed_float16)",
    )
    parser.add_argument("--bare-only", action="store_true", help="only the peak and the bare model (no pipelines)")
    parser.add_argument("--jit", action="store_true", help="also measure every configuration with XLA (jit_compile)")
    parser.add_argument("--batch-size", type=int, help=f"default {FULL['batch_size']}, --quick {QUICK['batch_size']}")
    parser.add_argument(
        "--image-size",
        type=int,
        help=f"tile side, a multiple of 32 (default {FULL['image_size']}, --quick {QUICK['image_size']})",
    )
    parser.add_argument(
        "--steps", type=int, help=f"timed steps per measurement (default {FULL['steps']}, --quick {QUICK['steps']})"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one bare-model configuration, JSON
    return parser


def resolve_args(args, parser) -> None:
    """Fill defaults from FULL or QUICK and validate."""
    from fcn import MODEL_NAMES
    from fcn.model.runtime import PRECISIONS

    defaults = QUICK if args.quick else FULL
    for key in ("image_size", "batch_size", "steps", "limit", "models"):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    args.matmul_sizes, args.matmul_seconds, args.pipeline_seconds = (
        defaults["matmul_sizes"],
        defaults["matmul_seconds"],
        defaults["pipeline_seconds"],
    )
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.precisions is None:
        import tensorflow as tf

        gpu = bool(tf.config.list_physical_devices("GPU"))
        args.precisions = "float32,mixed_float16,mixed_bfloat16" if gpu else "float32,mixed_bfloat16"
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    for model in args.models:
        if model not in MODEL_NAMES:
            parser.error(f"--models: unknown model {model!r} (valid: {', '.join(MODEL_NAMES)})")
    for precision in args.precisions:
        if precision not in PRECISIONS:
            parser.error(f"--precisions: unknown precision {precision!r} (valid: {', '.join(PRECISIONS)})")
    if not args.models or not args.precisions:
        parser.error("--models and --precisions need at least one entry")
    if args.image_size < 32 or args.image_size % 32:
        parser.error(f"--image-size must be a positive multiple of 32, got {args.image_size}")
    if min(args.batch_size, args.steps, args.limit) < 1:
        parser.error("--batch-size, --steps and --limit must be at least 1")
    if args.data is not None and not args.data.is_dir():
        raise InputError(f"{args.data}: not a folder")


def main(argv=None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(bare_model_figures(**json.loads(args.child))))
        return 0
    resolve_args(args, parser)
    started = time.perf_counter()
    results = run_benchmark(
        args, say=lambda line: print(f"[{time.perf_counter() - started:6.1f} s] {line}", flush=True)
    )
    results["wall_s"] = time.perf_counter() - started
    print()
    print(format_report(results))
    print(f"\n(whole benchmark: {results['wall_s']:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
