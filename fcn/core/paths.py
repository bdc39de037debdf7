"""Outputs against inputs: refuse an output that is an input, a file of the model read, or a folder
that overlaps the input folder. Paths are compared with links and ``..`` resolved. No TensorFlow here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from fcn.core.errors import InputError


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


def _is_within(inner: str | os.PathLike, outer: str | os.PathLike) -> bool:
    """Whether ``inner`` is ``outer`` or lies inside it (links resolved)."""
    inner, outer = _key(inner), _key(outer)
    return inner == outer or outer in inner.parents


def check_apart(input_dir: str | os.PathLike, output_dir: str | os.PathLike, names=("--input", "--output")) -> None:
    """Refuse an input folder inside the output folder, the reverse, or the same folder.

    Raises:
        InputError: one line naming both options.
    """
    inp, out = Path(input_dir), Path(output_dir)
    if _is_within(inp, out) or _is_within(out, inp):
        how = "is" if same_path(inp, out) else ("is inside" if _is_within(inp, out) else "contains")
        raise InputError(
            f"{inp}: {names[0]} folder {how} the {names[1]} folder {out}; the outputs would mix with "
            "the inputs: choose folders apart"
        )


def check_different_folders(a: str | os.PathLike, b: str | os.PathLike, names: Sequence[str]) -> None:
    """Refuse two options that name the same folder (e.g. ``-g`` and ``-p`` of mean_iou)."""
    if same_path(a, b):
        raise InputError(f"{a}: {names[0]} and {names[1]} are the same folder; they must differ")


def _model_files(model: str | os.PathLike | None) -> set[Path]:
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
    own = set().union(*(_model_files(m) for m in models)) | {_key(m) for m in models}
    for output in outputs:
        key = _key(output)
        if key in taken:
            raise InputError(f"{output}: output would overwrite an input file")
        if key in own:
            raise InputError(f"{output}: output would overwrite the model it reads")
