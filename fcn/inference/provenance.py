"""Which model and settings wrote an output, and the outputs a resumed run (``--resume``) skips.

Every output of ``fcn-predict`` carries the project's mark (:func:`fcn.core.files.project_signature`);
a run adds its identity to it: ``fcn 0.2.0 model 3f2a... settings 9c1d...``, a digest of the model's
bytes and one of the settings that change a mask (scale, tile, overlap, TTA, bands, value range,
precision). A resumed run skips an input whose outputs all exist, are whole and carry that identity.
No TensorFlow here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from fcn.core.files import is_signature
from fcn.core.images import looks_whole
from fcn.core.mark import image_mark
from fcn.inference.geo_writer import verify_tiles

MODEL_DIGEST_CHARS = 16
SETTINGS_DIGEST_CHARS = 8
# Prediction settings that change a mask's pixels (batch size and thread counts do not, by design).
MASK_SETTINGS = ("scale", "input_gsd", "tile", "overlap", "tta", "bands", "value_range", "precision")


def _model_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a model file, or of a SavedModel directory's files and their names; first 16 hex digits."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()[:MODEL_DIGEST_CHARS]


def run_identity(model_path: str | os.PathLike, config) -> str:
    """``model <digest> settings <digest>``: what an output's mark records about the run that wrote it.

    Args:
        model_path: the model file (or SavedModel directory) the run loads.
        config: any object with the :data:`MASK_SETTINGS` attributes (a ``PredictConfig``).
    """
    settings = {name: getattr(config, name, None) for name in MASK_SETTINGS}
    text = json.dumps(settings, sort_keys=True, default=str)
    settings_digest = hashlib.sha256(text.encode()).hexdigest()[:SETTINGS_DIGEST_CHARS]
    return f"model {_model_digest(model_path)} settings {settings_digest}"


def _is_whole(path: Path) -> bool:
    """Whether an output file is complete: PNG/JPEG end markers, or every GeoTIFF tile inside the file."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return looks_whole(path)

    try:
        import rasterio

        with rasterio.open(path) as dataset:
            height, width = dataset.height, dataset.width
        verify_tiles(path, height, width)
    except Exception:
        return False
    return True


def written_by(path: Path, identity: str) -> bool:
    """Whether ``path`` is a whole output that fcn wrote with the run identity ``identity``."""
    if not path.is_file():
        return False
    value = image_mark(path)
    return bool(value) and is_signature(value) and value.endswith(f" {identity}") and _is_whole(path)


def split_finished(jobs: Sequence, identity: str) -> tuple[list, list]:
    """(jobs still to do, jobs whose mask and overlay were all written whole by a run of ``identity``)."""
    todo, done = [], []
    for job in jobs:
        outputs = [p for p in (job.mask, job.overlay) if p is not None]
        (done if all(written_by(p, identity) for p in outputs) else todo).append(job)
    return todo, done
