"""Checks a command runs before any work, so that nothing it was given is lost or overwritten.

* What an output may replace: :func:`carries_mark` (the project signed it), :func:`check_replaceable`
  (refuse anything else unless ``--overwrite``), :func:`check_not_an_input` (an input, or a file of the
  model read), :func:`check_apart` (input folder inside the output folder or the reverse),
  :func:`check_different_folders` (``-g`` and ``-p`` the same).
* Inputs: :func:`scan_folder` lists a folder's files and names the entries that cannot be read
  (dangling links, link loops, unreadable entries) instead of skipping them silently;
  :func:`readable_folder` refuses a folder that cannot be listed.
* Memory: :func:`available_memory` and :func:`check_memory` refuse a job that cannot fit.

No TensorFlow here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fcn.core.errors import InputError
from fcn.core.files import is_signature

OVERWRITE_HINT = "--overwrite replaces it"
_ONNX_MARK = b"fcn_metadata_version"  # export's key in the ONNX metadata_props
_ONNX_TAIL_BYTES = 1 << 20  # metadata_props are serialised after the graph: near the end


# ---------------------------------------------------------------- the project's mark


def carries_mark(path: str | os.PathLike) -> bool:
    """Whether the file (or SavedModel directory) at ``path`` was written by this project.

    PNG: ``Software`` text chunk; JPEG: comment; TIFF: software tag; ONNX: fcn metadata; a
    directory, ``.tflite`` or any other file: a sidecar ``<path>.json`` (or a SavedModel's
    ``assets.extra/fcn.json``) with fcn metadata; ``.json``: fcn metadata inside.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if path.is_dir():
            return _has_fcn_json(path.with_name(path.name + ".json")) or _has_fcn_json(
                path / "assets.extra" / "fcn.json"
            )
        if suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            return _image_signed(path)
        if suffix == ".onnx":
            return _onnx_signed(path)
        if suffix == ".json":
            return _has_fcn_json(path)
        return _has_fcn_json(path.with_name(path.name + ".json"))
    except OSError:
        return False


def _image_signed(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.format == "PNG":
                return is_signature(img.info.get("Software"))
            if img.format == "JPEG":
                return is_signature(img.info.get("comment"))
            if img.format == "TIFF":
                return is_signature(img.tag_v2.get(305))  # 305: Software
    except Exception:  # not an image Pillow reads (e.g. a BigTIFF it refuses): ask GDAL
        pass
    if path.suffix.lower() in (".tif", ".tiff"):
        return _gdal_signed(path)
    return False


def _gdal_signed(path: Path) -> bool:
    try:
        import rasterio
    except ImportError:
        return False
    try:
        with rasterio.open(path) as dataset:
            return is_signature(dataset.tags().get("TIFFTAG_SOFTWARE"))
    except Exception:
        return False


def _onnx_signed(path: Path) -> bool:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - _ONNX_TAIL_BYTES))
        if _ONNX_MARK in handle.read():
            return True
        handle.seek(0)
        while chunk := handle.read(16 << 20):
            if _ONNX_MARK in chunk:
                return True
    return False


def _has_fcn_json(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size > (16 << 20):
        return False
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if isinstance(content, dict):
        return "fcn_metadata_version" in content or is_signature(content.get("written_by"))
    return False


def check_replaceable(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    option: str = "",
    ours: Callable[[Path], bool] | None = None,
) -> None:
    """Refuse to replace an existing file the project did not write (unless ``overwrite``).

    Args:
        path: an output about to be written.
        overwrite: the command's ``--overwrite``.
        option: the option that named it (for the message), e.g. ``--output``.
        ours: a recogniser for formats without an embedded mark (e.g. the statistics table).

    Raises:
        InputError: ``path`` exists, is not the project's, and ``overwrite`` is False.
    """
    path = Path(path)
    if overwrite or not (path.exists() or path.is_symlink()):
        return
    if carries_mark(path) or (ours is not None and _safe(ours, path)):
        return
    what = f"{option} " if option else ""
    raise InputError(f"{path}: {what}exists and was not written by fcn; refusing to replace it ({OVERWRITE_HINT})")


def _safe(check: Callable[[Path], bool], path: Path) -> bool:
    try:
        return bool(check(path))
    except Exception:
        return False


# ---------------------------------------------------------------- outputs against inputs


def _key(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(path))


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file or folder (links and ``..`` resolved)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return _key(a) == _key(b)


def is_within(inner: str | os.PathLike, outer: str | os.PathLike) -> bool:
    """Whether ``inner`` is ``outer`` or lies inside it (links resolved)."""
    inner, outer = _key(inner), _key(outer)
    return inner == outer or outer in inner.parents


def check_apart(input_dir: str | os.PathLike, output_dir: str | os.PathLike, names=("--input", "--output")) -> None:
    """Refuse an input folder inside the output folder, the reverse, or the same folder.

    Raises:
        InputError: one line naming both options.
    """
    inp, out = Path(input_dir), Path(output_dir)
    if is_within(inp, out) or is_within(out, inp):
        how = "is" if same_path(inp, out) else ("is inside" if is_within(inp, out) else "contains")
        raise InputError(
            f"{inp}: {names[0]} folder {how} the {names[1]} folder {out}; the outputs would mix with "
            "the inputs: choose folders apart"
        )


def check_different_folders(a: str | os.PathLike, b: str | os.PathLike, names: Sequence[str]) -> None:
    """Refuse two options that name the same folder (e.g. ``-g`` and ``-p`` of mean_iou)."""
    if same_path(a, b):
        raise InputError(f"{a}: {names[0]} and {names[1]} are the same folder; they must differ")


def model_files(model: str | os.PathLike | None) -> set[Path]:
    """The files a model consists of, resolved: the file and its sidecar, or every file of its directory."""
    if model is None:
        return set()
    model = Path(model)
    files = {_key(model), _key(model.with_name(model.name + ".json"))}
    if model.is_dir():
        try:
            files.update(_key(p) for p in model.rglob("*") if p.is_file())
        except OSError:
            pass
    return files


def check_not_an_input(
    outputs: Iterable[str | os.PathLike],
    inputs: Iterable[str | os.PathLike] = (),
    model: str | os.PathLike | Iterable[str | os.PathLike] | None = None,
) -> None:
    """Refuse an output that is one of the inputs or a file of the model the command reads.

    Args:
        outputs: the files (or SavedModel directory) about to be written.
        inputs: the input files.
        model: the model path(s) as given or resolved (a file, a run directory, an exported artefact).

    Raises:
        InputError: one line naming the output.
    """
    taken = {_key(p) for p in inputs}
    models = [model] if model is None or isinstance(model, (str, os.PathLike)) else list(model)
    models = [m for m in models if m is not None]
    own = set().union(*(model_files(m) for m in models)) | {_key(m) for m in models}
    for output in outputs:
        key = _key(output)
        if key in taken:
            raise InputError(f"{output}: output would overwrite an input file")
        if key in own:
            raise InputError(f"{output}: output would overwrite the model it reads")


# ---------------------------------------------------------------- input folders


@dataclass
class FolderScan:
    """A folder's files with the wanted suffixes, and one line per entry that cannot be read."""

    files: list[Path] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def readable_folder(folder: str | os.PathLike, option: str = "") -> list[os.DirEntry]:
    """The entries of ``folder``; one line when it is missing, not a folder or cannot be listed."""
    folder = Path(folder)
    label = f"{option} " if option else ""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except FileNotFoundError:
        raise InputError(f"{folder}: {label}no such folder") from None
    except NotADirectoryError:
        raise InputError(f"{folder}: {label}is not a folder") from None
    except OSError as err:
        raise InputError(f"{folder}: {label}folder cannot be read ({err.strerror or err})") from None


def scan_folder(
    folder: str | os.PathLike, suffixes: Sequence[str], *, skip: Callable[[Path], bool] | None = None
) -> FolderScan:
    """The files of ``folder`` whose suffix is one of ``suffixes`` (any case), sorted by name.

    Entries with a wanted suffix that are not readable files are named in ``problems`` instead of
    being skipped silently: links that do not resolve, link loops, files that cannot be opened.
    Hidden files (temporary files of killed writes among them) are ignored.

    Raises:
        InputError: the folder itself is missing or cannot be listed.
    """
    scan = FolderScan()
    wanted = tuple(s.lower() for s in suffixes)
    for entry in sorted(readable_folder(folder), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.name.startswith(".") or path.suffix.lower() not in wanted or (skip is not None and skip(path)):
            continue
        problem = _entry_problem(path)
        if problem is None:
            scan.files.append(path)
        elif problem:
            scan.problems.append((path, f"{path}: {problem}"))
    return scan


def _entry_problem(path: Path) -> str | None:
    """None for a readable file, '' for a folder (not an input), else why it cannot be read."""
    try:
        if path.is_symlink():
            try:
                target = path.resolve(strict=True)
            except FileNotFoundError:
                return f"link to {os.readlink(path)}, which does not exist"
            except RuntimeError:
                return "link loop (the link points back to itself)"
            if target.is_dir():
                return ""
        elif path.is_dir():
            return ""
        if not path.is_file():
            return "not a regular file"
        with open(path, "rb"):
            return None
    except OSError as err:
        if err.errno == 40:  # ELOOP
            return "link loop (the link points back to itself)"
        return f"cannot be read ({err.strerror or err})"


# ---------------------------------------------------------------- memory


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable, capped by a cgroup limit; None when unknown."""
    limits = []
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit.isdigit() and int(limit) < 1 << 60:
                limits.append(int(limit) - int(Path(usage_file).read_text().strip()))
            break
        except (OSError, ValueError):
            continue
    return min(limits) if limits else None


def format_bytes(count: float) -> str:
    """``123456789`` -> ``118 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit in ("B", "KiB", "MiB") else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover


def check_memory(needed: int, what: str, hint: str = "") -> None:
    """Refuse a job whose estimated memory ``needed`` (bytes) exceeds what is available.

    Args:
        needed: the estimate.
        what: names the job, e.g. ``"x.jpg at --scale 100"``.
        hint: what to change, appended to the message.

    Raises:
        InputError: one line with the estimate and what is available.
    """
    available = available_memory()
    if available is None or needed <= available:
        return
    tail = f"; {hint}" if hint else ""
    raise InputError(
        f"{what}: needs about {format_bytes(needed)} of memory, {format_bytes(max(available, 0))} available{tail}"
    )


def prediction_memory(height: int, width: int, scale: float, num_classes: int = 7) -> int:
    """Bytes predicting one (height, width) image at ``scale`` needs beyond the model (an upper estimate).

    The image is resized to the working size and predicted window by window into per-class float32
    probabilities over the whole working image, which are resized back to the image's size: the
    input at both sizes (uint8 and float32), the probabilities at both sizes, and the class maps.
    """
    work = max(1, round(height * scale)) * max(1, round(width * scale))
    full = height * width
    return int(work * (3 * 4 + 2 * num_classes * 4) + full * (3 + 3 * 4 + num_classes * 4 + 2))


def tiling_memory(height: int, width: int, size: int, grid: int, processes: int = 1) -> int:
    """Bytes cutting one (height, width) image and its mask into ``grid``² tiles of ``size``² needs.

    Per process: the source image and mask (RGB uint8), one cell of each as float32 while resized,
    and the resized tile, its class map and its encoded copies.
    """
    cell = -(-height // grid) * -(-width // grid)
    tile = size * size
    return int(processes * (2 * height * width * 3 + 2 * cell * 3 * 4 + tile * (3 * 4 + 3 * 3 + 1)))


def check_keras_file(path: str | os.PathLike) -> None:
    """Refuse a ``.keras`` file that is not a whole Keras archive (a renamed JPEG, a cut-off copy) in one line.

    Raises:
        InputError: the file is not a zip archive with a ``config.json``.
    """
    import zipfile

    path = Path(path)
    if not path.is_file():
        return  # the loader names a missing file
    try:
        with zipfile.ZipFile(path) as archive:
            valid = "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        valid = False
    if not valid:
        raise InputError(f"{path}: not a valid .keras model (damaged, cut off, or another kind of file)")
