"""Where a run computes: the accelerator, the number format, XLA, tf.distribute.

Explained in the appendix "Scaling up". Each setting's "auto" picks what measured
fastest on the hardware found.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multi-worker", "tpu")


def set_thread_pools(inter_op: int, intra_op: int) -> None:
    """Size TensorFlow's two thread pools (0: its default); only before its first op.

    Inter-op threads run independent operations side by side; intra-op threads split
    one operation. With small models on few cores (the cpu preset on 2 cores: inter 2,
    intra 1) running operations side by side measured faster than splitting each.
    """
    try:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    except RuntimeError as err:
        raise RuntimeError(
            "TensorFlow's thread pools are fixed once it has run an operation: set "
            "them first thing (before any model or dataset), e.g. in a fresh process "
            f"({err})"
        ) from None


def accelerator() -> str | None:
    """"TPU" or "GPU" when this process has one, else None: a CPU."""
    for kind in ("TPU", "GPU"):
        if tf.config.list_physical_devices(kind):
            return kind
    return None


def resolve_jit_compile(setting: bool | str) -> bool:
    """XLA on or off; "auto" is on with a GPU or TPU, off on a CPU (measured slower)."""
    return accelerator() is not None if setting == "auto" else bool(setting)


def resolve_precision(setting: str) -> str:
    """The dtype policy; "auto": mixed float16 on GPUs, bfloat16 on TPUs, or float32."""
    if setting == "auto":
        return {"GPU": "mixed_float16",
                "TPU": "mixed_bfloat16"}.get(accelerator(), "float32")
    if setting not in PRECISIONS:
        raise ValueError(f"unknown precision {setting!r}; "
                         f"choose one of auto, {', '.join(PRECISIONS)}")
    return setting


def loss_scaling(optimizer, network):
    """`optimizer`, with dynamic loss scaling when `network` computes in float16."""
    if network.dtype_policy.name == "mixed_float16":  # small gradients would round to 0
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def minimize(optimizer, tape, loss, network) -> None:
    """One step of `optimizer` on `network`'s weights down the gradient of `loss`.

    That is `optimizer.apply(tape.gradient(loss, weights), weights)`, with two scalings
    a reader of the algorithm can skip: by the loss scale (1 but in mixed float16) and
    by 1 / the number of replicas (1 but under tf.distribute, which sums the replicas'
    gradients).
    """
    weights = network.trainable_variables
    scale = (optimizer.scale_loss(tf.ones_like(loss))
             / tf.distribute.get_strategy().num_replicas_in_sync)
    optimizer.apply(tape.gradient(loss, weights, output_gradients=scale), weights)


def make_strategy(name: str | tf.distribute.Strategy = "default"
                  ) -> tf.distribute.Strategy:
    """The tf.distribute strategy called `name`, one of STRATEGIES."""
    if isinstance(name, tf.distribute.Strategy):
        return name
    if name == "default":  # this process's one device, or the strategy of our scope
        return tf.distribute.get_strategy()
    if name == "mirrored":  # every local GPU, or the CPU
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":  # one process per machine, told the cluster by TF_CONFIG
        if not os.environ.get("TF_CONFIG"):
            example = {"cluster": {"worker": ["host0:12345", "host1:12345"]},
                       "task": {"type": "worker", "index": 0}}
            raise ValueError(
                "the multi-worker strategy reads its cluster from the TF_CONFIG "
                "environment variable, which is not set. Set it in every worker's "
                "environment: the same cluster, each worker with its own index (0 is "
                f"the chief), e.g. TF_CONFIG='{json.dumps(example)}'"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":  # Colab's TPU
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; "
                     f"choose one of {', '.join(STRATEGIES)}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run folder (not a multi-worker non-chief)."""
    resolver = (strategy.cluster_resolver
                if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                else None)
    if resolver is None or not resolver.task_type:  # a single process
        return True
    chief_type = "chief" if "chief" in resolver.cluster_spec().as_dict() else "worker"
    return resolver.task_type == chief_type and resolver.task_id == 0


@contextlib.contextmanager
def run_folder_of(strategy, run_dir: Path, lock):
    """Yield (where this process writes, whether it is the chief).

    The chief writes into `run_dir`, holding `lock(run_dir)`; a multi-worker run's other
    workers write into a scratch folder of their own, deleted at the end.
    """
    if is_chief(strategy or tf.distribute.get_strategy()):
        with lock(run_dir):
            yield Path(run_dir), True
    else:
        with tempfile.TemporaryDirectory(prefix="p2p-worker-") as scratch:
            yield Path(scratch), False


def fit(model, strategy, dataset, steps_per_epoch: int, epochs: int, callbacks) -> None:
    """`model.fit`, or under MultiWorkerMirroredStrategy its own loop."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        fit_multi_worker(model, strategy, dataset, steps_per_epoch, epochs, callbacks)
    else:
        model.fit(dataset, steps_per_epoch=steps_per_epoch, epochs=epochs,
                  callbacks=callbacks, verbose=0, shuffle=False)


def fit_multi_worker(model, strategy, dataset, steps_per_epoch, epochs,
                     callbacks) -> None:
    """`model.fit` for MultiWorkerMirroredStrategy, where Keras 3's fails.

    keras-team/keras#20585.
    """
    # From a list of files: each worker reads all and keeps its share of every batch
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    iterator = iter(strategy.experimental_distribute_dataset(
        dataset.with_options(options)))

    @tf.function
    def train_step(iterator):
        logs = strategy.run(model.train_step, args=(next(iterator),))
        return {name: strategy.reduce("MEAN", value, axis=None)  # over all replicas
                for name, value in logs.items()}

    callbacks = keras.callbacks.CallbackList(callbacks, model=model, epochs=epochs,
                                             steps=steps_per_epoch)
    model.stop_training = False
    callbacks.on_train_begin()
    for epoch in range(epochs):
        model.reset_metrics()  # as fit does: each epoch logs the means of its steps
        callbacks.on_epoch_begin(epoch)
        for batch in range(steps_per_epoch):
            logs = train_step(iterator)
            callbacks.on_train_batch_end(batch, logs)
            if model.stop_training:  # as fit does: StopAtStep ends the run mid-interval
                break
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
