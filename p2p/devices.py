"""Where a run computes: the accelerator, the number format, XLA, TensorFlow's thread pools, tf.distribute.

Each setting has an "auto" that picks what measured fastest for the hardware found. Explained in
the chapter "Scaling up".
"""

from __future__ import annotations

import json
import os
import platform
import sys

import tensorflow as tf

from p2p import records

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multi-worker", "tpu")


def accelerator() -> str | None:
    """"TPU" or "GPU" when this process has one, else None: a CPU (chapter "Scaling up")."""
    for kind in ("TPU", "GPU"):
        if tf.config.list_physical_devices(kind):
            return kind
    return None


def resolve_jit_compile(setting: bool | str) -> bool:
    """XLA on or off; "auto" is on with a GPU or TPU and off on a CPU, where it measured slower (chapter "Scaling up")."""
    return accelerator() is not None if setting == "auto" else bool(setting)


def resolve_precision(setting: str) -> str:
    """The dtype policy for `setting`; "auto": mixed float16 on GPUs, bfloat16 on TPUs, else float32 (chapter "Scaling up")."""
    if setting == "auto":
        return {"GPU": "mixed_float16", "TPU": "mixed_bfloat16"}.get(accelerator(), "float32")
    if setting not in PRECISIONS:
        raise ValueError(f"unknown precision {setting!r}; choose one of auto, {', '.join(PRECISIONS)}")
    return setting


def set_thread_pools(inter_op: int, intra_op: int) -> None:
    """Size TensorFlow's two thread pools (0: its default); only before its first operation (chapter "Scaling up").

    Inter-op threads run independent operations side by side; intra-op threads split one
    operation. With small models on few cores (the cpu preset on 2 cores: inter 2, intra 1)
    running operations side by side measured faster than splitting each.
    """
    try:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    except RuntimeError as err:
        raise RuntimeError(
            "TensorFlow's thread pools are fixed once it has run an operation: set them first thing "
            f"(before any model or dataset), e.g. in a fresh process ({err})"
        ) from None


def machine() -> str:
    """This machine as the benchmark's measurements are filed under: its core count and processor."""
    return f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"


def measured_thread_pools(preset: str) -> tuple[int, int] | None:
    """The (inter-op, intra-op) sizes the benchmark measured fastest for `preset` here, if it did (chapter "Scaling up").

    `python -m p2p.bench` files them. (0, 0) means TensorFlow's default measured fastest; None,
    that nothing was measured on this machine.
    """
    try:
        measured = json.loads((records.cache_dir() / "thread_pools.json").read_text())
    except (OSError, ValueError):
        return None
    setting = measured.get(machine(), {}).get(preset)
    return tuple(setting) if setting else None


def record_thread_pools(preset: str, setting: tuple[int, int]) -> None:
    """File `setting` as the fastest thread-pool sizes for `preset` on this machine (the benchmark calls it)."""
    path = records.cache_dir() / "thread_pools.json"
    try:
        measured = json.loads(path.read_text())
    except (OSError, ValueError):
        measured = {}
    measured.setdefault(machine(), {})[preset] = list(setting)
    records.write_json(path, measured)


def use_measured_thread_pools(preset: str, *, verbose: bool = False) -> tuple[int, int] | None:
    """Size the thread pools as measured fastest for `preset` here, if measured; call before TensorFlow's first operation.

    The default of the command line (which says so, `verbose`) and of the chapters' setup
    (chapter "Scaling up"). Returns the setting applied, or None: TensorFlow's default stays.
    """
    setting = measured_thread_pools(preset)
    if not setting or setting == (0, 0):
        return None
    set_thread_pools(*setting)
    if verbose:
        print(f"thread pools: inter-op {setting[0]}, intra-op {setting[1]}, measured fastest for the {preset} preset "
              "on this machine by python -m p2p.bench (--threads 0 0 for TensorFlow's default)", file=sys.stderr)
    return setting


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """The tf.distribute strategy called `name`, one of STRATEGIES (chapter "Scaling up")."""
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
    """Whether this process writes the run folder: yes, unless it is a multi-worker run's non-chief worker."""
    resolver = strategy.cluster_resolver if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else None
    if resolver is None or not resolver.task_type:  # a single process
        return True
    chief_type = "chief" if "chief" in resolver.cluster_spec().as_dict() else "worker"
    return resolver.task_type == chief_type and resolver.task_id == 0
