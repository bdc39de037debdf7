"""Training on a large folder: time to the first step, input pipeline per epoch with and without ``--cache``.

    python bench/training_startup.py --train DATA_DIR/landcover-train --val DATA_DIR/landcover-dev \\
        [--image-size 256] [--crop 128] [--batch-size 8] [--epochs 2] [--json FILE]

Measures, in one process and in the order ``fcn-train`` does them (the trainer's own functions):

1. the up-front checks: finding and fully decoding the training pairs, the damaged-JPEG check, decoding
   the validation tiles (:func:`fcn.training.inputs.load_data`), and the median-frequency class weights;
2. building and compiling the model (ImageNet weights, ``--precision auto``), the first training step;
3. the input pipeline alone (:func:`fcn.data.pipeline.make_dataset`, as the trainer calls it) over whole
   epochs: tiles/s without the cache, and with it (the first epoch fills it, later ones read it), with the
   process's resident memory before and after (the cache's cost);
4. the bare training step's tiles/s at the same settings (``train_on_batch`` on one in-memory batch),
   so that the pipeline's margin over what training consumes is their ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fcn.cli.common import run_cli  # noqa: E402
from fcn.training.config import make_config  # noqa: E402


def resident_mib() -> float:
    """This process's resident memory now (Linux ``/proc/self/status``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(label: str, results: dict, action):
    start = time.perf_counter()
    value = action()
    results[label] = round(time.perf_counter() - start, 2)
    print(f"{label:<40} {results[label]:8.2f} s", flush=True)
    return value


def epoch_rates(pairs, config, *, cache: bool, epochs: int) -> list[float]:
    """Tiles/s of each whole pass over the training pipeline (no model)."""
    from fcn.training.trainer import _training_dataset

    dataset = _training_dataset(config.replace(cache=cache), pairs, [1.0] * 7)
    rates = []
    for _ in range(epochs):
        start, tiles = time.perf_counter(), 0
        for images, *_ in dataset:
            tiles += int(images.shape[0])
        rates.append(tiles / (time.perf_counter() - start))
    return rates


def startup(config, results: dict):
    """Steps 1-2: the up-front checks, the model, the first step. Returns (pairs, model, first batch)."""
    from fcn.training.inputs import class_weights_for, load_data

    pairs, _val_tiles, _tracked = timed("up-front checks (load_data)", results, lambda: load_data(config))
    weights = timed("class weights (median frequency)", results, lambda: class_weights_for(config, pairs))
    from fcn.model.precision import choose_precision
    from fcn.training.build import build_training_model, steps_per_epoch
    from fcn.training.trainer import _training_dataset

    policy = choose_precision(config.precision).policy
    results["precision"] = policy
    model = timed(
        "build + compile the model",
        results,
        lambda: build_training_model(config, policy, steps_per_epoch(len(pairs), config.batch_size)),
    )
    dataset = _training_dataset(config, pairs, weights)
    batch = timed("first batch from the pipeline", results, lambda: next(iter(dataset)))
    timed("first training step (traces it)", results, lambda: model.train_on_batch(*batch))
    return pairs, model, batch


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    given = dict(train_dir=args.train, val_dir=args.val, image_size=args.image_size, crop=args.crop or None)
    config = make_config({**given, "batch_size": args.batch_size, "cache": False})
    results: dict = {"tiles": None, "settings": {k: str(v) for k, v in given.items()}}
    start = time.perf_counter()
    pairs, model, batch = startup(config, results)
    results["command to first step (in process, after imports)"] = round(time.perf_counter() - start, 2)
    results["tiles"] = len(pairs)
    steps, start = 5, time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*batch)
    results["training tiles/s (bare step)"] = round(steps * args.batch_size / (time.perf_counter() - start), 2)
    del model
    results["pipeline tiles/s without cache"] = [round(r, 1) for r in epoch_rates(pairs, config, cache=False, epochs=1)]
    before = resident_mib()
    rates = epoch_rates(pairs, config, cache=True, epochs=args.epochs)
    results["pipeline tiles/s with cache (filling, then cached)"] = [round(r, 1) for r in rates]
    results["cache resident memory MiB"] = round(resident_mib() - before, 1)
    print(json.dumps(results, indent=2))
    if args.json:
        from fcn.core.files import write_text_atomic

        write_text_atomic(args.json, json.dumps(results, indent=2) + "\n")
    return 0


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/training_startup.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--crop", type=int, default=128, help="0: none")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2, help="passes with the cache (default 2)")
    parser.add_argument("--json", type=Path)
    return parser


if __name__ == "__main__":
    sys.exit(run_cli(main))
