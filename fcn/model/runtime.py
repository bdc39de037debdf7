"""Where computation runs: tf.distribute strategies, and which worker is the chief."""

from __future__ import annotations

import json
import os

from fcn.core.errors import InputError

STRATEGIES = ("auto", "one", "mirrored", "multiworker")


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
