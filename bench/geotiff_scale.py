"""GeoTIFF scenes at scale: bounded memory, speed and agreement against the in-memory path.

    python bench/geotiff_scale.py --deepglobe DIR --model MODEL.keras|RUN_DIR|fcn8s --scratch /tmp/geo-bench
        [--sizes 16384,32768] [--pixel-size 0.5] [--tile-gsd M] [--scale F] [--region 8192]
        [--tile 1024] [--overlap N] [--batch-size 4] [--no-batch-cap] [--same-answer-only] [--json FILE]

1. **Same answer.** Each DeepGlobe tile is written as a 0.5 m UTM GeoTIFF (the very pixels of its
   JPEG) and ``fcn-predict`` (:func:`fcn.cli.predict.main`) runs three times: on the GeoTIFFs at the
   automatic scale (pixel size / the model's training ground sample distance), and on the JPEGs with
   ``--scale`` of that very number and with ``--input-gsd 0.5``. The masks are compared pixel by
   pixel. A checkpoint that predates ``ModelInfo`` (no ground sample distance inside) is copied into
   ``--scratch`` with its info completed by ``--tile-gsd`` (its training tiles' metres per pixel).
2. **Scenes.** Builds ``--sizes`` square RGB GeoTIFFs in ``--scratch`` (UTM 33N, ``--pixel-size`` m
   pixels, 512-px tiles, JPEG-compressed): mosaics of the DeepGlobe tiles under their 8 flips and
   rotations, written one band of tile rows at a time (kept between runs).
3. **Scene path.** Each scene runs through :func:`fcn.inference.scenes.predict_scene` in its own process
   (reading, inference and writing the class-map GeoTIFF all timed), which reports its peak RSS
   (``VmHWM``) and seconds per megapixel. The window batch is capped as ``fcn-predict`` caps it
   (:data:`fcn.inference.scenes.SCENE_BATCH_PIXELS`) unless ``--no-batch-cap``.
4. **In-memory path.** The top-left ``--region`` x ``--region`` pixels of the largest scene are read into
   memory and predicted by ``Predictor.predict_classes`` alone (reading excluded from its time): what
   ``fcn-predict`` does to a decoded JPEG, at the same scale. Agreement is the share of equal argmax
   pixels with (a) the scene's class map on that region (different window grids, and the region's
   right/bottom edges lack the context the scene has: also given without a band of ``tile/scale``
   source pixels along those edges) and (b) the region written as its own GeoTIFF and run through
   predict_scene, streamed: what streaming itself changes. The speed ratio comes from (b) too: one
   process alternates the in-memory path and the streamed path on the region ``--repeats`` times
   (medians), the fairest comparison a shared machine allows.

The default scale is ``--pixel-size`` / the model's training ground sample distance (0.5 / 2.39 =
0.209 for the study's FCN8s, trained on course tiles at 256 px). ``--model fcn8s`` builds an
untrained FCN8s (same speed and memory) for smoke runs; give it ``--scale``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ siblings

from geotiff_mosaic import build_scenes, region_geotiff, write_tile_geotiff  # noqa: E402

from fcn.cli.predict import main as predict_main  # noqa: E402
from fcn.core.images import read_mask, read_rgb  # noqa: E402
from fcn.inference import geo  # noqa: E402
from fcn.inference.engine import Predictor  # noqa: E402
from fcn.inference.scenes import SCENE_BATCH_PIXELS, predict_scene  # noqa: E402
from fcn.model.checkpoints import INFO_ENTRY, ModelInfo, load_model, read_model_info, resolve_model_path  # noqa: E402

UNTRAINED = ("fcn8s", "fcn16s", "fcn32s")  # --model names that build an untrained FCN


def peak_rss_gib() -> float:
    """This process's peak resident memory in GiB.

    ``VmHWM`` (Linux) rather than ``ru_maxrss``: a child started by fork + exec inherits in
    ``ru_maxrss`` the parent's resident size at the fork, which here holds a model and a tile.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


# ---------------------------------------------------------------- child processes


def make_predictor(args):
    if args.model in UNTRAINED:
        from fcn.model.builders import build_model

        model = build_model(args.model, input_shape=(None, None, 3), weights=None)
    else:
        model = load_model(args.model)
    predictor = Predictor(model, scale=args.scale, tile=args.tile, overlap=args.overlap, batch_size=args.batch_size)
    predictor.predict_classes(np.zeros((64, 64, 3), np.uint8))  # trace the model function outside the timings
    return predictor


def batch_cap(args) -> int | None:
    return None if args.no_batch_cap else SCENE_BATCH_PIXELS


def child_scene(args) -> dict:
    predictor = make_predictor(args)
    with geo.open_scene(args.input) as scene:
        result = predict_scene(predictor, scene, args.output, max_batch_pixels=batch_cap(args), verbose=0)
        megapixels = scene.height * scene.width / 1e6
    return {
        "seconds": result.seconds,
        "megapixels": megapixels,
        "seconds_per_mp": result.seconds / megapixels,
        "windows": result.windows,
        "batch_size": result.batch_size,
        "whole": result.whole,
        "peak_rss_gib": peak_rss_gib(),
    }


def child_memory(args) -> dict:
    predictor = make_predictor(args)
    with geo.open_scene(args.input) as scene:
        rgb, _ = scene.read((0, args.region), (0, args.region))
    start = time.perf_counter()
    classes = predictor.predict_classes(rgb)
    seconds = time.perf_counter() - start
    np.save(args.output, classes)
    megapixels = rgb.shape[0] * rgb.shape[1] / 1e6
    return {
        "seconds": seconds,
        "megapixels": megapixels,
        "seconds_per_mp": seconds / megapixels,
        "peak_rss_gib": peak_rss_gib(),
    }


def child_speed(args) -> dict:
    """Streamed scene path against the in-memory path on the same region, alternated in one process.

    The machine is shared: alternating the two paths in one process is the fairest ratio it gives.
    """
    predictor = make_predictor(args)
    with geo.open_scene(args.input) as scene:
        rgb, _ = scene.read()
        megapixels = scene.height * scene.width / 1e6
        memory, streamed = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            predictor.predict_classes(rgb)
            memory.append(time.perf_counter() - start)
            result = predict_scene(
                predictor, scene, args.output, whole_max_pixels=0, max_batch_pixels=batch_cap(args), verbose=0
            )
            streamed.append(result.seconds)
    in_memory_s, streamed_s = float(np.median(memory)), float(np.median(streamed))
    return {
        "megapixels": megapixels,
        "repeats": args.repeats,
        "in_memory_seconds": memory,
        "streamed_seconds": streamed,
        "in_memory_seconds_per_mp": in_memory_s / megapixels,
        "streamed_seconds_per_mp": streamed_s / megapixels,
        "streamed_speed_vs_in_memory": in_memory_s / streamed_s,
        # The fastest run of each is the least disturbed by other jobs.
        "streamed_speed_vs_in_memory_best_runs": min(memory) / min(streamed),
        "windows": result.windows,
    }


def run_child(kind: str, args, **overrides) -> dict:
    """Run one measurement in a fresh process (its own peak RSS); returns its JSON line."""
    command = [sys.executable, __file__, "--child", kind]
    options = vars(args) | overrides
    for key in ("model", "scale", "tile", "overlap", "batch_size", "input", "output", "region", "repeats"):
        if options.get(key) is not None:
            command += [f"--{key.replace('_', '-')}", str(options[key])]
    if options.get("no_batch_cap"):
        command.append("--no-batch-cap")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- comparisons


def read_mask_region(path: Path, side: int) -> np.ndarray:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(path) as src:
        return src.read(1, window=Window(0, 0, side, side))


def model_with_info(args, scratch: Path) -> tuple[str, ModelInfo]:
    """The model file to predict with, and its info; a checkpoint without a ground sample distance
    is copied into ``scratch`` with ``--tile-gsd`` added to its info (as training writes it now)."""
    path = resolve_model_path(args.model)
    info = read_model_info(path)
    if info.tile_gsd is not None:
        return str(path), info
    if args.tile_gsd is None:
        raise SystemExit(f"{path} does not record its training tiles' ground sample distance: give --tile-gsd")
    info = ModelInfo(model=info.model, train_scale=info.train_scale, tile_gsd=args.tile_gsd)
    copy = scratch / f"{path.parent.name}-{path.stem}-with-info.keras"
    shutil.copyfile(path, copy)
    with zipfile.ZipFile(copy, "a") as archive:
        archive.writestr(INFO_ENTRY, json.dumps(info.to_dict()))
    print(f"{path}: no ground sample distance inside; predicting with {copy} ({info})", flush=True)
    return str(copy), info


def same_answer(args, scratch: Path) -> list[dict]:
    """fcn-predict on GeoTIFFs at the automatic scale against fcn-predict on the JPEGs."""
    model, info = model_with_info(args, scratch)
    tiles = sorted(Path(args.deepglobe).glob("*_sat.jpg"))
    auto_scale = 0.5 / info.model_gsd  # what fcn-predict derives from the GeoTIFFs' 0.5 m pixels
    folder = scratch / "same-answer"
    jpegs, tifs = folder / "jpeg", folder / "tif"
    for sub in (jpegs, tifs):
        sub.mkdir(parents=True, exist_ok=True)
    for jpeg in tiles:
        link = jpegs / jpeg.name
        if not link.exists():
            link.symlink_to(jpeg.resolve())
        write_tile_geotiff(tifs / (jpeg.stem + ".tif"), read_rgb(jpeg), 0.5)
    common = ["--model", model, "--tile", str(args.tile), "--batch-size", str(args.batch_size), "-q"]
    runs = {  # name: (input folder, extra flags)
        "tif_auto": (tifs, []),
        "jpeg_scale": (jpegs, ["--scale", repr(auto_scale)]),
        "jpeg_input_gsd": (jpegs, ["--input-gsd", "0.5"]),
    }
    for name, (inputs, flags) in runs.items():
        argv = [*common, "--input", str(inputs), "--output", str(folder / f"out-{name}"), *flags]
        print(f"fcn-predict {' '.join(argv)}", flush=True)
        assert predict_main(argv) == 0, name
    import rasterio

    rows = []
    for jpeg in tiles:
        with rasterio.open(folder / "out-tif_auto" / geo.scene_mask_name(jpeg)) as src:
            classes = src.read(1)
        png_name = jpeg.name.replace("_sat.jpg", "_mask.png")
        row = {"tile": jpeg.name, "auto_scale": auto_scale, "pixels": int(classes.size)}
        for name in ("jpeg_scale", "jpeg_input_gsd"):
            png = read_mask(folder / f"out-{name}" / png_name)
            row[f"differing_pixels_tif_auto_vs_{name}"] = int((png != classes).sum())
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deepglobe", help="folder with the DeepGlobe *_sat.jpg tiles")
    parser.add_argument(
        "--model", required=True, help="a .keras file, a run directory, or fcn8s/fcn16s/fcn32s (untrained)"
    )
    parser.add_argument(
        "--scratch", default="/tmp/fcn-geotiff-bench", help="folder for the scenes and masks (default %(default)s)"
    )
    parser.add_argument("--sizes", default="16384,32768", help="scene sides (default %(default)s)")
    parser.add_argument(
        "--pixel-size", type=float, default=0.5, help="scene pixel size in metres (default %(default)s)"
    )
    parser.add_argument(
        "--tile-gsd",
        type=float,
        default=None,
        help="training tiles' m/px for a checkpoint that does not record it (course tiles: 1.195)",
    )
    parser.add_argument(
        "--scale", type=float, default=None, help="inference scale (default: --pixel-size / the model's training m/px)"
    )
    parser.add_argument(
        "--region", type=int, default=8192, help="side of the in-memory comparison region (default %(default)s)"
    )
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--overlap", type=int, default=None)
    parser.add_argument(
        "--batch-size", type=int, default=4, help="windows per model call (default %(default)s, fcn-predict's)"
    )
    parser.add_argument(
        "--no-batch-cap", action="store_true", help="run --batch-size windows per call even beyond fcn-predict's cap"
    )
    parser.add_argument("--same-answer-only", action="store_true", help="only the DeepGlobe tile comparison")
    parser.add_argument(
        "--scenes-only", action="store_true", help="only build and run the scenes (no in-memory comparison)"
    )
    parser.add_argument("--skip-same-answer", action="store_true")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="alternated runs of each path in the speed comparison (default %(default)s)",
    )
    parser.add_argument("--child", choices=("scene", "memory", "speed"), help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    return parser


def resolve_scale(args, scratch: Path) -> None:
    """Without ``--scale``: ``--pixel-size`` / the model's training m/px (``args.model`` may become a copy with info)."""
    if args.scale is None:
        if args.model in UNTRAINED:
            raise SystemExit("an untrained model has no training ground sample distance: give --scale")
        args.model, info = model_with_info(args, scratch)
        args.scale = args.pixel_size / info.model_gsd


def run_scenes(args, scenes: dict[int, Path], scratch: Path) -> dict:
    """Every scene through predict_scene, each in its own process: {side: its figures}."""
    figures_by_side = {}
    for side, path in scenes.items():
        figures = run_child("scene", args, input=path, output=scratch / f"mosaic_{side}_mask.tif")
        figures_by_side[side] = figures
        print(f"scene {side}²: {json.dumps(figures)}", flush=True)
    return figures_by_side


def compare_region(args, scene_path: Path, side: int, scratch: Path) -> dict:
    """The in-memory path on the scene's top-left region against the scene's class map and the region streamed."""
    region = min(args.region, side)
    memory = run_child("memory", args, input=scene_path, output=scratch / "region_memory.npy", region=region)
    print(f"in-memory {region}²: {json.dumps(memory)}", flush=True)
    in_memory = np.load(scratch / "region_memory.npy")
    from_scene = read_mask_region(scratch / f"mosaic_{side}_mask.tif", region)
    band = int(round(args.tile / args.scale))
    inner = slice(0, max(1, region - band))
    # The region as its own GeoTIFF, streamed: what streaming alone changes.
    region_tif = region_geotiff(scene_path, region, scratch, args.pixel_size)
    speed = run_child("speed", args, input=region_tif, output=scratch / f"region_{region}_mask.tif")
    print(f"alternated on the region: {json.dumps(speed)}", flush=True)
    region_streamed = read_mask_region(scratch / f"region_{region}_mask.tif", region)
    return {
        "side": region,
        "in_memory": memory,
        "alternated_speed": speed,
        "agreement_streamed_region_vs_in_memory": float((region_streamed == in_memory).mean()),
        "agreement_scene_vs_in_memory": float((from_scene == in_memory).mean()),
        "agreement_scene_vs_in_memory_without_edge_band": float(
            (from_scene[inner, inner] == in_memory[inner, inner]).mean()
        ),
        "edge_band_px": band,
    }


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.child:
        result = {"scene": child_scene, "memory": child_memory, "speed": child_speed}[args.child](args)
        print(json.dumps(result))
        return 0

    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    resolve_scale(args, scratch)
    report: dict = {
        "scale": args.scale,
        "tile": args.tile,
        "batch_size": args.batch_size,
        "model": args.model,
        "load_average_start": os.getloadavg(),
    }
    print(
        f"scale {args.scale:.4f}, tile {args.tile}, batch {args.batch_size}; load average {os.getloadavg()}", flush=True
    )
    if not args.skip_same_answer and args.model not in UNTRAINED:
        report["same_answer"] = same_answer(args, scratch)
    if args.same_answer_only:
        return _finish(report, args)

    sizes = [int(s) for s in args.sizes.split(",")]
    scenes = build_scenes(args.deepglobe, scratch, sizes, args.pixel_size)
    report["scenes"] = run_scenes(args, scenes, scratch)
    if args.scenes_only:
        return _finish(report, args)
    largest = max(sizes)
    report["region"] = compare_region(args, scenes[largest], largest, scratch)
    in_memory_seconds_per_mp = report["region"]["in_memory"]["seconds_per_mp"]
    for figures in report["scenes"].values():
        # Separate processes at different times: only indicative on a shared machine.
        figures["speed_vs_in_memory_separate_runs"] = in_memory_seconds_per_mp / figures["seconds_per_mp"]
    report["load_average_end"] = os.getloadavg()
    return _finish(report, args)


def _finish(report: dict, args) -> int:
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
