"""Where a run computes: the accelerator, the number format, XLA, tf.distribute.

Explained in the appendix "Scaling up". Each setting's "auto" picks what measured
fastest on the hardware found.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from p2p.runtime import stopping

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multi-worker", "tpu")
#: Seconds a multi-worker run waits for its other workers to start (P2P_WORKER_TIMEOUT).
WORKER_TIMEOUT = 300.0
TF_CONFIG_EXAMPLE = {"cluster": {"worker": ["host0:12345", "host1:12345"]},
                     "task": {"type": "worker", "index": 0}}


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
    """The tf.distribute strategy called `name`, one of STRATEGIES.

    A TF_CONFIG a multi-worker run cannot use, or no TPU for "tpu", is one line
    (ValueError) before TensorFlow is asked; a worker that does not start in
    P2P_WORKER_TIMEOUT seconds (default 300) is named (`wait_for_workers`).
    """
    if isinstance(name, tf.distribute.Strategy):
        return name
    if name == "default":  # this process's one device, or the strategy of our scope
        return tf.distribute.get_strategy()
    if name == "mirrored":  # every local GPU, or the CPU
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":  # one process per machine, told the cluster by TF_CONFIG
        cluster, task_type, index = read_tf_config()
        wait_for_workers(cluster, task_type, index, worker_timeout())
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":  # Colab's TPU
        return tpu_strategy()
    raise ValueError(f"unknown strategy {name!r}; "
                     f"choose one of {', '.join(STRATEGIES)}")


def tpu_strategy() -> tf.distribute.TPUStrategy:
    """TPUStrategy on this machine's TPU (a TPU VM, as Colab's) or TPU_NAME's."""
    named = [f"{key}={os.environ[key]}" for key in
             ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", "TPU_CONFIG")
             if os.environ.get(key)]
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=None if named else "local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, OSError, ImportError, tf.errors.OpError) as err:
        said = (str(err).strip() or type(err).__name__).splitlines()[0][:200]
        where = f"at {named[0]} ({said})" if named else "on this machine"
        raise ValueError(
            f"--strategy tpu found no TPU {where}: run on a machine with one (Colab: "
            "Runtime > Change runtime type > TPU), set TPU_NAME to a Cloud TPU's name "
            "or grpc:// address, or choose --strategy default") from None
    return tf.distribute.TPUStrategy(resolver)


def read_tf_config() -> tuple[dict[str, list[str]], str, int]:
    """TF_CONFIG's cluster, this worker's task type and index; one line if unusable."""
    text = os.environ.get("TF_CONFIG", "")
    example = f"e.g. TF_CONFIG='{json.dumps(TF_CONFIG_EXAMPLE)}'"
    if not text.strip():
        raise ValueError(
            "the multi-worker strategy reads its cluster from the TF_CONFIG "
            "environment variable, which is not set. Set it in every worker's "
            "environment: the same cluster, each worker with its own index (0 is "
            f"the chief), {example}")
    same = "give every worker the same cluster and its own task index"

    def refuse(problem: str, fix: str = same) -> ValueError:
        return ValueError(f"TF_CONFIG{problem}: {fix}, {example}")

    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise refuse(f" is not JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(config, dict):
        raise refuse(" is not a JSON object")
    cluster = config.get("cluster")
    if not isinstance(cluster, dict) or not cluster:
        raise refuse(' has no "cluster" (the HOST:PORT of every worker)')
    for job, addresses in cluster.items():
        if job not in ("chief", "worker"):
            raise refuse(f"'s cluster has a job {job!r}",
                         'the multi-worker strategy runs "worker" (and one "chief")')
        if (not isinstance(addresses, list) or not addresses
                or job == "chief" and len(addresses) > 1):
            raise refuse(f"'s cluster {json.dumps(job)} is not a list of HOST:PORT "
                         "addresses" + (" (one chief)" if job == "chief" else ""))
        for address in addresses:
            if host_and_port(address) is None:
                raise refuse(f"'s cluster address {address!r} is not HOST:PORT "
                             "(a port from 1 to 65535)")
    everyone = [address for addresses in cluster.values() for address in addresses]
    for address in everyone:
        if everyone.count(address) > 1:
            raise refuse(f"'s cluster lists {address} twice",
                         "give each worker its own HOST:PORT")
    task = config.get("task")
    if not isinstance(task, dict):
        raise refuse(' has no "task" (this worker\'s {"type": "worker", "index": N})')
    task_type, index = task.get("type"), task.get("index")
    if task_type not in cluster:
        raise refuse(f"'s task type {task_type!r} is not a job of its cluster "
                     f"({', '.join(cluster)})")
    count = len(cluster[task_type])
    if type(index) is not int or not 0 <= index < count:
        raise refuse(f"'s task index {index!r} is out of range",
                     f"give each worker its own index from 0 to {count - 1}")
    return cluster, task_type, index


def host_and_port(address) -> tuple[str, int] | None:
    """("host", port) of "host:port" (or "[::1]:port"), None if it is not one."""
    if not isinstance(address, str):
        return None
    host, colon, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
        return None
    return host, int(port)


def worker_timeout() -> float:
    """P2P_WORKER_TIMEOUT: seconds to wait for the other workers, or WORKER_TIMEOUT."""
    text = os.environ.get("P2P_WORKER_TIMEOUT", "").strip()
    if not text:
        return WORKER_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise ValueError(f"P2P_WORKER_TIMEOUT={text}: give the seconds to wait for "
                         "the other workers, a number above 0 (default "
                         f"{WORKER_TIMEOUT:g})")
    return seconds


def wait_for_workers(cluster: dict, task_type: str, index: int, timeout: float) -> None:
    """Return once every other worker of `cluster` answers; name those that do not.

    TensorFlow's own rendezvous (in MultiWorkerMirroredStrategy()) waits for good,
    deaf to Ctrl-C and SIGTERM. So first each worker listens on its own address, until
    TensorFlow's server takes it over, and connects to the others' until all answer:
    after `timeout` seconds, TimeoutError names those that did not. Ctrl-C and
    SIGTERM end the wait, saying so.
    """
    others = {f"{job} {i} ({address} in TF_CONFIG)": address
              for job, addresses in cluster.items()
              for i, address in enumerate(addresses) if (job, i) != (task_type, index)}
    if not others:
        return
    mine = cluster[task_type][index]
    try:
        listener = socket.create_server(("", host_and_port(mine)[1]))
    except OSError as err:
        raise OSError(f"multi-worker: this worker's address {mine} in TF_CONFIG cannot "
                      f"be listened on ({os.strerror(err.errno)}): give it a free port "
                      "in every worker's TF_CONFIG") from None
    deadline = time.monotonic() + timeout
    try:
        with listener, stopping.interrupts_once():
            while True:
                for name, address in list(others.items()):
                    with contextlib.suppress(OSError):
                        socket.create_connection(host_and_port(address), 1).close()
                        del others[name]
                if not others:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"multi-worker: {', '.join(others)} did not answer within "
                        f"{timeout:g} s: start the same train command there, with "
                        "its own task index in TF_CONFIG, or wait longer with "
                        "P2P_WORKER_TIMEOUT=SECONDS")
                time.sleep(0.2)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM
        print(f"interrupted while waiting for {', '.join(others)}: nothing was written",
              file=sys.stderr, flush=True)
        raise


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
