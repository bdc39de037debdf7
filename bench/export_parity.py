"""Parity of every exported format with the Keras model, on real tiles.

    python bench/export_parity.py --model MODEL.keras|RUN_DIR --data DIR [--formats saved_model,onnx,litert]
                                  [--scale F] [--batch-size N] [--limit N] [--out DIR] [--json FILE]

Exports the model (float32) to each format with ``fcn-export`` in its own subprocess (export time and
peak memory of that process), then runs the Keras model and every artefact on the same batches of
tiles (``*_sat.jpg`` etc. of ``--data``, ``*_mask.png`` skipped) and prints, per format, the largest
|difference| of any probability and the pooled argmax agreement against Keras, with the issue's
thresholds (max |dp| <= 1e-4, agreement >= 99.99 %). Tiles run at their own size (``--scale`` resizes
them first, as ``fcn-predict --scale`` would, e.g. 0.5 for a model trained at 256 px on 512 px tiles).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fcn.core.images import read_rgb  # noqa: E402
from fcn.inference.engine import padded_side  # noqa: E402
from fcn.inference.export import FORMATS, SUFFIX  # noqa: E402
from fcn.inference.folder import list_input_images  # noqa: E402
from fcn.inference.parity import PARITY_MAX_ABS_DIFF, PARITY_MIN_ARGMAX_AGREEMENT, ParityAccumulator  # noqa: E402


def export_in_subprocess(model: str, fmt: str, output: Path) -> dict:
    """Run fcn-export (without its own check) in a fresh process; its wall time and peak RSS."""
    code = (
        "import resource, sys, json; from fcn.cli.export import main; from fcn.cli.common import run_cli; "
        "rc = run_cli(main, sys.argv[1:]); "
        "print('@@' + json.dumps({'rc': rc, 'maxrss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, "--model", model, "--format", fmt, "--output", str(output), "--no-check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)},
    )
    seconds = time.perf_counter() - start
    stats = next(
        (json.loads(line[2:]) for line in proc.stdout.splitlines() if line.startswith("@@")), {"rc": proc.returncode}
    )
    if stats.get("rc") != 0:
        error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        return {"format": fmt, "ok": False, "error": error[-1] if error else proc.stderr.strip()[-500:]}
    return {
        "format": fmt,
        "ok": True,
        "seconds": seconds,
        "peak_rss_gib": stats["maxrss_kib"] / 2**20,
        "path": str(output),
    }


def load_batches(images: list[Path], batch_size: int, scale: float):
    """Yield float32 (B, H, W, 3) batches of consecutive same-size tiles, padded to multiples of 32."""
    from fcn.data.pipeline import resize_image_tf

    batch = []
    for path in images:
        rgb = read_rgb(path)
        if scale != 1.0:
            size = (max(1, round(rgb.shape[0] * scale)), max(1, round(rgb.shape[1] * scale)))
            rgb = np.clip(resize_image_tf(rgb, size).numpy(), 0, 255)
        rgb = rgb.astype(np.float32)
        height, width = rgb.shape[:2]
        rgb = np.pad(rgb, ((0, padded_side(height) - height), (0, padded_side(width) - width), (0, 0)), mode="reflect")
        if batch and batch[0].shape != rgb.shape:
            yield np.stack(batch)
            batch = []
        batch.append(rgb)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a .keras file or run directory")
    parser.add_argument("--data", required=True, help="folder of tiles")
    parser.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated subset of {','.join(FORMATS)}")
    parser.add_argument("--scale", type=float, default=1.0, help="resize tiles by F before inference (default 1)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="only the first N tiles")
    parser.add_argument("--out", default=None, help="folder for the artefacts (default: a temporary folder, removed)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return parser


@dataclass
class Comparison:
    """The Keras model against every exported artefact, over all the tiles."""

    totals: dict  # format -> ParityAccumulator
    worst_tile: dict  # format -> (largest |dp| of one tile, that tile's name)
    seconds: float
    load_before: tuple
    load_after: tuple
    shape: str  # of the last batch: HxW


def export_all(model_path: Path, formats: list[str], out: Path) -> dict:
    """Export to every format, each in its own subprocess, printing each one's time and peak memory."""
    exports = {}
    for fmt in formats:
        exports[fmt] = export_in_subprocess(str(model_path), fmt, out / f"{model_path.stem}{SUFFIX[fmt]}")
        entry = exports[fmt]
        print(
            f"export {fmt}: "
            + (
                f"{entry['seconds']:.1f} s, peak RSS {entry['peak_rss_gib']:.2f} GiB" if entry["ok"] else entry["error"]
            ),
            flush=True,
        )
    return exports


def compare_on_tiles(model_path: Path, exports: dict, images: list[Path], batch_size: int, scale: float) -> Comparison:
    """Run the Keras model and every artefact that exported on the same batches of tiles."""
    from fcn.inference.backends import open_backend
    from fcn.model.checkpoints import load_model

    model = load_model(model_path, precision="float32")
    runners = {fmt: open_backend(e["path"]) for fmt, e in exports.items() if e["ok"]}
    totals = {fmt: ParityAccumulator() for fmt in runners}
    worst_tile = {fmt: (0.0, None) for fmt in runners}
    load_before = os.getloadavg()
    start = time.perf_counter()
    done = 0
    for batch in load_batches(images, batch_size, scale):
        reference = np.asarray(model.predict_on_batch(batch), np.float32)
        for fmt, runner in runners.items():
            probs = runner(batch)
            for k in range(len(batch)):
                parity = totals[fmt].update(reference[k], probs[k])
                if parity.max_abs_diff > worst_tile[fmt][0]:
                    worst_tile[fmt] = (parity.max_abs_diff, images[done + k].name)
        done += len(batch)
    seconds = time.perf_counter() - start
    shape = f"{batch.shape[1]}x{batch.shape[2]}"
    return Comparison(totals, worst_tile, seconds, load_before, os.getloadavg(), shape)


def format_row(fmt: str, entry: dict, comparison: Comparison) -> dict:
    """Print one format's row of the table; returns its figures for the JSON."""
    if not entry["ok"]:
        print(f"| {fmt} | — | — | — | — | — | — | not exported: {entry['error']} |")
        return entry
    parity = comparison.totals[fmt].result()
    verdict = "pass" if parity.ok else "FAIL"
    print(
        f"| {fmt} | {entry['seconds']:.1f} | {entry['peak_rss_gib']:.2f} GiB | {parity.max_abs_diff:.2e} | {comparison.worst_tile[fmt][1] or '—'} | "
        f"{100 * parity.argmax_agreement:.4f} % | {parity.pixels} | {verdict} |"
    )
    return {
        **entry,
        "max_abs_diff": parity.max_abs_diff,
        "argmax_agreement": parity.argmax_agreement,
        "pixels": parity.pixels,
        "worst_tile": comparison.worst_tile[fmt][1],
        "pass": parity.ok,
    }


def report(
    args, model_path: Path, images: list[Path], formats: list[str], exports: dict, comparison: Comparison
) -> dict:
    """Print the table of every format; returns all the figures."""
    load_before, load_after = comparison.load_before, comparison.load_after
    results = {
        "model": str(model_path),
        "data": str(args.data),
        "tiles": len(images),
        "input": comparison.shape,
        "scale": args.scale,
        "batch_size": args.batch_size,
        "seconds": comparison.seconds,
        "load_average": [load_before[0], load_after[0]],
        "thresholds": {"max_abs_diff": PARITY_MAX_ABS_DIFF, "argmax_agreement": PARITY_MIN_ARGMAX_AGREEMENT},
        "formats": {},
    }
    print(
        f"\n{len(images)} tiles of {args.data} at {comparison.shape} (scale {args.scale}), batch {args.batch_size}; "
        f"load average {load_before[0]:.2f} -> {load_after[0]:.2f}\n"
    )
    print("| format | export s | export peak RSS | max abs dp | worst tile | argmax agreement | pixels | verdict |")
    print("|---|---:|---:|---:|---|---:|---:|---|")
    for fmt in formats:
        results["formats"][fmt] = format_row(fmt, exports[fmt], comparison)
    return results


def main(argv=None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    formats = [f for f in args.formats.split(",") if f]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        parser.error(f"unknown formats: {', '.join(sorted(unknown))}")
    images = list_input_images(args.data)[: args.limit]

    from fcn.model.checkpoints import resolve_model_path

    model_path = resolve_model_path(args.model)
    with tempfile.TemporaryDirectory(prefix="export-parity-") as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        exports = export_all(model_path, formats, out)
        comparison = compare_on_tiles(model_path, exports, images, args.batch_size, args.scale)
    results = report(args, model_path, images, formats, exports, comparison)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(e.get("pass") for e in results["formats"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
