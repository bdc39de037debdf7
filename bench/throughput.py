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
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from throughput_measure import (  # noqa: E402
    TRAIN_FLOPS_PER_FORWARD,
    add_fractions,
    bare_model_figures,
    bare_model_in_subprocess,
    load_average,
    machine_info,
    matmul_peaks,
)
from throughput_pipelines import (  # noqa: E402
    input_pipeline_figures,
    mean_iou_figures,
    predict_figures,
    prepare_tiles,
    train_end_to_end_figures,
)
from throughput_report import format_report  # noqa: E402

from fcn.cli.common import run_cli  # noqa: E402
from fcn.core.errors import InputError  # noqa: E402

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


# ---------------------------------------------------------------- the whole benchmark


def run_benchmark(args, say=print) -> dict:
    """All measurements for parsed arguments; ``say`` receives progress lines."""
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
    results["bare"] = bare_models(args, peaks, say)
    primary = next((e for e in results["bare"] if "error" not in e and not e["jit"]), None)
    if primary is not None:
        results.update({key: primary[key] for key in ("train_img_s", "predict_img_s")})
        results["train_fraction_of_peak"] = primary.get("train_fraction_of_peak")
        results["predict_fraction_of_peak"] = primary.get("predict_fraction_of_peak")
        results["primary"] = {"model": primary["model"], "precision": primary["precision"], "jit": False}
        results["peak_memory_mb"] = primary["train_peak_rss_mb"]
    if not args.bare_only:
        real_pipelines(args, results, say)
    results["load_average_after"] = load_average()
    return results


def bare_models(args, peaks: dict, say) -> list[dict]:
    """Every configuration (model x precision x XLA), each in its own subprocess."""
    entries = []
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
                entries.append(add_fractions(entry, peaks))
                if "error" in entry:
                    say(f"  failed: {entry['error']}")
    return entries


def bare_of(results: dict, model_name: str, precision: str) -> dict | None:
    """The bare-model figures of one configuration without XLA (None if it failed or did not run)."""
    return next(
        (
            e
            for e in results["bare"]
            if e["model"] == model_name and e.get("precision") == precision and not e["jit"] and "error" not in e
        ),
        None,
    )


def real_pipelines(args, results: dict, say) -> None:
    """Part 3 for the first model, on tiles on disk, into ``results``."""
    model_name = args.models[0]
    with tempfile.TemporaryDirectory(prefix="fcn-throughput-") as tmp:
        tmp = Path(tmp)
        say(f"tiles: {args.limit} + 1 at {args.image_size} px from {args.data or 'synthetic data'}")
        train_dir, val_dir = prepare_tiles(tmp / "tiles", args.image_size, args.limit, args.data)
        say("input pipeline alone")
        pipeline = input_pipeline_figures(train_dir, args.image_size, args.batch_size, args.pipeline_seconds)
        first_bare = bare_of(results, model_name, resolve(args.precisions[0]))
        if first_bare:
            pipeline["fraction_of_bare_train"] = pipeline["images_per_s"] / first_bare["train_img_s"]
        results["input_pipeline"] = pipeline
        results["train_end_to_end"], results["predict_end_to_end"] = [], []
        for precision in args.precisions[:1] if args.quick else args.precisions:
            bare = bare_of(results, model_name, resolve(precision))
            say(f"train.py end to end: {model_name} {precision}, 3 epochs")
            run_dir = tmp / f"run-{precision}"
            results["train_end_to_end"].append(
                train_entry(args, model_name, precision, train_dir, val_dir, run_dir, bare)
            )
            shutil.rmtree(run_dir, ignore_errors=True)  # checkpoints: hundreds of MB
            say(f"predict.py end to end and the per-image loop: {model_name} {precision}")
            results["predict_end_to_end"].append(predict_entry(args, model_name, precision, train_dir, bare))
        say("mean IoU: fcn-mean-iou vs the course tool")
        results["mean_iou"] = mean_iou_figures(train_dir, tmp / "miou")


def train_entry(args, model_name, precision, train_dir, val_dir, run_dir, bare) -> dict:
    import keras

    entry = {"model": model_name, "precision": resolve(precision)}
    try:
        figures = train_end_to_end_figures(
            train_dir, val_dir, run_dir, model_name, precision, args.batch_size, args.image_size
        )
        entry.update(figures)
        if bare:
            entry["fraction_of_bare"] = entry["train_img_s"] / bare["train_img_s"]
    except RuntimeError as err:
        entry["error"] = str(err)
    keras.backend.clear_session()
    gc.collect()
    return entry


def predict_entry(args, model_name, precision, tiles_dir, bare) -> dict:
    import keras

    entry = {
        "model": model_name,
        "precision": resolve(precision),
        **predict_figures(tiles_dir, model_name, precision, args.batch_size, args.image_size),
    }
    if bare:
        entry["fraction_of_bare"] = entry["cli_images_per_s"] / bare["predict_img_s"]
        entry["naive_fraction_of_bare"] = entry["naive_images_per_s"] / bare["predict_img_s"]
    keras.backend.clear_session()
    gc.collect()
    return entry


def resolve(precision: str) -> str:
    from fcn.model.precision import resolve_precision

    return resolve_precision(precision)


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
    from fcn.model.precision import PRECISIONS

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
