"""What the study report holds about one training run, and its strict JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fcn.study.scoring import Run, Scores
from fcn.training.config import config_to_json


def model_title(name: str) -> str:
    """``fcn8s`` -> ``FCN8s`` (the paper's spelling)."""
    return name.upper()[:-1] + name[-1] if name.startswith("fcn") else name


@dataclass
class RunReport:
    """Everything the report shows about one run (see :meth:`to_dict` for the JSON form)."""

    run: Run
    architecture: dict
    scores: Scores
    best_state: dict
    curve: str
    montages: dict[str, str | None]
    montage_epochs: dict[str, list[int]]

    @property
    def best_epoch(self) -> int | None:
        if "epoch" in self.best_state:
            return int(self.best_state["epoch"])
        finite = [(r["val_miou"], r["epoch"]) for r in self.run.history if math.isfinite(r["val_miou"])]
        return max(finite)[1] if finite else None

    @property
    def training_seconds(self) -> float:
        return float(sum(r.get("seconds", 0.0) for r in self.run.history if math.isfinite(r.get("seconds", math.nan))))

    def to_dict(self) -> dict:
        return _json_ready(
            {
                "name": self.run.name,
                "path": str(self.run.path.resolve()),
                "model": self.run.model_name,
                "args": config_to_json(self.run.config),
                "resolved": self.run.resolved,
                "architecture": {k: v for k, v in self.architecture.items() if k != "markdown"},
                "epochs_trained": len(self.run.history),
                "best_epoch": self.best_epoch,
                "recorded_best_val_miou": self.best_state.get("val_miou"),
                "training_seconds": round(self.training_seconds, 2),
                "history": self.run.history,
                "validation": {"val_dir": str(self.run.val_dir), **self.scores.to_dict()},
                "files": {"curve": self.curve, "montages": self.montages},
            }
        )


def _json_ready(value):
    """nan/inf become None, recursively, so the JSON is strict."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value
