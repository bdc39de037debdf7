"""Which numeric precision a run uses: ``--precision auto`` decides by measuring, once per machine.

``auto`` means, in order:

1. a GPU with tensor cores (compute capability >= 7.0): ``mixed_float16``;
2. a CPU without bfloat16 instructions (no ``avx512_bf16``, ``amx_bf16`` or ARM ``bf16`` flag):
   ``float32``, without measuring (bfloat16 is emulated there, about 10x slower);
3. ``FCN_PRECISION_PROBE=0`` in the environment: the flag rule (``mixed_bfloat16`` with AMX-BF16);
4. otherwise the answer cached for this machine (CPU model, core count, TensorFlow version) in
   ``$XDG_CACHE_HOME/fcn/precision.json`` (``~/.cache/fcn/`` by default), or, the first time, a
   short probe: a few FCN-like 3x3 convolutions, forward and backward, timed in float32 and in
   mixed_bfloat16 (:func:`_probe_bf16_speedup`, about 1-3 s); ``mixed_bfloat16`` when it is at least
   :data:`BF16_MIN_SPEEDUP` times faster. The same flags mean 0.8x on one CPU and 1.9x on another
   (docs/BENCHMARKS.md), so flags alone only decide where they are certain.

:func:`choose_precision` returns the policy with a one-line reason; :func:`resolve_precision`
returns the policy alone.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcn.core.files import write_text_atomic
from fcn.core.workers import available_cores

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
# CPU feature flags (as /proc/cpuinfo spells them: x86 "flags", ARM "Features") for bfloat16 in hardware.
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
# The flag rule used when the probe is switched off: AMX only (AVX512-BF16 alone measured 0.6-1.9x).
AUTO_BF16_CPU_FLAGS = ("amx_bf16",)
PROBE_ENV = "FCN_PRECISION_PROBE"  # "0": never measure, use the flag rule
BF16_MIN_SPEEDUP = 1.15  # bfloat16 costs some accuracy: worth it only when clearly faster
CACHE_NAME = "precision.json"


@dataclass(frozen=True)
class PrecisionChoice:
    """A Keras dtype policy name and why it was chosen (one line, for logs and config.json)."""

    policy: str
    reason: str


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags (``flags`` on x86, ``Features`` on ARM) from ``/proc/cpuinfo``, lower case.

    Args:
        cpuinfo: the text of a ``/proc/cpuinfo`` file (None: read this machine's; without one, e.g.
            on macOS or Windows, there are no flags).
    """
    if cpuinfo is None:
        cpuinfo = _read_cpuinfo()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.lower().split())
    return frozenset()


def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            return file.read()
    except OSError:
        return ""


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``model name`` in ``/proc/cpuinfo``, else what the platform says)."""
    for line in (_read_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _has_native_bf16(flags: Iterable[str] | None = None, *, required: Iterable[str] = NATIVE_BF16_CPU_FLAGS) -> bool:
    """True when any of ``required`` is among the CPU's flags (None: this machine's)."""
    flags = cpu_flags() if flags is None else {flag.lower() for flag in flags}
    return any(flag in flags for flag in required)


def _auto_precision(gpu_capabilities: Sequence[tuple[int, int]], flags: Iterable[str]) -> str:
    """The flag rule: ``mixed_float16`` on a tensor-core GPU, ``mixed_bfloat16`` with AMX-BF16, else float32."""
    if any(tuple(capability) >= (7, 0) for capability in gpu_capabilities):
        return "mixed_float16"
    return "mixed_bfloat16" if _has_native_bf16(flags, required=AUTO_BF16_CPU_FLAGS) else "float32"


def _cache_file() -> Path:
    """Where measured answers are kept: ``$XDG_CACHE_HOME/fcn/precision.json`` (``~/.cache/fcn/``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fcn" / CACHE_NAME


def _machine_key() -> str:
    """What the measured answer depends on: CPU model, usable cores, TensorFlow version."""
    import tensorflow as tf

    return f"{cpu_model()} | {available_cores()} cores | tensorflow {tf.__version__}"


def _gpu_capabilities() -> list[tuple[int, int]]:
    import tensorflow as tf

    return [
        tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))
        for gpu in tf.config.list_physical_devices("GPU")
    ]


def choose_precision(
    precision: str = "auto",
    *,
    flags: Iterable[str] | None = None,
    gpu_capabilities: Sequence[tuple[int, int]] | None = None,
    probe: Callable[[], float] | None = None,
    cache: str | os.PathLike | None = None,
) -> PrecisionChoice:
    """The policy ``precision`` stands for on this machine, and why (see the module docstring).

    Args:
        precision: one of :data:`PRECISIONS`; anything but ``auto`` is returned as given.
        flags: CPU feature flags (None: this machine's; tests pass fakes).
        gpu_capabilities: compute capability of each visible GPU (None: ask TensorFlow).
        probe: measures the bfloat16 / float32 speed ratio (None: :func:`_probe_bf16_speedup`).
        cache: the cache file (None: :func:`_cache_file`).

    Raises:
        ValueError: unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return PrecisionChoice(precision, f"--precision {precision}")
    capabilities = _gpu_capabilities() if gpu_capabilities is None else gpu_capabilities
    tensor_cores = [c for c in capabilities if tuple(c) >= (7, 0)]
    if tensor_cores:
        major, minor = tensor_cores[0]
        return PrecisionChoice("mixed_float16", f"auto: GPU with tensor cores (compute capability {major}.{minor})")
    flags = cpu_flags() if flags is None else frozenset(flag.lower() for flag in flags)
    if not _has_native_bf16(flags):
        return PrecisionChoice("float32", "auto: CPU without bfloat16 instructions (float32, not measured)")
    if os.environ.get(PROBE_ENV, "1").strip() == "0":
        policy = _auto_precision([], flags)
        return PrecisionChoice(policy, f"auto: {PROBE_ENV}=0, flag rule (AMX-BF16: mixed_bfloat16) gives {policy}")
    return _measured_choice(probe or _probe_bf16_speedup, Path(cache) if cache is not None else _cache_file())


def _measured_choice(probe: Callable[[], float], cache: Path) -> PrecisionChoice:
    """The cached answer for this machine, or a new measurement written to the cache."""
    key = _machine_key()
    entries = _read_cache(cache)
    entry = entries.get(key)
    if not (isinstance(entry, dict) and entry.get("policy") in PRECISIONS[1:] and "speedup" in entry):
        start = time.perf_counter()
        speedup = float(probe())
        policy = "mixed_bfloat16" if speedup >= BF16_MIN_SPEEDUP else "float32"
        entry = {"policy": policy, "speedup": round(speedup, 3), "probe_seconds": round(time.perf_counter() - start, 2)}
        entries[key] = entry
        _write_cache(cache, entries)
        source = f"measured now, {entry['probe_seconds']} s; cached in {cache}"
    else:
        source = f"cached in {cache}"
    return PrecisionChoice(entry["policy"], f"auto: bfloat16 ran {entry['speedup']:.2f}x float32 here ({source})")


def _read_cache(cache: Path) -> dict:
    try:
        entries = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: measure again and rewrite
    return entries if isinstance(entries, dict) else {}


def _write_cache(cache: Path, entries: dict) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cache, json.dumps(entries, indent=2, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only home only costs a new probe next time


def resolve_precision(precision: str, *, flags: Iterable[str] | None = None) -> str:
    """The Keras dtype policy name ``precision`` stands for (:func:`choose_precision` without the reason).

    Raises:
        ValueError: unknown precision.
    """
    return choose_precision(precision, flags=flags).policy


def _probe_bf16_speedup(*, size: int = 48, channels: int = 64, layers: int = 3, budget_s: float = 0.5) -> float:
    """How many times faster FCN-like convolutions train in mixed_bfloat16 than in float32 here.

    A stack of ``layers`` 3x3 convolutions (``channels`` wide, ReLU) on one ``size``² image, forward
    and backward (the gradients of its weights, as a training step needs), in each precision: one
    untimed call (tracing, oneDNN kernel selection), then calls for about ``budget_s`` (at least
    two), and the fastest of each is compared. bfloat16 stops after one timed call when that call is
    already twice the float32 time (emulated bfloat16: no need to measure it precisely). About 1-3 s.
    """
    import tensorflow as tf

    image = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32"))
    fastest: dict[str, float] = {}
    for policy in ("float32", "mixed_bfloat16"):
        step = _probe_step(policy, channels, layers)
        step(image)
        times: list[float] = []
        while len(times) < 2 or sum(times) < budget_s:
            start = time.perf_counter()
            step(image)
            times.append(time.perf_counter() - start)
            if policy != "float32" and times[0] > 2 * fastest["float32"]:
                break
        fastest[policy] = min(times)
    return fastest["float32"] / fastest["mixed_bfloat16"]


def _probe_step(policy: str, channels: int, layers: int):
    """A tf.function: forward and backward of a small conv stack in ``policy``."""
    import keras
    import tensorflow as tf

    stack = [keras.layers.Conv2D(channels, 3, padding="same", activation="relu", dtype=policy) for _ in range(layers)]
    stack.append(keras.layers.Conv2D(7, 1, dtype=policy))

    @tf.function
    def step(image):
        with tf.GradientTape() as tape:
            x = image
            for layer in stack:
                x = layer(x)
            loss = tf.reduce_mean(tf.cast(x, tf.float32))
        weights = [w.value for layer in stack for w in layer.trainable_weights]
        return tape.gradient(loss, weights)

    channels_in = 3
    for layer in stack:  # weights made outside the tf.function
        layer.build((None, None, None, channels_in))
        channels_in = layer.filters
    return step
