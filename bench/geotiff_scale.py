"""GeoTIFF scenes at scale: bounded memory, speed and agreement against the in-memory path.

    python bench/geotiff_scale.py --deepglobe DIR --model MODEL.keras|RUN_DIR|fcn8s --scratch /tmp/geo-bench
        [--sizes 16384,32768] [--pixel-size 0.5] [--model-gsd 2.39 | --scale F] [--region 8192]
        [--tile 1024] [--overlap N] [--batch-size 1] [--same-answer-only] [--json FILE]

1. **Scenes.** Builds ``--sizes`` square RGB GeoTIFFs in ``--scratch`` (UTM 33N, ``--pixel-size`` m
   pixels, 512-px tiles, JPEG-compressed): mosaics of the DeepGlobe tiles under their 8 flips and
   rotations, written one band of tile rows at a time (kept between runs).
2. **Scene path.** Each scene runs through :func:`fcn.geo.predict_scene` in its own process
   (reading, inference and writing the class-map GeoTIFF all timed), which reports its peak RSS
   (``VmHWM``) and seconds per megapixel.
3. **In-memory path.** The top-left ``--region`` x ``--region`` pixels of the largest scene are read into
   memory and predicted by ``Predictor.predict_classes`` alone (reading excluded from its time): what
   ``fcn-predict`` does to a decoded JPEG, at the same scale. Agreement is the share of equal argmax
   pixels with (a) the scene's class map on that region (different window grids, and the region's
   right/bottom edges lack the context the scene has: also given without a band of ``tile/scale``
   source pixels along those edges) and (b) the region written as its own GeoTIFF and run through
   predict_scene, streamed: what streaming itself changes. The speed ratio comes from (b) too: one
   process alternates the in-memory path and the streamed path on the region ``--repeats`` times
   (medians), the fairest comparison a shared machine allows; the scenes' own seconds per
   megapixel against the in-memory child are also reported, but come from runs at different times.
4. **Same answer.** Each DeepGlobe tile written as a 0.5 m UTM GeoTIFF runs through predict_scene
   with the automatic scale of a model trained on course tiles at their native size (0.5 /
   ``fcn.geo.COURSE_TILE_GSD_M`` = 512/1224) and is compared with ``fcn-predict`` on the JPEG at
   ``--scale`` 512/1224 (that very number) and at ``--scale 0.418`` (the rounded figure the README
   quotes: a 1023² instead of 1024² working image).

The default scale is ``--pixel-size / --model-gsd`` = 0.5 / 2.39 = 0.209: the scale the study's
FCN8s (trained at 256 px, i.e. 2.39 m/px) should see 0.5 m pixels at. ``--model fcn8s`` builds an
untrained FCN8s (same speed and memory) for smoke runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fcn import geo  # noqa: E402

DEEPGLOBE_SIDE = 2448
UTM_33N = "EPSG:32633"


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


# ---------------------------------------------------------------- scenes


def dihedral_variants(tile: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/rotations of a square tile."""
    variants = []
    for k in range(4):
        rotated = np.rot90(tile, k)
        variants += [rotated, rotated[:, ::-1]]
    return variants


def build_mosaic(path: Path, side: int, tiles: list[np.ndarray], pixel_size: float, *, seed: int = 0) -> None:
    """Write a side x side RGB GeoTIFF mosaic of flipped/rotated tiles, one band of tile rows at a time."""
    import rasterio
    from rasterio.transform import from_origin

    variants = [v for tile in tiles for v in dihedral_variants(tile)]
    rng = np.random.default_rng(seed)
    count = -(-side // DEEPGLOBE_SIDE)
    choice = rng.integers(0, len(variants), (count, count))
    profile = dict(
        driver="GTiff", height=side, width=side, count=3, dtype="uint8", crs=UTM_33N,
        transform=from_origin(500_000, 4_000_000, pixel_size, pixel_size), tiled=True, blockxsize=512,
        blockysize=512, compress="jpeg", jpeg_quality=90, photometric="ycbcr", bigtiff="IF_SAFER",
    )
    tmp = path.with_suffix(".partial.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r in range(count):
            top = r * DEEPGLOBE_SIDE
            rows = min(DEEPGLOBE_SIDE, side - top)
            band = np.concatenate([variants[choice[r, c]][:rows] for c in range(count)], axis=1)[:, :side]
            dst.write(np.ascontiguousarray(band.transpose(2, 0, 1)), window=rasterio.windows.Window(0, top, side, rows))
    os.replace(tmp, path)


def write_tile_geotiff(path: Path, rgb: np.ndarray, pixel_size: float) -> None:
    """A decoded tile as a lossless 0.5 m UTM GeoTIFF (the very pixels the JPEG path sees)."""
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(
        path, "w", driver="GTiff", height=rgb.shape[0], width=rgb.shape[1], count=3, dtype="uint8", crs=UTM_33N,
        transform=from_origin(500_000, 4_000_000, pixel_size, pixel_size), tiled=True, compress="deflate",
    ) as dst:
        dst.write(rgb.transpose(2, 0, 1))


# ---------------------------------------------------------------- child processes


def make_predictor(args):
    from fcn.predict import Predictor, load_model

    if args.model in ("fcn8s", "fcn16s", "fcn32s"):
        from fcn.models import build_model

        model = build_model(args.model, input_shape=(None, None, 3), weights=None)
    else:
        model = load_model(args.model)
    predictor = Predictor(model, scale=args.scale, tile=args.tile, overlap=args.overlap, batch_size=args.batch_size)
    predictor.predict_classes(np.zeros((64, 64, 3), np.uint8))  # trace the model function outside the timings
    return predictor


def child_scene(args) -> dict:
    predictor = make_predictor(args)
    with geo.open_scene(args.input) as scene:
        result = geo.predict_scene(predictor, scene, args.output, verbose=0)
        megapixels = scene.height * scene.width / 1e6
    return {
        "seconds": result.seconds, "megapixels": megapixels, "seconds_per_mp": result.seconds / megapixels,
        "windows": result.windows, "whole": result.whole, "peak_rss_gib": peak_rss_gib(),
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
    return {"seconds": seconds, "megapixels": megapixels, "seconds_per_mp": seconds / megapixels, "peak_rss_gib": peak_rss_gib()}


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
            result = geo.predict_scene(predictor, scene, args.output, whole_max_pixels=0, verbose=0)
            streamed.append(result.seconds)
    in_memory_s, streamed_s = float(np.median(memory)), float(np.median(streamed))
    return {
        "megapixels": megapixels, "repeats": args.repeats, "in_memory_seconds": memory, "streamed_seconds": streamed,
        "in_memory_seconds_per_mp": in_memory_s / megapixels, "streamed_seconds_per_mp": streamed_s / megapixels,
        "streamed_speed_vs_in_memory": in_memory_s / streamed_s,
        # The fastest run of each is the least disturbed by other jobs.
        "streamed_speed_vs_in_memory_best_runs": min(memory) / min(streamed), "windows": result.windows,
    }


def run_child(kind: str, args, **overrides) -> dict:
    """Run one measurement in a fresh process (its own peak RSS); returns its JSON line."""
    command = [sys.executable, __file__, "--child", kind]
    options = vars(args) | overrides
    for key in ("model", "scale", "tile", "overlap", "batch_size", "input", "output", "region", "repeats"):
        if options.get(key) is not None:
            command += [f"--{key.replace('_', '-')}", str(options[key])]
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


def same_answer(args, scratch: Path) -> list[dict]:
    """GeoTIFF path at the automatic scale against fcn-predict on the JPEG."""
    from fcn.images import read_mask, read_rgb
    from fcn.predict import main as predict_main

    tiles = sorted(Path(args.deepglobe).glob("*_sat.jpg"))
    auto_scale = geo.scale_for_gsd(0.5, geo.COURSE_TILE_GSD_M)
    folder = scratch / "same-answer"
    jpegs = folder / "jpeg"
    jpegs.mkdir(parents=True, exist_ok=True)
    rows = []
    for jpeg in tiles:
        link = jpegs / jpeg.name
        if not link.exists():
            link.symlink_to(jpeg.resolve())
    for label, scale in (("512/1224", auto_scale), ("0.418", 0.418)):
        out = folder / f"png-{label.replace('/', '_')}"
        code = predict_main(["--model", args.model, "--input", str(jpegs), "--output", str(out), "--scale", repr(scale), "--tile", str(args.tile), "-q"])
        assert code == 0
    from fcn.predict import Predictor, load_model

    predictor = Predictor(load_model(args.model), tile=args.tile)
    for jpeg in tiles:
        tif = folder / (jpeg.stem + ".tif")
        write_tile_geotiff(tif, read_rgb(jpeg), 0.5)
        with geo.open_scene(tif) as scene:
            scale, reason = geo.scene_scale(scene, model_gsd_m=geo.COURSE_TILE_GSD_M)
            result = geo.predict_scene(predictor, scene, folder / geo.scene_mask_name(tif), scale=scale, verbose=0)
        import rasterio

        with rasterio.open(result.mask) as src:
            classes = src.read(1)
        row = {"tile": jpeg.name, "auto_scale": scale, "reason": reason, "whole": result.whole}
        for label in ("512/1224", "0.418"):
            png = read_mask(folder / f"png-{label.replace('/', '_')}" / jpeg.name.replace("_sat.jpg", "_mask.png"))
            row[f"differing_pixels_vs_jpeg_scale_{label}"] = int((png != classes).sum())
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deepglobe", help="folder with the DeepGlobe *_sat.jpg tiles")
    parser.add_argument("--model", required=True, help="a .keras file, a run directory, or fcn8s/fcn16s/fcn32s (untrained)")
    parser.add_argument("--scratch", default="/tmp/fcn-geotiff-bench", help="folder for the scenes and masks (default %(default)s)")
    parser.add_argument("--sizes", default="16384,32768", help="scene sides (default %(default)s)")
    parser.add_argument("--pixel-size", type=float, default=0.5, help="scene pixel size in metres (default %(default)s)")
    parser.add_argument("--model-gsd", type=float, default=2.39, help="the model's GSD in m/px (default %(default)s: trained at 256 px)")
    parser.add_argument("--scale", type=float, default=None, help="inference scale (default: --pixel-size / --model-gsd)")
    parser.add_argument("--region", type=int, default=8192, help="side of the in-memory comparison region (default %(default)s)")
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--overlap", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=1, help="windows per model call (default %(default)s)")
    parser.add_argument("--same-answer-only", action="store_true", help="only the DeepGlobe tile comparison")
    parser.add_argument("--scenes-only", action="store_true", help="only build and run the scenes (no in-memory comparison)")
    parser.add_argument("--skip-same-answer", action="store_true")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--repeats", type=int, default=2, help="alternated runs of each path in the speed comparison (default %(default)s)")
    parser.add_argument("--child", choices=("scene", "memory", "speed"), help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scale is None:
        args.scale = geo.scale_for_gsd(args.pixel_size, args.model_gsd)
    if args.child:
        result = {"scene": child_scene, "memory": child_memory, "speed": child_speed}[args.child](args)
        print(json.dumps(result))
        return 0

    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    report: dict = {"scale": args.scale, "tile": args.tile, "batch_size": args.batch_size, "model": args.model, "load_average_start": os.getloadavg()}
    print(f"scale {args.scale:.4f}, tile {args.tile}, batch {args.batch_size}; load average {os.getloadavg()}", flush=True)
    if not args.skip_same_answer and args.model not in ("fcn8s", "fcn16s", "fcn32s"):
        report["same_answer"] = same_answer(args, scratch)
    if args.same_answer_only:
        return _finish(report, args)

    from fcn.images import read_rgb

    tiles = [read_rgb(p) for p in sorted(Path(args.deepglobe).glob("*_sat.jpg"))]
    sizes = [int(s) for s in args.sizes.split(",")]
    scenes = {}
    for side in sizes:
        path = scratch / f"mosaic_{side}.tif"
        if not path.exists():
            start = time.perf_counter()
            build_mosaic(path, side, tiles, args.pixel_size)
            print(f"built {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.0f} s", flush=True)
        scenes[side] = path
    del tiles

    report["scenes"] = {}
    for side, path in scenes.items():
        figures = run_child("scene", args, input=path, output=scratch / f"mosaic_{side}_mask.tif")
        report["scenes"][side] = figures
        print(f"scene {side}²: {json.dumps(figures)}", flush=True)

    if args.scenes_only:
        return _finish(report, args)
    largest = max(sizes)
    region = min(args.region, largest)
    memory = run_child("memory", args, input=scenes[largest], output=scratch / "region_memory.npy", region=region)
    print(f"in-memory {region}²: {json.dumps(memory)}", flush=True)
    in_memory = np.load(scratch / "region_memory.npy")
    from_scene = read_mask_region(scratch / f"mosaic_{largest}_mask.tif", region)
    band = int(round(args.tile / args.scale))
    inner = slice(0, max(1, region - band))
    # The region as its own GeoTIFF, streamed: what streaming alone changes.
    region_tif = scratch / f"region_{region}.tif"
    if not region_tif.exists():
        with geo.open_scene(scenes[largest]) as scene:
            rgb, _ = scene.read((0, region), (0, region))
        write_tile_geotiff(region_tif, rgb, args.pixel_size)
        del rgb
    speed = run_child("speed", args, input=region_tif, output=scratch / f"region_{region}_mask.tif")
    print(f"alternated on the region: {json.dumps(speed)}", flush=True)
    region_streamed = read_mask_region(scratch / f"region_{region}_mask.tif", region)
    report["region"] = {
        "side": region,
        "in_memory": memory,
        "alternated_speed": speed,
        "agreement_streamed_region_vs_in_memory": float((region_streamed == in_memory).mean()),
        "agreement_scene_vs_in_memory": float((from_scene == in_memory).mean()),
        "agreement_scene_vs_in_memory_without_edge_band": float((from_scene[inner, inner] == in_memory[inner, inner]).mean()),
        "edge_band_px": band,
    }
    for figures in report["scenes"].values():
        # Separate processes at different times: only indicative on a shared machine.
        figures["speed_vs_in_memory_separate_runs"] = memory["seconds_per_mp"] / figures["seconds_per_mp"]
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
