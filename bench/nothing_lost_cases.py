"""Issue 20's cases, in the order of its list, for ``bench/nothing_lost_table.py``.

A case is ``function(runner, folder) -> (result, state)``: it makes its inputs in the fresh ``folder``
and runs commands there; ``result`` is what :meth:`Runner.run` returns (exit code, stderr lines,
seconds, stdout), or ``None`` when the case was skipped; ``state`` is one line on what is on disk.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from nothing_lost_harness import (
    Runner,
    big,
    full_disk,
    geotiff,
    killed,
    listing,
    pairs,
    tile,
    truncated_images,
)

CASES = {}
NO_TMPFS = (None, "skipped (needs root for a tmpfs)")


def case(name):
    """Register the decorated function in :data:`CASES` as ``name`` (the table keeps this order)."""

    def register(function):
        CASES[name] = function
        return function

    return register


def predict_in_out(r: Runner, d: Path, *flags, **run_options) -> tuple:
    """``predict -q`` of the folder ``in`` into ``out`` with the runner's model (``flags`` added)."""
    return r.run(d, "predict", "--model", r.model, "--input", "in", "--output", "out", "-q", *flags, **run_options)


def table_start(result: tuple) -> str:
    """The first words mean_iou printed (its stdout)."""
    return "stdout: " + " ".join(result[3].split())[:40]


def mean_iou_of_two_pairs(r: Runner, d: Path, spoil) -> tuple:
    """mean_iou of 2 ground truths ``g`` against 2 predictions ``p`` after ``spoil(p)``; (result, state)."""
    pairs(d / "g", 2)
    pairs(d / "p", 2)
    spoil(d / "p")
    out = r.run(d, "mean_iou", "-g", "g", "-p", "p")
    return out, table_start(out)


def export_onto_full_disk(r: Runner, d: Path, export_format: str, output: str) -> tuple:
    """export (no parity check) to ``full/<output>`` on a 1 MiB tmpfs; (result, state), or :data:`NO_TMPFS`."""
    with full_disk(d / "full", "1m", leave=100_000) as mounted:
        if not mounted:
            return NO_TMPFS
        out = r.run(
            d, "export", "--model", r.model, "--format", export_format, "--output", f"full/{output}", "--no-check"
        )
        return out, listing(d / "full")


@case("predict: single file into its own folder (ground truth beside it)")
def single_file_into_gt(r: Runner, d: Path):
    pairs(d / "g", 1)
    (d / "g" / "0000_mask.png").rename(d / "g" / "0030_mask.png")
    (d / "g" / "0000_sat.jpg").rename(d / "g" / "0030_sat.jpg")
    before = (d / "g" / "0030_mask.png").read_bytes()
    out = r.run(d, "predict", "--model", r.model, "--input", "g/0030_sat.jpg", "--output", "g", "-q")
    same = (d / "g" / "0030_mask.png").read_bytes() == before
    return out, "ground truth 0030_mask.png " + ("kept" if same else "REPLACED")


@case("predict: --output a folder of ground-truth masks")
def output_is_gt_folder(r: Runner, d: Path):
    pairs(d / "data", 2)
    (d / "gt").mkdir()
    for p in (d / "data").glob("*_mask.png"):
        shutil.move(p, d / "gt" / p.name)
    before = {p.name: p.read_bytes() for p in (d / "gt").iterdir()}
    out = r.run(d, "predict", "--model", r.model, "--input", "data", "--output", "gt", "-q")
    replaced = [n for n, b in before.items() if (d / "gt" / n).read_bytes() != b]
    return out, f"ground truths replaced: {len(replaced)} of {len(before)}"


@case("export: --output RUN/best.keras")
def export_onto_checkpoint(r: Runner, d: Path):
    (d / "run").mkdir()
    shutil.copy(r.model, d / "run" / "best.keras")
    before = (d / "run" / "best.keras").read_bytes()
    out = r.run(d, "export", "--model", "run", "--format", "onnx", "--output", "run/best.keras", "--no-check")
    same = (d / "run" / "best.keras").read_bytes() == before
    return out, "best.keras " + ("kept" if same else "REPLACED by the export")


@case("export: --output notes.txt (a file fcn did not write)")
def export_onto_notes(r: Runner, d: Path):
    (d / "notes.txt").write_text("my notes\n")
    out = r.run(d, "export", "--model", r.model, "--format", "onnx", "--output", "notes.txt", "--no-check")
    same = (d / "notes.txt").read_bytes() == b"my notes\n"
    return out, "notes.txt " + ("kept" if same else "REPLACED")


@case("predict --overlay, disk full")
def overlay_disk_full(r: Runner, d: Path):
    pairs(d / "in", 6, 128)
    with full_disk(d / "full", "2m", leave=60_000) as mounted:
        if not mounted:
            return NO_TMPFS
        out = r.run(
            d, "predict", "--model", r.model, "--input", "in", "--output", "full/m", "--overlay", "full/o", "-q"
        )
        bad = truncated_images(d / "full" / "m") + truncated_images(d / "full" / "o")
        summary = next((line for line in out[3].splitlines() if line.startswith("wrote")), "")
        masks, overlays = listing(d / "full" / "m", "*.png"), listing(d / "full" / "o", "*.jpg")
        return out, f"masks {masks}, overlays {overlays}, truncated: {len(bad)}; '{summary[:40]}'"


@case("predict masks only, disk full")
def masks_disk_full(r: Runner, d: Path):
    pairs(d / "in", 12, 128)
    with full_disk(d / "full", "1m", leave=40_000) as mounted:
        if not mounted:
            return NO_TMPFS
        out = r.run(d, "predict", "--model", r.model, "--input", "in", "--output", "full/m", "-q")
        bad = truncated_images(d / "full" / "m")
        return out, f"masks {listing(d / 'full' / 'm', '*.png')}, truncated: {len(bad)}"


@case("predict GeoTIFF scenes (+ --overlay), disk full")
def scenes_disk_full(r: Runner, d: Path):
    (d / "in").mkdir()
    for k in range(3):
        geotiff(d / "in" / f"s{k}.tif", 640, k)
    with full_disk(d / "full", "1m", leave=150_000) as mounted:
        if not mounted:
            return NO_TMPFS
        command = ["predict", "--model", r.model, "--input", "in", "--output", "full/m", "--overlay", "full/o"]
        out = r.run(d, *command, "-q", "--scale", "0.25")
        cut = [path.name for path in sorted((d / "full" / "m").glob("*.tif")) if not readable_geotiff(path)]
        return out, f"masks {listing(d / 'full' / 'm', '*.tif')}, unreadable: {len(cut)}"


def readable_geotiff(path: Path) -> bool:
    import rasterio

    try:
        with rasterio.open(path) as src:
            src.read(1)
    except Exception:
        return False
    return True


@case("prepare_deepglobe, disk full, then resumed")
def deepglobe_disk_full(r: Runner, d: Path):
    pairs(d / "src", 3, 256)
    with full_disk(d / "full", "1m", leave=200_000) as mounted:
        if not mounted:
            return NO_TMPFS
        first = r.run(d, "prepare_deepglobe", "--input", "src", "--output", "full/ds", "--size", "128")
        os.remove(d / "full" / "ballast")
        second = r.run(d, "prepare_deepglobe", "--input", "src", "--output", "full/ds", "--size", "128")
        bad = truncated_images(d / "full" / "ds" / "train") + truncated_images(d / "full" / "ds" / "validation")
        return second, f"first run rc {first[0]}, {len(first[1])} line(s); after resume: truncated tiles {len(bad)}"


@case("prepare_deepglobe --size 200000 --grid 1 (under ulimit -v 4 GiB)")
def deepglobe_huge(r: Runner, d: Path):
    pairs(d / "src", 1, 64)
    out = r.run(
        d,
        "prepare_deepglobe",
        "--input",
        "src",
        "--output",
        "ds",
        "--size",
        "200000",
        "--grid",
        "1",
        limit_kb=4 << 20,
    )
    return out, f"ds: {listing(d / 'ds')}"


@case("prepare_deepglobe --input X/train --output X")
def deepglobe_input_inside_output(r: Runner, d: Path):
    pairs(d / "X" / "train", 3, 128)
    out = r.run(d, "prepare_deepglobe", "--input", "X/train", "--output", "X", "--size", "64")
    sources = sorted(p.name for p in (d / "X" / "train").glob("000?_sat.jpg"))
    return out, f"X/train holds {len(list((d / 'X' / 'train').iterdir()))} files, sources among them: {len(sources)}"


@case("predict: dangling link and link loop in the input folder")
def links(r: Runner, d: Path):
    pairs(d / "in", 2)
    (d / "in" / "0100_sat.jpg").symlink_to(d / "gone.jpg")
    (d / "in" / "0101_sat.jpg").symlink_to(d / "in" / "0101_sat.jpg")
    out = predict_in_out(r, d)
    return out, f"out: {listing(d / 'out', '*.png')}"


@case("mean_iou -g D -p D")
def mean_iou_same(r: Runner, d: Path):
    pairs(d / "D", 2)
    out = r.run(d, "mean_iou", "-g", "D", "-p", "D")
    return out, table_start(out)


@case("predict: a 15000x13000 image among good tiles")
def bomb_predict(r: Runner, d: Path):
    pairs(d / "in", 2)
    big(d / "in" / "0099_sat.png", 15000, 13000)
    out = predict_in_out(r, d)
    return out, f"out: {listing(d / 'out', '*.png')} (2 good tiles)"


@case("mean_iou: a 15000x13000 mask")
def bomb_mean_iou(r: Runner, d: Path):
    return mean_iou_of_two_pairs(r, d, lambda p: big(p / "0001_mask.png", 15000, 13000))


@case("predict: a 10000x10000 image (--scale 0.05)")
def warn_predict(r: Runner, d: Path):
    big(d / "in" / "0099_sat.png", 10000, 10000)
    out = predict_in_out(r, d, "--scale", "0.05")
    return out, f"out: {listing(d / 'out', '*.png')}"


@case("unreadable input folder (as user nobody): predict / mean_iou / prepare_deepglobe")
def unreadable(r: Runner, d: Path):
    pairs(d / "in", 1)
    for folder in (d / "out", d / "ds"):
        folder.mkdir()
        shutil.chown(folder, "nobody")
    os.chmod(d / "in", 0)
    os.chmod(d, 0o755)
    prefix = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    results = [
        predict_in_out(r, d, prefix=prefix),
        r.run(d, "mean_iou", "-g", "in", "-p", "out", prefix=prefix),
        r.run(d, "prepare_deepglobe", "--input", "in", "--output", "ds", prefix=prefix),
    ]
    os.chmod(d / "in", 0o755)
    rc = "/".join(str(x[0]) for x in results)
    lines = [f"[{len(x[1])}] {x[1][-1] if x[1] else ''}" for x in results]
    return (rc, lines, 0, ""), "-"


@case("predict --scale 100 on a 512 px tile (under ulimit -v 16 GiB)")
def scale_100(r: Runner, d: Path):
    tile(d / "in" / "0001_sat.jpg", 1, 512)
    out = predict_in_out(r, d, "--scale", "100", limit_kb=16 << 20)
    return out, f"out: {listing(d / 'out')}"


@case("a JPEG renamed .keras / a truncated .keras")
def bad_models(r: Runner, d: Path):
    tile(d / "fake.keras", 1)
    (d / "cut.keras").write_bytes(Path(r.model).read_bytes()[:5000])
    pairs(d / "in", 1)
    a = r.run(d, "predict", "--model", "fake.keras", "--input", "in", "--output", "out", "-q")
    b = r.run(d, "export", "--model", "cut.keras", "--format", "onnx", "--output", "m.onnx")
    return (f"{a[0]}/{b[0]}", [a[1][-1] if a[1] else "", b[1][-1] if b[1] else ""], 0, ""), f"out: {listing(d / 'out')}"


@case("export --opset 1")
def opset_1(r: Runner, d: Path):
    out = r.run(d, "export", "--model", r.model, "--format", "onnx", "--output", "m.onnx", "--opset", "1")
    return out, listing(d)


@case("export onto a full disk")
def export_disk_full(r: Runner, d: Path):
    return export_onto_full_disk(r, d, "onnx", "m.onnx")


@case("kill -9 mid-write, then a second run into the same output (predict / export)")
def kill_then_rerun(r: Runner, d: Path):
    pairs(d / "in", 2)
    paused = killed(r, d, "predict", "0001_mask.png", ["--model", r.model, "--input", "in", "--output", "out", "-q"])
    left = len([p for p in (d / "out").iterdir() if p.name.startswith(".")]) if (d / "out").exists() else 0
    a = predict_in_out(r, d)
    paused_e = killed(
        r, d, "export", "m.onnx", ["--model", r.model, "--format", "onnx", "--output", "m.onnx", "--no-check"]
    )
    left_e = len([p for p in d.iterdir() if p.name.startswith(".m.onnx")])
    b = r.run(d, "export", "--model", r.model, "--format", "onnx", "--output", "m.onnx", "--no-check")
    after_p = [p.name for p in (d / "out").iterdir() if p.name.startswith(".")]
    after_e = [p.name for p in d.iterdir() if p.name.startswith(".m.onnx")]
    state = f"paused {paused}/{paused_e}; temp files after kill {left}/{left_e}, after the rerun {len(after_p)}/{len(after_e)}"
    return (f"{a[0]}/{b[0]}", a[1] + b[1], 0, ""), state


@case("predict with a model error: output folder left behind?")
def model_error_folder(r: Runner, d: Path):
    pairs(d / "in", 1)
    tile(d / "fake.keras", 1)
    out = r.run(d, "predict", "--model", "fake.keras", "--input", "in", "--output", "newout", "-q")
    return out, "newout " + ("exists" if (d / "newout").exists() else "not created / removed")


@case("predict a truncated .tif")
def truncated_tif(r: Runner, d: Path):
    (d / "in").mkdir()
    geotiff(d / "in" / "s.tif", 256)
    data = (d / "in" / "s.tif").read_bytes()
    (d / "in" / "s.tif").write_bytes(data[: len(data) // 2])
    out = predict_in_out(r, d)
    return out, f"out: {listing(d / 'out')}"


@case("mean_iou after a killed predict (temp files in the prediction folder)")
def mean_iou_temp(r: Runner, d: Path):
    return mean_iou_of_two_pairs(r, d, lambda p: (p / ".0001_mask.png.tmp-abc123.png").write_bytes(b"half"))
