"""What issue 20's cases stand on: the files they make and inspect, and running one command of a tree.

Used by ``nothing_lost_cases.py`` for ``bench/nothing_lost_table.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

NOISE = re.compile(
    r"^([IWEF]\d{4} |\d{4}-\d\d-\d\d |To enable the following|WARNING: All log messages|E0000|W0000|I0000)"
)
PALETTE = [(0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)]


# ---------------------------------------------------------------- fixtures


def tile(path: Path, seed: int, size: int = 64) -> None:
    rgb = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, "JPEG", quality=90)


def gt_mask(path: Path, seed: int, size: int = 64) -> None:
    classes = np.random.default_rng(seed).integers(0, 7, (size // 8, size // 8))
    rgb = np.asarray(PALETTE, np.uint8)[np.kron(classes, np.ones((8, 8), int))]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)  # written by Pillow: no fcn mark, like a real ground truth


def geotiff(path: Path, size: int = 96, seed: int = 0) -> None:
    import rasterio
    from rasterio.transform import from_origin

    data = np.random.default_rng(seed).integers(0, 256, (3, size, size), dtype=np.uint8)
    profile = dict(driver="GTiff", height=size, width=size, count=3, dtype="uint8", crs="EPSG:32633")
    with rasterio.open(path, "w", transform=from_origin(500000, 4000000, 1.2, 1.2), **profile) as dst:
        dst.write(data)


def pairs(folder: Path, n: int, size: int = 64) -> None:
    for k in range(n):
        tile(folder / f"{k:04d}_sat.jpg", k, size)
        gt_mask(folder / f"{k:04d}_mask.png", k, size)


@contextlib.contextmanager
def full_disk(folder: Path, size: str, leave: int):
    """A tmpfs of ``size`` at ``folder`` filled so that about ``leave`` bytes stay free; yields
    False (and mounts nothing) without root. Unmounted on leaving the block."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield False
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode != 0:
        yield False
        return
    try:
        stats = os.statvfs(folder)
        free = stats.f_bavail * stats.f_frsize
        with open(folder / "ballast", "wb") as handle:
            handle.write(b"\0" * max(0, free - leave))
        yield True
    finally:
        subprocess.run(["umount", str(folder)])


def listing(folder: Path, pattern: str = "*") -> str:
    if not folder.exists():
        return "(no folder)"
    names = sorted(p.name for p in folder.glob(pattern) if p.name != "ballast")
    hidden = [n for n in sorted(os.listdir(folder)) if n.startswith(".")]
    text = f"{len(names)} file(s)"
    if hidden and pattern == "*":
        text += f", hidden: {', '.join(hidden[:3])}{'...' if len(hidden) > 3 else ''}"
    return text


def truncated_images(folder: Path) -> list[str]:
    bad = []
    for path in sorted(folder.glob("*")):
        if path.suffix.lower() in (".png", ".jpg") and not path.name.startswith("."):
            try:
                with Image.open(path) as img:
                    img.load()
            except Exception:
                bad.append(path.name)
    return bad


def big(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height)).save(path, compress_level=1)


# ---------------------------------------------------------------- running


class Runner:
    def __init__(self, tree: Path, model: Path, python: str):
        self.tree, self.model, self.python = tree, model, python

    def script(self, name: str) -> str:
        return str(self.tree / "scripts" / f"{name}.py")

    def run(self, cwd: Path, command: str, *args, prefix=(), limit_kb: int | None = None, timeout=300):
        argv = [*prefix, self.python, self.script(command), *map(str, args)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"}
        shell = None
        if limit_kb is not None:
            shell = f"ulimit -v {limit_kb}; exec " + " ".join(f"'{a}'" for a in argv)
        start = time.perf_counter()
        proc = subprocess.run(
            shell if shell else argv,
            shell=bool(shell),
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return proc.returncode, stderr_lines(proc.stderr), time.perf_counter() - start, proc.stdout


def stderr_lines(text: str) -> list[str]:
    lines = []
    for line in text.replace("\r", "\n").splitlines():
        line = line.strip()
        if not line or NOISE.match(line) or re.search(r"^\[\d+/\d+\]|\d+/\d+ \[|it/s|image/s|window/s|\d+%\|", line):
            continue
        lines.append(line)
    return lines


def killed(r: Runner, d: Path, command: str, name: str, args: list) -> tuple:
    marker = d / f"paused-{command}"
    env = {
        **os.environ,
        "FCN_TEST_PAUSE_WRITE": name,
        "FCN_TEST_PAUSE_MARKER": str(marker),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    proc = subprocess.Popen(
        [r.python, r.script(command), *map(str, args)],
        cwd=d,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        if marker.exists() or proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return marker.exists()
