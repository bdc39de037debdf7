"""ONNX Runtime against TensorFlow (float32 and mixed_bfloat16) behind the same prediction engine.

    python bench/onnx_vs_tf.py --model MODEL.keras|RUN_DIR --data DIR [--onnx FILE] [--batch-size 4]
                               [--rounds 5] [--round-tiles 8] [--quality-scale 0.5] [--quality-limit N]
                               [--engines tf_float32,tf_mixed_bfloat16,onnxruntime] [--json FILE]

1. Speed. The first ``rounds x round-tiles`` tiles of ``--data`` are decoded into memory once. Each
   engine is a :class:`fcn.inference.engine.Predictor` (same batch size, scale 1: the tiles' own size, 512x512
   for the course tiles) around, respectively, the Keras model in float32, the same model cast to
   mixed_bfloat16 (:func:`fcn.model.checkpoints.with_precision`), and the model exported to ONNX run by ONNX
   Runtime (:class:`fcn.inference.backends.OnnxBackend`). All run in this one process, one after the other
   within each round, the order rotating from round to round, so background load hits them alike;
   the figure is images/s of ``predict_many`` (padding, inference, argmax; no disk I/O), median over
   rounds, plus the median of the per-round ratios against tf_float32. Each engine first runs one
   untimed batch (tracing, allocation).
2. Agreement and quality. Every tile of ``--data`` (or the first ``--quality-limit``) is predicted by
   each engine at ``--quality-scale`` (0.5 for a model trained at 256 px on 512 px tiles; resized in
   the engine as ``fcn-predict --scale`` does): argmax agreement of each engine with tf_float32 and, where
   ``<id>_mask.png`` exists, the course mean IoU of each.

The ONNX file is exported from ``--model`` (in a subprocess) unless ``--onnx`` names one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fcn.core.images import (  # noqa: E402
    MASK_SUFFIX,
    read_mask,
    read_rgb,
    tile_id,  # noqa: E402
)
from fcn.core.metrics import ConfusionMatrix  # noqa: E402
from fcn.inference.engine import Predictor  # noqa: E402
from fcn.inference.folder import list_input_images  # noqa: E402

ENGINES = ("tf_float32", "tf_mixed_bfloat16", "onnxruntime")


def make_engines(model, onnx_path: Path | None, names, **predictor_kwargs) -> dict:
    from fcn.inference.backends import OnnxBackend
    from fcn.model.checkpoints import with_precision

    engines = {}
    for name in names:
        if name == "tf_float32":
            engines[name] = Predictor(model, **predictor_kwargs)
        elif name == "tf_mixed_bfloat16":
            engines[name] = Predictor(with_precision(model, "mixed_bfloat16"), **predictor_kwargs)
        elif name == "onnxruntime":
            engines[name] = Predictor(OnnxBackend(onnx_path), **predictor_kwargs)
    return engines


def speed(engines: dict, tiles: list[np.ndarray], rounds: int, round_tiles: int) -> dict:
    """Median images/s of each engine over rounds, and its median per-round ratio to the first engine."""
    names = list(engines)
    for engine in engines.values():  # warm-up: tracing, first allocations
        list(engine.predict_many(tiles[: engine.batch_size]))
    rates = {name: [] for name in names}
    loads = [os.getloadavg()[0]]
    for r in range(rounds):
        chunk = tiles[r * round_tiles : (r + 1) * round_tiles]
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            for _ in engines[name].predict_many(chunk):
                pass
            rates[name].append(len(chunk) / (time.perf_counter() - start))
        loads.append(os.getloadavg()[0])
        print(
            f"  round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {rates[n][-1]:.2f}" for n in names)
            + f" img/s (load {loads[-1]:.2f})",
            flush=True,
        )
    base = names[0]
    return {
        name: {
            "images_per_s": statistics.median(rates[name]),
            "rounds": rates[name],
            f"vs_{base}": statistics.median(a / b for a, b in zip(rates[name], rates[base])),
        }
        for name in names
    } | {"load_average": loads}


def quality(engines: dict, paths: list[Path]) -> dict:
    """Argmax agreement of every engine with the first one, and each engine's course mIoU."""
    names = list(engines)
    base = names[0]
    matrices = {name: ConfusionMatrix() for name in names}
    agree = {name: 0 for name in names}
    pixels = 0
    scored = 0
    maps = {}
    for name in names:
        maps[name] = list(engines[name].predict_many(read_rgb(p) for p in paths))
    for k, path in enumerate(paths):
        reference = maps[base][k]
        pixels += reference.size
        mask_path = path.with_name(f"{tile_id(path)}{MASK_SUFFIX}.png")
        truth = read_mask(mask_path) if mask_path.is_file() else None
        scored += truth is not None
        for name in names:
            agree[name] += int(np.count_nonzero(maps[name][k] == reference))
            if truth is not None:
                matrices[name].update(truth, maps[name][k])
    return {
        name: {
            f"argmax_agreement_vs_{base}": agree[name] / pixels,
            "mean_iou": matrices[name].mean_iou() if scored else None,
        }
        for name in names
    } | {"tiles": len(paths), "scored_tiles": scored}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a .keras file or run directory")
    parser.add_argument("--data", required=True, help="folder of tiles (with <id>_mask.png for the mIoU)")
    parser.add_argument(
        "--onnx", default=None, help="the model exported to ONNX (default: export it now, in a subprocess)"
    )
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated subset of {','.join(ENGINES)}; the first is the reference",
    )
    parser.add_argument(
        "--batch-size", type=int, default=4, help="images per model call, every engine (default 4, as fcn-predict)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-tiles", type=int, default=8)
    parser.add_argument(
        "--quality-scale", type=float, default=0.5, help="scale of the agreement/mIoU pass (default 0.5)"
    )
    parser.add_argument(
        "--quality-limit", type=int, default=None, help="only the first N tiles in the agreement/mIoU pass"
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return parser


def run_description(args, model_path: Path, names: list[str]) -> dict:
    """What the figures were measured on: model, data, engines and the CPU's bfloat16 support."""
    from fcn.model.precision import NATIVE_BF16_CPU_FLAGS, choose_precision, cpu_flags

    return {
        "model": str(model_path),
        "data": str(args.data),
        "batch_size": args.batch_size,
        "engines": names,
        "cpu_bf16_flags": sorted(cpu_flags() & set(NATIVE_BF16_CPU_FLAGS)),
        "precision_auto": choose_precision("auto").policy,
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "cores": len(os.sched_getaffinity(0)),
    }


def speed_pass(parser, args, model, onnx_path: Path | None, names: list[str], paths: list[Path]) -> dict:
    """Every engine's speed at scale 1 on the first ``--rounds`` x ``--round-tiles`` tiles."""
    count = args.rounds * args.round_tiles
    tiles = [read_rgb(p) for p in paths[:count]]
    if len(tiles) < count:
        parser.error(f"--rounds x --round-tiles = {count} tiles, {args.data} has {len(tiles)}")
    print(
        f"speed: {count} tiles of {tiles[0].shape[0]}x{tiles[0].shape[1]}, batch {args.batch_size}, scale 1, "
        f"{args.rounds} rounds of {args.round_tiles}",
        flush=True,
    )
    engines = make_engines(model, onnx_path, names, batch_size=args.batch_size, tile=1024)
    figures = speed(engines, tiles, args.rounds, args.round_tiles)
    figures["input"] = f"{tiles[0].shape[0]}x{tiles[0].shape[1]}"
    return figures


def quality_pass(args, model, onnx_path: Path | None, names: list[str], paths: list[Path]) -> dict:
    """Every engine's agreement with the first and its mIoU, at ``--quality-scale``."""
    quality_paths = paths[: args.quality_limit]
    print(f"agreement/mIoU: {len(quality_paths)} tiles at scale {args.quality_scale}", flush=True)
    engines = make_engines(model, onnx_path, names, batch_size=args.batch_size, scale=args.quality_scale)
    start = time.perf_counter()
    figures = quality(engines, quality_paths)
    figures["scale"] = args.quality_scale
    figures["seconds"] = time.perf_counter() - start
    return figures


def print_speed_table(s: dict, names: list[str], batch_size: int) -> None:
    base = names[0]
    print(
        f"\nspeed at {s['input']}, batch {batch_size} (load average {min(s['load_average']):.2f}-{max(s['load_average']):.2f}):\n"
    )
    print(f"| engine | images/s (median) | rounds min-max | vs {base} (median of per-round ratios) |")
    print("|---|---:|---:|---:|")
    for name in names:
        e = s[name]
        print(
            f"| {name} | {e['images_per_s']:.2f} | {min(e['rounds']):.2f}-{max(e['rounds']):.2f} | {e[f'vs_{base}']:.2f}x |"
        )


def print_quality_table(q: dict, names: list[str]) -> None:
    base = names[0]
    print(f"\nagreement with {base} on {q['tiles']} tiles at scale {q['scale']} ({q['scored_tiles']} with masks):\n")
    print(f"| engine | argmax agreement vs {base} | course mIoU |")
    print("|---|---:|---:|")
    for name in names:
        e = q[name]
        miou = f"{e['mean_iou']:.4f}" if e["mean_iou"] is not None else "—"
        print(f"| {name} | {100 * e[f'argmax_agreement_vs_{base}']:.3f} % | {miou} |")


def main(argv=None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    names = [n for n in args.engines.split(",") if n]
    if set(names) - set(ENGINES):
        parser.error(f"unknown engines: {', '.join(sorted(set(names) - set(ENGINES)))}")

    from export_parity import export_in_subprocess

    from fcn.model.checkpoints import load_model, resolve_model_path

    model_path = resolve_model_path(args.model)
    paths = list_input_images(args.data)
    results = run_description(args, model_path, names)
    with tempfile.TemporaryDirectory(prefix="onnx-vs-tf-") as tmp:
        onnx_path = Path(args.onnx) if args.onnx else None
        if "onnxruntime" in names and onnx_path is None:
            exported = export_in_subprocess(str(model_path), "onnx", Path(tmp) / "model.onnx")
            if not exported["ok"]:
                print(f"onnx export failed: {exported['error']}", file=sys.stderr)
                return 1
            onnx_path = Path(exported["path"])
        model = load_model(model_path, precision="float32")
        if not args.skip_speed:
            results["speed"] = speed_pass(parser, args, model, onnx_path, names, paths)
        if not args.skip_quality:
            results["quality"] = quality_pass(args, model, onnx_path, names, paths)

    if "speed" in results:
        print_speed_table(results["speed"], names, args.batch_size)
    if "quality" in results:
        print_quality_table(results["quality"], names)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
