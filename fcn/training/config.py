"""What a training run is asked to do: :class:`TrainConfig`, the recipes, and its ``config.json`` form.

A recipe is a named set of field values. :func:`make_config` lays the demo's defaults, then the
recipe, then the values the user gave (these win) over the dataclass's own defaults, once.

``config.json`` stores the fields under ``"args"``; :func:`_config_from_json` reads them back, from
either format of the file (:class:`fcn.model.runfiles.RunFiles`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path

from fcn.core.errors import InputError
from fcn.data.pairs import TRACKED_VAL_IDS
from fcn.data.pipeline import COURSE_TILE_GSD
from fcn.model.runfiles import RunFiles

# The default recipe, chosen by measurement (docs/RESULTS.md): warm-up then cosine decay of a lower
# peak learning rate over the run's total steps, and class balancing by the square root of the
# median-frequency weights (without balancing Rangeland is never learned; the full weights make the
# rare classes over-predicted on the real split), Unknown left out of the loss.
DEFAULT_RECIPE = {
    "lr": 5e-5,
    "lr_schedule": "cosine",
    "warmup": 0.05,
    "encoder_lr_mult": 1.0,
    "ema": 0.0,
    "class_weights": "sqrt-median",
    "ignore_unknown": True,
    "color_aug": 0.0,
    "scale_aug": None,
}
# The recipe of the 2018 course study: constant Adam 1e-4, nothing else.
COURSE_2018_RECIPE = {
    **DEFAULT_RECIPE,
    "lr": 1e-4,
    "lr_schedule": "constant",
    "warmup": 0.0,
    "class_weights": "none",
    "ignore_unknown": False,
}
RECIPES = {"default": DEFAULT_RECIPE, "course-2018": COURSE_2018_RECIPE}
RECIPE_ALIASES = {"seed": "course-2018"}  # the old name, easily mistaken for --seed

# --demo: CPU-sized defaults, and synthetic tiles (which have no ground sample distance).
DEMO_DEFAULTS = {"epochs": 6, "batch_size": 8, "model": "fcn8s", "gsd": None}
DEMO_DATA = {"n_train": 48, "n_val": 12, "size": 128}

# Fields that belong to one invocation, not to the run: never read back from config.json.
INVOCATION_FIELDS = ("resume", "verbose")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run is asked to do (the flags of ``fcn-train``, typed and checked).

    Paths are as given (relative to the working folder where training started). ``out`` is the run
    directory (None: ``runs/<model>-<time>``). ``track`` lists the validation ids whose masks are
    saved every epoch (the default ids fall back to the first validation ids when missing).
    ``demo`` writes synthetic tiles into ``out/data`` and trains on them. ``resume`` continues the
    run in ``out`` from its ``last.keras``; ``verbose`` is Keras's progress (0, 1 bar, 2 lines).
    """

    model: str = "fcn8s"
    train_dir: Path | None = None
    val_dir: Path | None = None
    out: Path | None = None
    epochs: int = 40
    batch_size: int = 8
    weights: str = "imagenet"
    image_size: int | None = None
    crop: int | None = None
    gsd: float | None = COURSE_TILE_GSD
    track: tuple[str, ...] = TRACKED_VAL_IDS
    recipe: str = "default"
    lr: float = DEFAULT_RECIPE["lr"]
    lr_schedule: str = DEFAULT_RECIPE["lr_schedule"]
    warmup: float = DEFAULT_RECIPE["warmup"]
    encoder_lr_mult: float = DEFAULT_RECIPE["encoder_lr_mult"]
    ema: float = DEFAULT_RECIPE["ema"]
    class_weights: str = DEFAULT_RECIPE["class_weights"]
    ignore_unknown: bool = DEFAULT_RECIPE["ignore_unknown"]
    scale_aug: tuple[float, float] | None = DEFAULT_RECIPE["scale_aug"]
    color_aug: float = DEFAULT_RECIPE["color_aug"]
    fc1_kernel: int = 2
    dropout: float = 0.0
    skip_scaling: bool = False
    init_from: Path | None = None
    width: float = 1.0
    cache: bool = False
    precision: str = "auto"
    jit_compile: str = "auto"
    strategy: str = "auto"
    seed: int = 0
    demo: bool = False
    resume: bool = False
    verbose: int = 1

    def __post_init__(self):
        for name in ("train_dir", "val_dir", "out", "init_from"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if isinstance(self.track, str):
            object.__setattr__(self, "track", split_ids(self.track))
        else:
            object.__setattr__(self, "track", tuple(self.track))
        if self.scale_aug is not None:
            object.__setattr__(self, "scale_aug", tuple(float(v) for v in self.scale_aug))

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def check(self) -> TrainConfig:
        """Cross-check the fields (each one alone is checked by the command's parser).

        Raises:
            InputError: a combination that cannot work, named by its flags.
        """
        if self.crop and self.image_size and self.crop > self.image_size:
            raise InputError(f"--crop {self.crop} is larger than --image-size {self.image_size}")
        if self.scale_aug and self.scale_aug[0] > self.scale_aug[1]:
            raise InputError(f"--scale-aug: LO {self.scale_aug[0]} is larger than HI {self.scale_aug[1]}")
        if self.init_from is not None and not self.resume and not Path(self.init_from).exists():
            raise InputError(f"{self.init_from}: --init-from file or run directory not found")
        if self.width != 1 and self.weights.lower() == "imagenet":
            raise InputError(f"--width {self.width:g} needs --weights none (ImageNet weights fit width 1 only)")
        return self


def split_ids(text: str) -> tuple[str, ...]:
    """``"0008, 0097"`` -> ``("0008", "0097")``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _canonical_recipe(name: str) -> str:
    """The recipe's name, old spellings (``seed``) mapped to the current ones."""
    name = RECIPE_ALIASES.get(name, name)
    if name not in RECIPES:
        raise InputError(f"unknown recipe {name!r}; valid: {', '.join(RECIPES)}")
    return name


def make_config(given: dict, *, recipe: str = "default", demo: bool = False) -> TrainConfig:
    """The config of a new run: the dataclass defaults, then the demo's, then the recipe's, then ``given``.

    Args:
        given: field values the user set explicitly (they win over every default).
        recipe: a name of :data:`RECIPES` (or an alias).
        demo: lay :data:`DEMO_DEFAULTS` over the defaults.
    """
    recipe = _canonical_recipe(recipe)
    values = {**(DEMO_DEFAULTS if demo else {}), **RECIPES[recipe], **given, "recipe": recipe, "demo": demo}
    return TrainConfig(**values)


# ---------------------------------------------------------------- config.json


def config_to_json(config: TrainConfig) -> dict:
    """The fields of a run (not those of one invocation) as JSON values."""
    data = {}
    for field in fields(config):
        if field.name in INVOCATION_FIELDS:
            continue
        value = getattr(config, field.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        data[field.name] = value
    return data


def _config_from_json(args: dict, run_dir: Path) -> TrainConfig:
    """A :class:`TrainConfig` from the ``"args"`` of a ``config.json`` of either format.

    Keys that are no field of the run (``summary``, ``resume``, ``verbose``...) are ignored, missing
    ones take the dataclass defaults; ``track`` may be one comma-separated string and ``recipe`` an
    alias. The run directory is ``run_dir`` (where the
    file was found), whatever ``out`` says; a demo's data is looked for there too when its recorded
    folders are gone (the run directory was moved).

    Raises:
        InputError: a value of the wrong type.
    """
    known = {f.name for f in fields(TrainConfig)} - set(INVOCATION_FIELDS)
    values = {key: value for key, value in args.items() if key in known}
    if "recipe" in values:
        values["recipe"] = RECIPE_ALIASES.get(values["recipe"], values["recipe"])
    values["out"] = run_dir
    try:
        config = TrainConfig(**values)
    except (TypeError, ValueError, AttributeError) as err:
        raise InputError(f"{RunFiles(run_dir).config_path}: cannot read the run's configuration ({err})") from None
    return _find_moved_demo_data(config, run_dir)


def read_train_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The :class:`TrainConfig` of the run in ``run_dir`` (its configuration read by :class:`RunFiles`).

    Raises:
        InputError: no readable run configuration there, or a value of the wrong type.
    """
    run_dir = Path(run_dir)
    return _config_from_json(RunFiles(run_dir).read_config()["args"], run_dir)


def _find_moved_demo_data(config: TrainConfig, run_dir: Path) -> TrainConfig:
    data = RunFiles(run_dir).demo_data_dir
    folders = (config.train_dir, config.val_dir)
    if all(folder is not None and folder.is_dir() for folder in folders):
        return config
    if (data / "train").is_dir() and (data / "val").is_dir():
        return config.replace(train_dir=data / "train", val_dir=data / "val")
    return config
