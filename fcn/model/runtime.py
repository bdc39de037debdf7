"""Where and how computation runs: numeric precision and tf.distribute strategies."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "one", "mirrored", "multiworker")


# CPU feature flags (as /proc/cpuinfo spells them) for bfloat16 arithmetic in hardware.
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# The ones where mixed_bfloat16 beats float32 with TensorFlow 2.21's oneDNN: AMX only. With AVX512-BF16
# alone (oneDNN capped at avx512_core_bf16 on a Sapphire Rapids, i.e. what Cooper Lake and Zen 4 run),
# FCN8s trained at 0.7-0.9x and predicted at 0.6-0.9x the float32 speed (docs/BENCHMARKS.md).
AUTO_BF16_CPU_FLAGS = ("amx_bf16",)


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags, as listed on the ``flags`` line of ``/proc/cpuinfo``.

    Args:
        cpuinfo: the text of a ``/proc/cpuinfo`` file (None: read this machine's; on systems without
            it, e.g. macOS or Windows, there are no flags).

    Returns:
        The flags of the first processor listed (all cores of a machine share them), lower case.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
                cpuinfo = file.read()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "flags":
            return frozenset(value.lower().split())
    return frozenset()


def has_native_bf16(flags: Iterable[str] | None = None, *, required: Iterable[str] = NATIVE_BF16_CPU_FLAGS) -> bool:
    """True when the CPU computes bfloat16 in hardware (any of ``required`` among its flags).

    Args:
        flags: CPU feature flags (None: :func:`cpu_flags` of this machine).
        required: the flags that count (default: AVX512-BF16 or AMX-BF16).
    """
    flags = cpu_flags() if flags is None else {flag.lower() for flag in flags}
    return any(flag in flags for flag in required)


def auto_precision(gpu_capabilities: Sequence[tuple[int, int]], flags: Iterable[str]) -> str:
    """The policy ``auto`` stands for, given the visible GPUs and the CPU's feature flags.

    Args:
        gpu_capabilities: CUDA compute capability of each visible GPU (empty: CPU only).
        flags: the CPU's feature flags.

    Returns:
        ``mixed_float16`` when some GPU has tensor cores (compute capability >= 7.0); otherwise
        ``mixed_bfloat16`` on a CPU with AMX-BF16 (:data:`AUTO_BF16_CPU_FLAGS`), else ``float32``.
    """
    if any(tuple(capability) >= (7, 0) for capability in gpu_capabilities):
        return "mixed_float16"
    return "mixed_bfloat16" if has_native_bf16(flags, required=AUTO_BF16_CPU_FLAGS) else "float32"


def resolve_precision(precision: str, *, flags: Iterable[str] | None = None) -> str:
    """Turn ``auto`` into a concrete Keras dtype policy name.

    ``auto`` is ``mixed_float16`` on a GPU with compute capability >= 7.0 (tensor cores). Without
    one it follows the CPU: ``mixed_bfloat16`` where the CPU has AMX-BF16 (``amx_bf16`` in its
    flags: Sapphire Rapids and later Xeons), where FCN8s trains and predicts about 1.9x faster than
    in float32 on an idle machine; ``float32`` elsewhere: with AVX512-BF16 alone bfloat16 is slower
    than float32 (0.6-0.9x), and AVX2-only CPUs train about 10x slower in it (docs/BENCHMARKS.md). Any
    other value is returned as given, so an explicit ``float32`` always overrides the rule.

    Args:
        precision: one of :data:`PRECISIONS`.
        flags: CPU feature flags to decide with (None: this machine's; tests pass fake lists).

    Raises:
        ValueError: unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    import tensorflow as tf

    capabilities = [
        tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        for gpu in tf.config.list_physical_devices("GPU")
    ]
    return auto_precision(capabilities, cpu_flags() if flags is None else flags)


def make_strategy(name: str):
    """Build the tf.distribute strategy for ``--strategy``.

    ``auto`` mirrors over all local GPUs when there are several, else runs on one device;
    ``multiworker`` reads the cluster from ``TF_CONFIG``.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    import tensorflow as tf

    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            from fcn.core.errors import InputError

            raise InputError("--strategy multiworker needs the TF_CONFIG environment variable (cluster and task)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        # Without GPUs, mirror over the logical CPU devices (one unless configured; the tests use two).
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()  # the default: one device, no distribution


def is_chief() -> bool:
    """True unless TF_CONFIG names this process a non-chief worker (only the chief writes the run)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    cluster = config.get("cluster", {})
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    # Without an explicit chief, worker 0 plays that role (TensorFlow's convention).
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in cluster


def is_multiworker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._num_workers > 1


def patch_keras_for_multiworker(model, example_batch) -> None:
    """Work around Keras 3's broken ``fit`` under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Keras 3.x (checked with 3.15) fails twice with several workers: its symbolic build reduces the
    first distributed batch with a collective op that cannot take it, and it averages the scalar
    epoch logs over an axis 0 they do not have. Here the model is built from a local example batch,
    and the logs, which Keras's metrics have already synchronised across workers, are read from the
    first replica. Only applied for ``--strategy multiworker``.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if not getattr(tf_trainer.reduce_per_replica, "_fcn_multiworker_patch", False):
        original_reduce = tf_trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if reduction == "auto" and tf_trainer._collective_all_reduce_multi_worker(strategy):
                reduction = "first"
            return original_reduce(values, strategy, reduction)

        reduce_per_replica._fcn_multiworker_patch = True
        tf_trainer.reduce_per_replica = reduce_per_replica

    build = model._maybe_symbolic_build
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: build(data_batch=example_batch)
