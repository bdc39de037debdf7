"""bench/throughput.py, parts 1 and 2: the machine, the matmul peak, and the bare model (one
configuration per subprocess, started as ``throughput.py --child CONFIG``)."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent

# A training step does the forward pass, the gradient with respect to the activations and the one
# with respect to the weights; the last two each cost about one forward pass.
TRAIN_FLOPS_PER_FORWARD = 3
MATMUL_DTYPES = ("float32", "bfloat16", "float16")
# The matmul peak that bounds each precision: mixed policies compute in their half dtype.
PEAK_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


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
    from fcn.model.precision import resolve_precision
    from fcn.training.build import build_training_model
    from fcn.training.config import TrainConfig

    config = TrainConfig(model=model_name, weights="none", precision=precision, jit_compile="on" if jit else "off")
    policy = resolve_precision(precision)
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
        [sys.executable, str(BENCH_DIR / "throughput.py"), "--child", json.dumps(config)],
        capture_output=True,
        text=True,
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
