"""float32 against mixed_bfloat16 for the bare FCN, back to back in one process.

    python bench/precision_speed.py [--model fcn8s] [--image-size 256] [--batch-size 8] [--rounds 2] [--steps 2]
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python bench/precision_speed.py     # a CPU with AVX512-BF16 but no AMX

Builds the model (random weights) once per precision and compiles it as training does (Adam,
segmentation loss), then in each round, for each precision in turn (the order alternating), times
``steps`` ``train_on_batch`` and ``steps`` ``predict_on_batch`` calls on the same in-memory batch after
one untimed call of each. Prints images/s (median over all timed calls) and the median per-round
ratio of mixed_bfloat16 to float32, with the load average. ``bench/throughput.py`` measures each
precision in its own process with FLOP counts and peaks; this one keeps both in one process so that
a busy machine slows them alike, and runs under ``ONEDNN_MAX_CPU_ISA`` (``throughput.py``'s float16
matmul peak crashes TensorFlow 2.21 when oneDNN is capped at ``AVX512_CORE_BF16``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PRECISIONS = ("float32", "mixed_bfloat16")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fcn8s")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--json", metavar="FILE")
    return parser


def measure_rounds(models: dict, images, labels, rounds: int, steps: int, batch_size: int) -> tuple[dict, dict, list]:
    """Images/s of every timed call, per (precision, phase); the per-round bf16/fp32 ratios; the load averages."""

    def rate(call) -> float:
        start = time.perf_counter()
        call()
        return batch_size / (time.perf_counter() - start)

    rates = {(p, phase): [] for p in PRECISIONS for phase in ("train", "predict")}
    ratios = {"train": [], "predict": []}
    loads = [os.getloadavg()[0]]
    for r in range(rounds):
        order = PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]
        this_round = {}
        for precision in order:
            model = models[precision]
            for phase, call in (
                ("train", lambda model=model: model.train_on_batch(images, labels)),
                ("predict", lambda model=model: model.predict_on_batch(images)),
            ):
                measured = [rate(call) for _ in range(steps)]
                rates[(precision, phase)] += measured
                this_round[(precision, phase)] = statistics.median(measured)
        for phase in ratios:
            ratios[phase].append(this_round[("mixed_bfloat16", phase)] / this_round[("float32", phase)])
        loads.append(os.getloadavg()[0])
        print(
            f"  round {r + 1}: "
            + ", ".join(f"{p} {ph} {v:.3f}" for (p, ph), v in this_round.items())
            + f" img/s (load {loads[-1]:.2f})",
            flush=True,
        )
    return rates, ratios, loads


def print_table(rates: dict, ratios: dict, loads: list, isa: str) -> None:
    print(
        f"\n| precision | train img/s | predict img/s |  (load average {min(loads):.2f}-{max(loads):.2f}, ONEDNN_MAX_CPU_ISA {isa})"
    )
    print("|---|---:|---:|")
    for precision in PRECISIONS:
        print(
            f"| {precision} | {statistics.median(rates[(precision, 'train')]):.3f} | {statistics.median(rates[(precision, 'predict')]):.3f} |"
        )
    print(
        f"| bf16 / fp32 (median of per-round ratios) | {statistics.median(ratios['train']):.2f}x | {statistics.median(ratios['predict']):.2f}x |"
    )


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from fcn.model.builders import build_model
    from fcn.model.losses import segmentation_loss
    from fcn.model.precision import NATIVE_BF16_CPU_FLAGS, choose_precision, cpu_flags

    start = time.perf_counter()
    auto = choose_precision("auto")  # the probe runs (and is cached) here on a CPU with bfloat16 instructions
    auto_seconds = time.perf_counter() - start
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (args.batch_size, args.image_size, args.image_size, 3)).astype("float32"))
    labels = tf.constant(rng.integers(0, 7, (args.batch_size, args.image_size, args.image_size)).astype("int32"))
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "(not capped)")
    print(
        f"{args.model}, batch {args.batch_size} at {args.image_size}px; ONEDNN_MAX_CPU_ISA {isa}; "
        f"bf16 flags {sorted(cpu_flags() & set(NATIVE_BF16_CPU_FLAGS))}; auto = {auto.policy} ({auto.reason})",
        flush=True,
    )

    models = {}
    for precision in PRECISIONS:
        model = build_model(args.model, input_shape=(None, None, 3), weights=None, dtype_policy=precision)
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=segmentation_loss())
        model.train_on_batch(images, labels)  # tracing
        model.predict_on_batch(images)
        models[precision] = model

    rates, ratios, loads = measure_rounds(models, images, labels, args.rounds, args.steps, args.batch_size)
    print_table(rates, ratios, loads, isa)
    if args.json:
        figures = {
            "model": args.model,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "onednn_max_cpu_isa": isa,
            "auto": {"policy": auto.policy, "reason": auto.reason, "seconds": auto_seconds},
            "rates": {f"{p}/{ph}": v for (p, ph), v in rates.items()},
            "ratios": ratios,
            "load_average": loads,
        }
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
