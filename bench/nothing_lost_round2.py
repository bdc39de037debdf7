"""Issue 28's cases (round 2), registered after issue 20's for ``bench/nothing_lost_table.py`` (``--only r2:``).

Same contract as ``nothing_lost_cases.py``: ``function(runner, folder) -> (result, state)``. Training cases
train a tiny FCN8s (``--width 0.0625 --weights none``) on 64-px tiles for one epoch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from nothing_lost_cases import NO_TMPFS, case, export_onto_full_disk
from nothing_lost_harness import Runner, big, full_disk, geotiff, listing, pairs, tile
from PIL import Image

TINY = ["--weights", "none", "--width", "0.0625", "--batch-size", "2", "--precision", "float32"]
AS_NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")


def damage(path: Path) -> None:
    """Zero 200 bytes in the middle of a JPEG, keeping its end marker."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = bytes(200)
    path.write_bytes(bytes(data))


def synthetic(r: Runner, folder: Path) -> None:
    """The demo's synthetic tiles, written by the tree's own ``fcn.cli.synthetic`` (as ``--demo`` does)."""
    env = {**os.environ, "PYTHONPATH": str(r.tree), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [r.python, "-m", "fcn.cli.synthetic", str(folder), "--n-train", "2", "--n-val", "3", "--size", "64"]
    subprocess.run(command, env=env, check=True, capture_output=True)


def train(r: Runner, d: Path, *args, timeout=900):
    return r.run(d, "train", *args, *TINY, timeout=timeout)


def tiles_trained(result) -> str:
    found = [m[1] for line in result[1] for m in [re.search(r" on (\d+) tiles", line)] if m]
    return f"trained on {found[0]} tiles" if found else "trained on ? tiles"


@case("r2: predict --output a copy of --demo's validation tiles (its ground truth)")
def demo_ground_truth(r: Runner, d: Path):
    synthetic(r, d / "data")
    (d / "D").mkdir()
    for path in (d / "data" / "val").glob("0008_*"):
        shutil.copy(path, d / "D" / path.name)
    before = (d / "D" / "0008_mask.png").read_bytes()
    out = r.run(d, "predict", "--model", r.model, "--input", "D/0008_sat.jpg", "--output", "D", "-q")
    return out, "ground truth 0008_mask.png " + (
        "kept" if (d / "D" / "0008_mask.png").read_bytes() == before else "REPLACED"
    )


@case("r2: predict --output a prepare_deepglobe validation folder")
def prepared_ground_truth(r: Runner, d: Path):
    pairs(d / "src", 2, 128)
    r.run(d, "prepare_deepglobe", "--input", "src", "--output", "ds", "--size", "64", "--val-fraction", "0.5")
    masks = sorted((d / "ds" / "validation").glob("*_mask.png"))
    (d / "in").mkdir()
    for mask in masks:
        name = mask.name.replace("_mask.png", "_sat.jpg")
        shutil.copy(mask.with_name(name), d / "in" / name)
    before = {m.name: m.read_bytes() for m in masks}
    out = r.run(d, "predict", "--model", r.model, "--input", "in", "--output", "ds/validation", "-q")
    replaced = sum((d / "ds" / "validation" / n).read_bytes() != b for n, b in before.items())
    return out, f"validation masks replaced: {replaced} of {len(before)}"


@case("r2: train --out a folder holding the user's best.keras, config.json, history.csv")
def train_over_user_files(r: Runner, d: Path):
    pairs(d / "t", 4)
    pairs(d / "v", 2)
    (d / "mine").mkdir()
    for name in ("best.keras", "config.json", "history.csv"):
        (d / "mine" / name).write_text(f"the user's {name}\n")
    out = train(r, d, "--train-dir", "t", "--val-dir", "v", "--out", "mine", "--epochs", "1")
    names = ("best.keras", "config.json", "history.csv")
    kept = sum((d / "mine" / n).read_bytes() == f"the user's {n}\n".encode() for n in names)
    return out, f"user files kept: {kept} of 3"


@case("r2: a JPEG damaged mid-file: train / predict / prepare_deepglobe")
def damaged_jpeg(r: Runner, d: Path):
    pairs(d / "t", 4)
    pairs(d / "v", 2)
    damage(d / "t" / "0001_sat.jpg")
    pairs(d / "src", 3, 256)
    damage(d / "src" / "0001_sat.jpg")
    a = train(r, d, "--train-dir", "t", "--val-dir", "v", "--out", "run", "--epochs", "1")
    b = r.run(d, "predict", "--model", r.model, "--input", "t", "--output", "p", "-q")
    c = r.run(d, "prepare_deepglobe", "--input", "src", "--output", "ds", "--size", "64", "-q")
    rc = "/".join(str(x[0]) for x in (a, b, c))
    lines = [f"[{len(x[1])}] {x[1][-1] if x[1] else ''}" for x in (a, b, c)]
    garbage = len(list((d / "ds").glob("*/0001_*_sat.jpg")))
    state = f"predict masks {listing(d / 'p', '*.png')} (damaged one {'written' if (d / 'p' / '0001_mask.png').exists() else 'not written'}); prepare: {garbage} tiles of the damaged source"
    return (rc, lines, 0, ""), state


@case("r2: train --resume RUN without --epochs / with --model fcn32s (a 1-epoch FCN8s run)")
def resume_keeps_the_run(r: Runner, d: Path):
    pairs(d / "t", 2)
    pairs(d / "v", 1)
    train(r, d, "--train-dir", "t", "--val-dir", "v", "--out", "run", "--epochs", "1", "--image-size", "32")
    a = r.run(d, "train", "--resume", "run", "--model", "fcn32s", timeout=900)
    b = r.run(d, "train", "--resume", "run", timeout=1800)
    config = json.loads((d / "run" / "config.json").read_text())["args"]
    rows = len((d / "run" / "history.csv").read_text().splitlines()) - 1
    lines = [f"[{len(x[1])}] {x[1][0] if x[1] else ''}" for x in (a, b)]
    return (
        f"{a[0]}/{b[0]}",
        lines,
        0,
        "",
    ), f"config: {config['model']}, epochs {config['epochs']}; history {rows} rows"


@case("r2: train on 8 pairs, one named with a newline")
def newline_name(r: Runner, d: Path):
    pairs(d / "t", 8)
    pairs(d / "v", 2)
    for suffix in ("_sat.jpg", "_mask.png"):
        (d / "t" / f"0007{suffix}").rename(d / "t" / f"00\n07{suffix}")
    out = train(r, d, "--train-dir", "t", "--val-dir", "v", "--out", "run", "--epochs", "1")
    return out, tiles_trained(out)


@case("r2: mean_iou -q with a class absent from both folders")
def mean_iou_quiet(r: Runner, d: Path):
    for folder in ("gt", "pred"):  # one class only: the six others are absent from both
        (d / folder).mkdir()
        Image.new("RGB", (64, 64), (0, 255, 255)).save(d / folder / "0001_mask.png")
    out = r.run(d, "mean_iou", "-g", "gt", "-p", "pred", "-q")
    return out, "-"


@case("r2: train --init-from a truncated .keras / a renamed JPEG")
def init_from_bad(r: Runner, d: Path):
    pairs(d / "t", 2)
    pairs(d / "v", 1)
    (d / "cut.keras").write_bytes(Path(r.model).read_bytes()[:5000])
    tile(d / "photo.keras", 1)
    results = [
        train(r, d, "--train-dir", "t", "--val-dir", "v", "--out", f"run{k}", "--epochs", "1", "--init-from", name)
        for k, name in enumerate(("cut.keras", "photo.keras"))
    ]
    rc = "/".join(str(x[0]) for x in results)
    return (rc, [x[1][-1] if x[1] else "" for x in results], 0, ""), "-"


@case("r2: predict with a mode-000 .keras (as user nobody)")
def unreadable_model(r: Runner, d: Path):
    pairs(d / "in", 1)
    shutil.copy(r.model, d / "locked.keras")
    os.chmod(d / "locked.keras", 0)
    (d / "out").mkdir()
    shutil.chown(d / "out", "nobody")
    os.chmod(d, 0o755)
    out = r.run(d, "predict", "--model", "locked.keras", "--input", "in", "--output", "out", "-q", prefix=AS_NOBODY)
    return out, f"out: {listing(d / 'out')}"


@case("r2: predict --batch-size 1000000000 on a 4096 px image (under ulimit -v 16 GiB)")
def huge_batch(r: Runner, d: Path):
    big(d / "in" / "0001_sat.png", 4096, 4096)
    tile(d / "in" / "0002_sat.jpg", 2)
    args = ["--input", "in", "--output", "out", "-q", "--batch-size", "1000000000"]
    out = r.run(d, "predict", "--model", r.model, *args, limit_kb=16 << 20, timeout=600)
    return out, f"out: {listing(d / 'out')}"


@case("r2: predict a GeoTIFF scene onto a full disk (the mask .tif fails)")
def geotiff_mask_disk_full(r: Runner, d: Path):
    (d / "in").mkdir()
    geotiff(d / "in" / "s0.tif", 640, 0)
    with full_disk(d / "full", "1m", leave=20_000) as mounted:
        if not mounted:
            return NO_TMPFS
        out = r.run(d, "predict", "--model", r.model, "--input", "in", "--output", "full/m", "--scale", "0.25")
        return out, f"masks {listing(d / 'full' / 'm')}"


@case("r2: SavedModel export onto a full disk")
def saved_model_disk_full(r: Runner, d: Path):
    return export_onto_full_disk(r, d, "saved_model", "sm")
