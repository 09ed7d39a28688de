"""Where a run computes: the accelerator, the number format, XLA, tf.distribute (appendix "Scaling up").

Each setting's "auto" picks what measured fastest on the hardware found.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multi-worker", "tpu")


def accelerator() -> str | None:
    """"TPU" or "GPU" when this process has one, else None: a CPU (appendix "Scaling up")."""
    for kind in ("TPU", "GPU"):
        if tf.config.list_physical_devices(kind):
            return kind
    return None


def resolve_jit_compile(setting: bool | str) -> bool:
    """XLA on or off; "auto" is on with a GPU or TPU and off on a CPU, where it measured slower (appendix "Scaling up")."""
    return accelerator() is not None if setting == "auto" else bool(setting)


def resolve_precision(setting: str) -> str:
    """The dtype policy for `setting`; "auto": mixed float16 on GPUs, bfloat16 on TPUs, else float32 (appendix "Scaling up")."""
    if setting == "auto":
        return {"GPU": "mixed_float16", "TPU": "mixed_bfloat16"}.get(accelerator(), "float32")
    if setting not in PRECISIONS:
        raise ValueError(f"unknown precision {setting!r}; choose one of auto, {', '.join(PRECISIONS)}")
    return setting


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """The tf.distribute strategy called `name`, one of STRATEGIES (appendix "Scaling up")."""
    if name == "default":  # this process's one device, or the strategy whose scope we are in
        return tf.distribute.get_strategy()
    if name == "mirrored":  # every local GPU, or the CPU
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":  # one process per machine, each told the cluster by TF_CONFIG
        if not os.environ.get("TF_CONFIG"):
            example = {"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}
            raise ValueError(
                "the multi-worker strategy reads its cluster from the TF_CONFIG environment variable, "
                "which is not set. Set it in every worker's environment: the same cluster, each worker "
                f"with its own index (0 is the chief), e.g. TF_CONFIG='{json.dumps(example)}'"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":  # Colab's TPU
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run folder: yes, unless it is a multi-worker run's non-chief (appendix "Scaling up")."""
    resolver = strategy.cluster_resolver if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else None
    if resolver is None or not resolver.task_type:  # a single process
        return True
    chief_type = "chief" if "chief" in resolver.cluster_spec().as_dict() else "worker"
    return resolver.task_type == chief_type and resolver.task_id == 0


def fit_multi_worker(model, strategy, dataset, steps_per_epoch, epochs, callbacks) -> None:
    """`model.fit` for MultiWorkerMirroredStrategy, where Keras 3's fit fails (keras-team/keras#20585; appendix "Scaling up")."""
    options = tf.data.Options()  # from a list of files: each worker reads all and keeps its share of every batch
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    iterator = iter(strategy.experimental_distribute_dataset(dataset.with_options(options)))

    @tf.function
    def train_step(iterator):
        logs = strategy.run(model.train_step, args=(next(iterator),))
        return {name: strategy.reduce("MEAN", value, axis=None) for name, value in logs.items()}  # over all replicas

    callbacks = keras.callbacks.CallbackList(callbacks, model=model, epochs=epochs, steps=steps_per_epoch)
    model.stop_training = False
    callbacks.on_train_begin()
    for epoch in range(epochs):
        model.reset_metrics()  # as fit does: each epoch's logs are the means over its steps
        callbacks.on_epoch_begin(epoch)
        for batch in range(steps_per_epoch):
            logs = train_step(iterator)
            callbacks.on_train_batch_end(batch, logs)
            if model.stop_training:  # as fit does: StopAtStep ends the run inside an interval
                break
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
