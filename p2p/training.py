"""Training runs: a model from a preset, `fit` with callbacks, a run folder that survives a kill.

A run folder holds config.json, checkpoints/, metrics.csv (one row per `log_every` steps,
with a `step` column), logs/ (TensorBoard) and samples/ (input | output | target images).
Started again with the same folder, a run resumes from its last checkpoint and metrics.csv
continues from that step. Explained in the chapter "The training loop".
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import subprocess
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm.auto import tqdm

from p2p import data, presets
from p2p.inference import translate
from p2p.models import Discriminator, Generator
from p2p.pix2pix import METRICS, Pix2Pix


def build_model(
    preset: presets.Preset,
    *,
    skips: bool = True,
    l1_weight: float = 100.0,
    gan_weight: float = 1.0,
    conditional: bool = True,
    n_layers: int | None = None,
    precision: str = "float32",
) -> Pix2Pix:
    """A compiled Pix2Pix with the preset's sizes; the keywords select the paper's ablations (chapter "The training loop").

    `precision` is a Keras dtype policy: "float32", "mixed_float16" (GPUs, with loss scaling)
    or "mixed_bfloat16" (TPUs); see `resolve_precision` and the chapter "Scaling up".
    """
    outer_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)  # the layers take the policy they are built under
    try:
        generator = Generator(preset.image_size, preset.ngf, skips=skips)
        discriminator = Discriminator(
            preset.image_size,
            preset.ndf,
            preset.n_layers if n_layers is None else n_layers,
            in_channels=6 if conditional else 3,
        )
    finally:
        keras.mixed_precision.set_global_policy(outer_policy)
    model = Pix2Pix(generator, discriminator, l1_weight=l1_weight, gan_weight=gan_weight, conditional=conditional)
    model.compile(jit_compile=resolve_jit_compile(preset.jit_compile))
    return model


PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


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
    """The dtype policy for `setting`; "auto" is mixed_float16 on GPUs, mixed_bfloat16 on TPUs, else float32 (chapter "Scaling up")."""
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


def split_folder(root, split: str) -> Path:
    """root/split when it exists (a dataset with train/val/test), else root itself."""
    root = Path(root)
    return root / split if (root / split).is_dir() else root


def checkpoint_of(model: Pix2Pix) -> tf.train.Checkpoint:
    """Everything a resumed run needs: both networks and both optimizers (with the step count)."""
    return tf.train.Checkpoint(
        generator=model.generator,
        discriminator=model.discriminator,
        gen_optimizer=model.gen_optimizer,
        disc_optimizer=model.disc_optimizer,
    )


class RunLogger(keras.callbacks.Callback):
    """Every `log_every` steps: a row of metrics.csv, TensorBoard scalars and, every checkpoint, a checkpoint and a sample image."""

    def __init__(self, run_dir: Path, manager, log_every, checkpoint_every, sample_batch):
        super().__init__()
        self.run_dir, self.manager = run_dir, manager
        self.log_every, self.checkpoint_every = log_every, checkpoint_every
        self.sample_batch = sample_batch
        self.writer = tf.summary.create_file_writer(str(run_dir / "logs"))

    def on_epoch_end(self, epoch, logs=None):
        step = (epoch + 1) * self.log_every
        row = {"step": step, **{name: float(logs[name]) for name in METRICS}}
        append_metrics(self.run_dir / "metrics.csv", row)
        with self.writer.as_default(step=step):
            for name in METRICS:
                tf.summary.scalar(name, row[name])
        if step % self.checkpoint_every == 0 or epoch + 1 == self.params["epochs"]:
            save_sample(self.model, self.sample_batch, self.run_dir / "samples" / f"step_{step:07d}.png")
            self.manager.save(checkpoint_number=step)


class ProgressBar(keras.callbacks.Callback):
    """One tqdm bar over the whole run (not one per `fit` epoch), with the latest losses."""

    def __init__(self, total: int, initial: int):
        super().__init__()
        self.total, self.initial = total, initial

    def on_train_begin(self, logs=None):
        self.bar = tqdm(total=self.total, initial=self.initial, desc="train", unit="step")

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        if batch % 10 == 0:
            self.bar.set_postfix({k: f"{float(v):.3f}" for k, v in logs.items()}, refresh=False)

    def on_train_end(self, logs=None):
        self.bar.close()


def append_metrics(path: Path, row: dict) -> None:
    """Append one row to a metrics CSV, writing the header when the file is new."""
    new = not path.exists()
    with path.open("a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_metrics(path) -> dict[str, np.ndarray]:
    """metrics.csv as columns of floats: {"step": ..., "gen_total": ..., ...}."""
    with Path(path).open() as file:
        rows = list(csv.DictReader(file))
    return {key: np.array([float(r[key]) for r in rows]) for key in (rows[0] if rows else ["step"])}


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop the rows after `last_step`: the steps after the last checkpoint are run again on resume."""
    if not path.exists():
        return
    with path.open() as file:
        reader = csv.DictReader(file)
        rows = [r for r in reader if int(r["step"]) <= last_step]
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)  # a kill during the rewrite leaves the old file whole


def save_sample(model: Pix2Pix, batch, path: Path) -> None:
    """Save input | output | target rows for a fixed batch, as generated at test time."""
    inputs, targets = batch
    outputs = translate(model.generator, inputs)
    rows = [np.concatenate(row, axis=1) for row in zip(inputs, outputs, targets)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.to_uint8(np.concatenate(rows, axis=0)).numpy()).save(path)


STRATEGIES = ("default", "mirrored", "multi-worker", "tpu")


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """The tf.distribute strategy called `name`, one of STRATEGIES (explained in the chapter "Scaling up")."""
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


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run folder: yes, unless it is a multi-worker run's non-chief worker."""
    resolver = strategy.cluster_resolver if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else None
    if resolver is None or not resolver.task_type:  # a single process
        return True
    chief_type = "chief" if "chief" in resolver.cluster_spec().as_dict() else "worker"
    return resolver.task_type == chief_type and resolver.task_id == 0


def train(
    data_dir,
    run_dir,
    preset: presets.Preset | str = "cpu",
    *,
    steps: int | None = None,
    log_every: int = 50,
    checkpoint_every: int = 200,
    direction: str = "BtoA",
    seed: int = 0,
    strategy: tf.distribute.Strategy | str = "default",
    precision: str = "auto",
    progress: bool = True,
    **model_options,
) -> Pix2Pix:
    """Train (or resume) a run in `run_dir` on the A|B images of `data_dir` (chapter "The training loop").

    `steps` defaults to the preset's epochs over the training set; `model_options` go to
    `build_model` (the ablations). Returns the trained model.

    `precision` is "auto" (mixed float16 on GPUs, mixed bfloat16 on TPUs, float32 on CPUs) or
    one of PRECISIONS; the run's config.json records the one used.

    `strategy` is a tf.distribute.Strategy or a name for `make_strategy`. With "multi-worker"
    every worker runs this same call with the same `run_dir`, on a filesystem they all share:
    all restore from the chief's checkpoints, only the chief writes the run folder, and the
    other workers, which must take part in every checkpoint, write into a temporary folder
    deleted at the end.
    """
    if strategy is None or isinstance(strategy, str):  # first: a multi-worker strategy precedes any TF op
        strategy = make_strategy(strategy or "default")
    chief = _is_chief(strategy)
    preset = presets.get(preset) if isinstance(preset, str) else preset
    run_dir = Path(run_dir)
    train_files = data.list_pairs(split_folder(data_dir, "train"))
    steps = steps or preset.steps(len(train_files))
    log_every = min(log_every, steps)
    checkpoint_every = max(checkpoint_every // log_every, 1) * log_every
    config = {
        "preset": dataclasses.asdict(preset), "data": str(data_dir), "direction": direction,
        "seed": seed, "steps": steps, "log_every": log_every, "model": model_options,
        "precision": resolve_precision(precision),
    }
    _check_config(run_dir, config, write=chief)
    scratch = None if chief else tempfile.TemporaryDirectory(prefix="p2p-worker-")
    out_dir = run_dir if chief else Path(scratch.name)

    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_model(preset, precision=config["precision"], **model_options)
    manager = tf.train.CheckpointManager(checkpoint_of(model), out_dir / "checkpoints", max_to_keep=2)
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))  # the chief's, for every worker
    if latest:
        manager.checkpoint.restore(latest).assert_existing_objects_matched()
    done = int(model.gen_optimizer.iterations.numpy())
    if done > math.ceil(steps / log_every) * log_every:  # fit trains whole logging intervals: up to this many
        raise ValueError(
            f"{run_dir} has already trained {done} steps, more than the {steps} asked for: give at least "
            f"{done} steps to continue it, a new run folder to train {steps}, or load it with load_generator()."
        )
    truncate_metrics(out_dir / "metrics.csv", done)
    if done >= steps:
        return model
    if done and chief:
        print(f"resuming {run_dir} at step {done} of {steps}", flush=True)

    keras.utils.set_random_seed(seed + done)  # a resumed run does not replay the same dropout masks
    batch_size = preset.batch_size * strategy.num_replicas_in_sync
    dataset = data.paired_dataset(
        split_folder(data_dir, "train"), image_size=preset.image_size, direction=direction,
        batch_size=batch_size, seed=seed + done,
    ).repeat()
    options = tf.data.Options()  # from a list of files: each worker reads all and keeps its share of every batch
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    sample_dir = split_folder(data_dir, "val" if (Path(data_dir) / "val").is_dir() else "train")
    sample_batch = data.example_batch(sample_dir, image_size=preset.image_size, direction=direction)
    callbacks = [RunLogger(out_dir, manager, log_every, checkpoint_every, sample_batch)]
    if progress and chief:
        callbacks.append(ProgressBar(steps, done))
    epochs, initial_epoch = math.ceil(steps / log_every), done // log_every
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):  # Keras 3's fit fails under it
        _fit_multi_worker(model, strategy, dataset, log_every, epochs, initial_epoch, callbacks)
    else:
        model.fit(
            dataset, steps_per_epoch=log_every, epochs=epochs, initial_epoch=initial_epoch,
            callbacks=callbacks, verbose=0, shuffle=False,
        )
    if scratch is not None:
        scratch.cleanup()
    return model


def _fit_multi_worker(model, strategy, dataset, steps_per_epoch, epochs, initial_epoch, callbacks) -> None:
    """`model.fit` for MultiWorkerMirroredStrategy, under which Keras 3's fit fails (keras-team/keras#20585).

    Every worker runs each step on its share of the batch; the logs are means over all replicas.
    """
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    @tf.function
    def train_step(iterator):
        logs = strategy.run(model.train_step, args=(next(iterator),))
        return {name: strategy.reduce("MEAN", value, axis=None) for name, value in logs.items()}

    callbacks = keras.callbacks.CallbackList(callbacks, model=model, epochs=epochs, steps=steps_per_epoch)
    callbacks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()  # as fit does: each epoch's logs are the means over its steps
        callbacks.on_epoch_begin(epoch)
        for batch in range(steps_per_epoch):
            logs = train_step(iterator)
            callbacks.on_train_batch_end(batch, logs)
        callbacks.on_epoch_end(epoch, logs)
    callbacks.on_train_end(logs)


def _check_config(run_dir: Path, config: dict, write: bool = True) -> None:
    """Write config.json for a new run (when `write`); refuse to resume a run that was started differently."""
    path = run_dir / "config.json"
    config = json.loads(json.dumps(config))  # as it reads back from JSON
    if path.exists():
        saved = json.loads(path.read_text())
        changed = sorted(k for k in config if k != "steps" and saved.get(k) != config[k])
        if changed:  # more steps may be asked for: that continues a finished run
            raise ValueError(
                f"{path}: this run was started with other settings ({', '.join(changed)} differ). "
                f"Resume it with the same ones, or give a new run folder."
            )
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(config, indent=2))
        partial.replace(path)  # whole at every moment: other workers may be reading it


def load_generator(run_dir) -> tuple[keras.Model, dict]:
    """The generator of a run folder and the run's config (chapter "The training loop").

    A run folder written by `train` gives its latest checkpoint; a compact one (a book run, see
    `p2p.bookruns`) gives its generator.npz.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no config.json); train one with `python -m p2p train`.")
    config = json.loads(config_path.read_text())
    preset = presets.Preset(**config["preset"])
    generator = Generator(preset.image_size, preset.ngf, skips=config["model"].get("skips", True))
    if (run_dir / "generator.npz").exists():
        set_weights_from(generator, run_dir / "generator.npz")
        return generator, config
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    if latest is None:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no checkpoint yet; let the run reach its first one.")
    tf.train.Checkpoint(generator=generator).restore(latest).expect_partial()
    return generator, config


def save_weights_to(model: keras.Model, path) -> None:
    """Save every weight of a model (BatchNorm's moving statistics included) in float16, compressed, to one .npz."""
    arrays = {f"{i:03d}": np.asarray(w, np.float16) for i, w in enumerate(model.get_weights())}
    write_atomically(Path(path), lambda file: np.savez_compressed(file, **arrays))


def set_weights_from(model: keras.Model, path) -> None:
    """Load weights written by `save_weights_to` into a model of the same architecture."""
    with np.load(path) as saved:
        weights = [saved[key].astype(np.float32) for key in sorted(saved.files)]
    expected = [tuple(w.shape) for w in model.get_weights()]
    if [w.shape for w in weights] != expected:
        raise ValueError(f"{path}: these weights do not fit {model.name} ({len(weights)} arrays for {len(expected)}): "
                         f"the folder's config.json and its weights disagree")
    model.set_weights(weights)


def write_atomically(path: Path, write) -> None:
    """Call write(file) on a temporary file beside `path`, then move it into place: `path` is never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as file:
        write(file)
    partial.replace(path)


def commit_of_package() -> str:
    """The git commit p2p was run from, with "+changes" when the package's files differed from it; "unknown" outside git."""
    root = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=root).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], capture_output=True,
                               text=True, check=True, cwd=root).stdout.strip()  # the package's own files only
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")
