"""Files per second of ``fcn-predict`` in one process against ``--cluster local:1`` and ``local:2``.

    python bench/region_speed.py --tiles DATA_DIR/landcover-dev --deepglobe DATA_DIR/deepglobe-tiles
        --scratch /tmp/region-bench [--limit 40] [--scene-copies 2] [--width 0.25] [--model M.onnx]
        [--modes single,local:1,local:2] [--kill-check] [--json FILE]

Three inputs, each run by ``fcn-predict`` as a user runs it (a fresh process per run, ``-q``):

* ``tiles``: the first ``--limit`` real 512² JPEG tiles;
* ``scenes``: the DeepGlobe 2448² tiles as lossless 0.5 m UTM GeoTIFFs, side by side, each
  ``--scene-copies`` times (6 scenes by default), predicted whole at scale 1;
* ``overhead``: 200 PNG tiles of 64² with a 1x1-convolution ONNX model, where the model costs
  nothing: the steady seconds per file of ``local:1`` minus those of one process is the cluster
  path's own cost per file (task round trip, pickling, files opened on the worker).

The model is an untrained FCN8s at ``--width`` (a quarter of VGG16's channels by default: the
full model is ~16x slower on a shared 2-core CPU, and speed ratios, not absolute figures, are the
point) exported to ONNX, so the workers never import TensorFlow; ``--model`` takes any other. For each
input and mode: the whole command's wall time (files/s including model loading and, for a cluster,
starting it) and the steady rate the command prints (after start-up); masks are compared with the
single-process run's, byte for byte. On the scenes, a last run with ``--resume`` predicts nothing and
times ``--mosaic`` and ``--polygons`` alone. ``--kill-check`` kills one worker process (``kill -9``)
of a ``local:2`` run over the tiles after a quarter of the masks exist, and checks that the run still
ends with every mask, the same bytes, and no temporary file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fcn.core.palette import NUM_CLASSES  # noqa: E402

SUMMARY = re.compile(r"wrote (\d+) masks? .* in ([\d.]+) s(?: \(([\d.]+) (?:images|files)/s)?")


def tiny_onnx_model(scratch: Path, width: float) -> Path:
    """An untrained FCN8s of ``width`` exported to ONNX (kept between runs), trained at 0.5 m/px by its info."""
    path = scratch / f"fcn8s-w{width:g}.onnx"
    if path.exists():
        return path
    import keras

    from fcn.inference.export import export_model
    from fcn.model.builders import build_model
    from fcn.model.checkpoints import ModelInfo

    keras.utils.set_random_seed(0)
    model = build_model("fcn8s", input_shape=(None, None, 3), weights=None, paper_init=False, width=width)
    info = ModelInfo(model="fcn8s", train_scale=1.0, tile_gsd=0.5).to_dict()
    export_model(model, path, "onnx", model_info=info)
    return path


def pixel_onnx_model(scratch: Path) -> Path:
    """A 1x1 convolution + softmax as ONNX: a model that costs nothing (the overhead input)."""
    path = scratch / "pixel.onnx"
    if path.exists():
        return path
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    init = [
        numpy_helper.from_array((rng.normal(size=(NUM_CLASSES, 3, 1, 1)) / 40).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=NUM_CLASSES).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs_nchw"], axis=1),
        helper.make_node("Transpose", ["probs_nchw"], ["probs"], perm=[0, 2, 3, 1]),
    ]
    io = [("image", 3), ("probs", NUM_CLASSES)]
    values = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["b", "h", "w", c]) for name, c in io]
    graph = helper.make_graph(nodes, "pixel", [values[0]], [values[1]], initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tile_inputs(tiles: Path, scratch: Path, limit: int) -> Path:
    folder = scratch / "tiles"
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted(tiles.glob("*_sat.jpg"))[:limit]:
        link = folder / source.name
        if not link.exists():
            link.symlink_to(source.resolve())
    return folder


def scene_inputs(deepglobe: Path, scratch: Path, copies: int) -> Path:
    """The DeepGlobe tiles as 0.5 m UTM GeoTIFFs side by side, ``copies`` times (kept between runs)."""
    import rasterio
    from rasterio.transform import from_origin

    from fcn.core.images import read_rgb

    folder = scratch / "scenes"
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(deepglobe.glob("*_sat.jpg"))
    for copy in range(copies):
        for index, source in enumerate(sources):
            path = folder / f"{source.name.split('_')[0]}_{copy}.tif"
            if path.exists():
                continue
            rgb = read_rgb(source)
            column = copy * len(sources) + index
            transform = from_origin(500_000 + column * rgb.shape[1] * 0.5, 4_000_000, 0.5, 0.5)
            profile = dict(driver="GTiff", height=rgb.shape[0], width=rgb.shape[1], count=3, dtype="uint8")
            profile.update(crs="EPSG:32633", transform=transform, tiled=True, compress="deflate")
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(rgb.transpose(2, 0, 1))
    return folder


def small_inputs(scratch: Path, count: int = 200) -> Path:
    from PIL import Image

    folder = scratch / "small"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        path = folder / f"{index:04d}_sat.png"
        if not path.exists():
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    return folder


def predict_command(model: Path, inputs: Path, output: Path, mode: str, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "fcn.cli.predict", "--model", str(model), "--input", str(inputs)]
    command += ["--output", str(output), "-q", *extra]
    return command + (["--cluster", mode] if mode != "single" else [])


def timed_run(command: list[str]) -> tuple[float, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def same_bytes(folder: Path, reference: Path) -> tuple[int, int]:
    """(masks equal to the reference run's, masks in the reference run)."""
    names = sorted(p.name for p in reference.iterdir())
    equal = sum((folder / n).is_file() and (folder / n).read_bytes() == (reference / n).read_bytes() for n in names)
    return equal, len(names)


def bench_input(name: str, model: Path, inputs: Path, scratch: Path, modes: list[str]) -> list[dict]:
    """Every mode on one input: wall time, files/s, the command's steady rate, masks equal to one process's."""
    rows, files = [], sum(1 for _ in inputs.iterdir())
    for mode in modes:
        output = scratch / "out" / f"{name}-{mode.replace(':', '')}"
        if output.exists():
            subprocess.run(["rm", "-rf", str(output)], check=True)
        seconds, stdout = timed_run(predict_command(model, inputs, output, mode))
        match = SUMMARY.search(stdout)
        steady = float(match.group(3)) if match and match.group(3) else None
        equal, total = same_bytes(output, scratch / "out" / f"{name}-single")
        row = dict(input=name, mode=mode, files=files, seconds=round(seconds, 2))
        row.update(files_per_s=round(files / seconds, 3), steady_files_per_s=steady, same_masks=f"{equal}/{total}")
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def resumed_run(model: Path, scenes: Path, scratch: Path) -> dict:
    """A ``--resume`` run over the finished scenes with ``--mosaic`` and ``--stats``: nothing is predicted again."""
    output = scratch / "out" / "scenes-single"
    extra = ["--resume", "--mosaic", str(scratch / "region.vrt"), "--stats", str(scratch / "region.csv")]
    seconds, stdout = timed_run(predict_command(model, scenes, output, "single", *extra, "--overwrite"))
    row = dict(input="scenes", mode="--resume, --mosaic, --stats", seconds=round(seconds, 2), report=stdout.strip())
    print(json.dumps(row), flush=True)
    return row


def polygons_of_ground_truth(deepglobe: Path, scratch: Path, min_area: float) -> dict:
    """Seconds of --polygons on the DeepGlobe ground truth as class-map GeoTIFFs (real land-cover shapes).

    An untrained model's class maps are pixel noise (millions of one-pixel polygons per scene): no
    measure of a real map.
    """
    import rasterio
    from rasterio.transform import from_origin

    from fcn.core.images import read_mask
    from fcn.inference.geo_writer import MaskWriter
    from fcn.inference.polygons import write_polygons

    folder = scratch / "truth"
    folder.mkdir(exist_ok=True)
    masks = []
    for index, source in enumerate(sorted(deepglobe.glob("*_mask.png"))):
        classes = read_mask(source)
        path = folder / source.name.replace(".png", ".tif")
        transform = from_origin(500_000 + index * classes.shape[1] * 0.5, 4_000_000, 0.5, 0.5)
        if not path.exists():
            with MaskWriter(
                path, height=classes.shape[0], width=classes.shape[1], crs="EPSG:32633", transform=transform
            ) as out:
                out.append(classes)
        masks.append(path)
    start = time.perf_counter()
    count = write_polygons(scratch / "truth.gpkg", masks, min_area_m2=min_area)
    seconds = time.perf_counter() - start
    with rasterio.open(masks[0]) as first:
        pixels = first.width * first.height * len(masks)
    row = dict(input="ground truth", mode=f"--polygons --min-area {min_area:g}", scenes=len(masks), polygons=count)
    row.update(seconds=round(seconds, 2), megapixels_per_s=round(pixels / 1e6 / seconds, 2))
    print(json.dumps(row), flush=True)
    return row


def kill_check(model: Path, inputs: Path, scratch: Path) -> dict:
    """A ``local:2`` run whose worker process is killed (-9) after a quarter of the masks: all still done?"""
    import psutil

    output = scratch / "out" / "tiles-killed"
    subprocess.run(["rm", "-rf", str(output)], check=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = predict_command(model, inputs, output, "local:2")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    files, killed = sum(1 for _ in inputs.iterdir()), None
    while process.poll() is None and killed is None:
        time.sleep(0.2)
        done = len(list(output.glob("*_mask.png"))) if output.exists() else 0
        workers = [
            p for p in psutil.Process(process.pid).children(recursive=True) if "spawn_main" in " ".join(p.cmdline())
        ]
        if done >= files // 4 and workers:
            killed = workers[-1].pid
            os.kill(killed, signal.SIGKILL)
    stdout, stderr = process.communicate()
    equal, total = same_bytes(output, scratch / "out" / "tiles-single")
    temporary = [p.name for p in output.iterdir() if p.name.startswith(".")]
    row = dict(
        check="kill -9 of a worker", killed_pid=killed, exit_code=process.returncode, same_masks=f"{equal}/{total}"
    )
    row.update(temporary_files=temporary, summary=stdout.strip().splitlines()[-1:] or stderr.strip().splitlines()[-3:])
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiles", type=Path, required=True)
    parser.add_argument("--deepglobe", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--scene-copies", type=int, default=2)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--model", type=Path, default=None, help="default: an untrained FCN8s of --width, as ONNX")
    parser.add_argument("--modes", default="single,local:1,local:2")
    parser.add_argument("--kill-check", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    model = args.model or tiny_onnx_model(args.scratch, args.width)
    modes = args.modes.split(",")
    rows = bench_input("overhead", pixel_onnx_model(args.scratch), small_inputs(args.scratch), args.scratch, modes)
    tiles = tile_inputs(args.tiles, args.scratch, args.limit)
    rows += bench_input("tiles", model, tiles, args.scratch, modes)
    scenes = scene_inputs(args.deepglobe, args.scratch, args.scene_copies)
    rows += bench_input("scenes", model, scenes, args.scratch, modes)
    rows.append(resumed_run(model, scenes, args.scratch))
    rows.append(polygons_of_ground_truth(args.deepglobe, args.scratch, 0.0))
    rows.append(polygons_of_ground_truth(args.deepglobe, args.scratch, 100.0))
    if args.kill_check:
        rows.append(kill_check(model, tiles, args.scratch))
    result = dict(model=str(model), cpu_count=os.cpu_count(), load_average=os.getloadavg(), rows=rows)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
