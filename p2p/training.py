"""The training entry point: a model from a preset, trained by `fit` into a run folder that survives a kill.

`train` builds the model (`build_model`), places it on the devices (`p2p.devices`), and writes
and resumes the run folder (`p2p.runs`). Explained in the chapter "The training loop".
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import signal
import sys
import tempfile
import threading
from pathlib import Path

import keras
import tensorflow as tf
from tqdm.auto import tqdm

from p2p import data, devices, presets, runs
from p2p.models import Discriminator, Generator
from p2p.optimizers import paper_optimizer
from p2p.pix2pix import GAN_UPDATES, Pix2Pix


def build_model(
    preset: presets.Preset,
    *,
    skips: bool = True,
    l1_weight: float = 100.0,
    gan_weight: float = 1.0,
    conditional: bool = True,
    n_layers: int | None = None,
    gan_update: str = "sequential",
    lr_decay: float | None = None,
    precision: str = "float32",
    steps: int | None = None,
) -> Pix2Pix:
    """A compiled Pix2Pix with the preset's sizes; the keywords select the paper's ablations (chapter "The training loop").

    `gan_update` is the order of D's and G's steps: "sequential" (PyTorch) or "simultaneous"
    (Lua, the TensorFlow tutorial); see `Pix2Pix`.

    `lr_decay` (default: the preset's) is the last share of a run's `steps` over which both
    learning rates fall linearly to zero, as in the official PyTorch code (the paper preset: its
    second half); 0 keeps them constant, as the Lua code did. Without `steps` they stay constant.

    `precision` is a Keras dtype policy: "float32", "mixed_float16" (GPUs, with loss scaling)
    or "mixed_bfloat16" (TPUs); see `p2p.devices.resolve_precision` and the chapter "Scaling up".
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
    model = Pix2Pix(generator, discriminator, l1_weight=l1_weight, gan_weight=gan_weight, conditional=conditional,
                    gan_update=gan_update)
    decay = (preset.lr_decay if lr_decay is None else lr_decay) if steps else 0.0
    model.compile(gen_optimizer=paper_optimizer(steps, decay), disc_optimizer=paper_optimizer(steps, decay),
                  jit_compile=devices.resolve_jit_compile(preset.jit_compile))
    return model


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


class StopAtStep(keras.callbacks.Callback):
    """End `fit` after exactly `steps` steps, inside its last logging interval if need be."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_begin(self, logs=None):
        self.step = int(self.model.gen_optimizer.iterations.numpy())  # read once: counting needs no sync per step

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step >= self.steps:
            self.model.stop_training = True


class NonFiniteLoss(ArithmeticError):
    """Training stopped because a loss became NaN or infinite; the run folder keeps its last good checkpoint."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """After every step: stop the run with NonFiniteLoss, naming the step, as soon as a loss is NaN or infinite.

    It runs before the step's metrics row or checkpoint could be written, so a NaN model is
    never saved over the last good checkpoint. Like Keras' TerminateOnNaN it reads the losses
    after every step, which waits for the step to finish.
    """

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = run_dir

    def on_train_batch_end(self, batch, logs=None):
        bad = {name: float(value) for name, value in logs.items() if not math.isfinite(float(value))}
        if bad:
            step = int(self.model.gen_optimizer.iterations.numpy())
            latest = tf.train.latest_checkpoint(str(self.run_dir / "checkpoints"))
            kept = f"its last good checkpoint ({Path(latest).name}) is kept" if latest else "no checkpoint was written"
            raise NonFiniteLoss(
                f"{self.run_dir}: training stopped at step {step}, where the losses became "
                f"{', '.join(f'{k} {v}' for k, v in bad.items())}; {kept}. Lower the learning rate or the loss "
                "weights, or check the data, then run the same command again to resume from that checkpoint."
            )


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

    Exactly `steps` steps are trained, and the same call with more steps continues a finished
    run. Options are checked before anything is written. While it trains, the run folder is
    locked against other processes (`p2p.runs.lock`); Ctrl-C or SIGTERM saves a checkpoint at
    the step reached; a NaN or infinite loss stops it (`NonFiniteLoss`), keeping the last good
    checkpoint; a full disk stops it (`p2p.runs.DiskFull`), naming the file. Resuming skips a
    damaged latest checkpoint for the one before it, and repairs a metrics.csv cut short.

    `precision` is "auto" (mixed float16 on GPUs, mixed bfloat16 on TPUs, float32 on CPUs) or
    one of `p2p.devices.PRECISIONS`; the run's config.json records the one used.

    `strategy` is a tf.distribute.Strategy or a name for `p2p.devices.make_strategy`. With "multi-worker"
    every worker runs this same call with the same `run_dir`, on a filesystem they all share:
    all restore from the chief's checkpoints, only the chief writes the run folder, and the
    other workers, which must take part in every checkpoint, write into a temporary folder
    deleted at the end.
    """
    check_options(steps=steps, log_every=log_every, checkpoint_every=checkpoint_every, **model_options)
    if strategy is None or isinstance(strategy, str):  # first: a multi-worker strategy precedes any TF op
        strategy = devices.make_strategy(strategy or "default")
    chief = devices.is_chief(strategy)
    preset = presets.get(preset) if isinstance(preset, str) else preset
    run_dir = Path(run_dir)
    train_files = data.list_pairs(data.split_folder(data_dir, "train"))
    steps = steps or preset.steps(len(train_files))
    log_every = min(log_every, steps)
    checkpoint_every = max(checkpoint_every // log_every, 1) * log_every
    config = {
        "preset": dataclasses.asdict(preset), "direction": direction,
        "data": {"path": str(Path(data_dir).resolve()), "fingerprint": data.fingerprint(train_files)},
        "seed": seed, "steps": steps, "log_every": log_every, "model": model_options,
        "precision": devices.resolve_precision(precision),
    }
    with runs.lock(run_dir) if chief else contextlib.nullcontext():  # one process per run folder
        runs.start_config(run_dir, config, write=chief)
        scratch = None if chief else tempfile.TemporaryDirectory(prefix="p2p-worker-")
        out_dir = run_dir if chief else Path(scratch.name)

        keras.utils.set_random_seed(seed)
        with strategy.scope():
            model = build_model(preset, precision=config["precision"], steps=steps, **model_options)
        manager = tf.train.CheckpointManager(runs.checkpoint_of(model), out_dir / "checkpoints", max_to_keep=2)
        restored = runs.restore_latest(manager.checkpoint, run_dir / "checkpoints")  # the chief's, for every worker
        if restored:
            restored.assert_existing_objects_matched()
        done = int(model.gen_optimizer.iterations.numpy())
        if done > steps:
            raise ValueError(
                f"{run_dir} has already trained {done} steps, more than the {steps} asked for: give at least "
                f"{done} steps to continue it, a new run folder to train {steps}, or load it with runs.load_generator()."
            )
        runs.truncate_metrics(out_dir / "metrics.csv", done)
        if done >= steps:
            return model
        if done and chief:
            print(f"resuming {run_dir} at step {done} of {steps}", flush=True)

        keras.utils.set_random_seed(seed + done)  # a resumed run does not replay the same dropout masks
        batch_size = preset.batch_size * strategy.num_replicas_in_sync
        dataset = data.paired_dataset(
            data.split_folder(data_dir, "train"), image_size=preset.image_size, direction=direction,
            batch_size=batch_size, seed=seed + done,
        ).repeat()
        options = tf.data.Options()  # from a list of files: each worker reads all and keeps its share of every batch
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.with_options(options)
        has_val = any((Path(data_dir) / sub / "val").is_dir() for sub in (".", "A", "B"))  # A|B files, or A/ and B/
        sample_dir = data.split_folder(data_dir, "val" if has_val else "train")
        sample_batch = data.example_batch(sample_dir, image_size=preset.image_size, direction=direction)
        logger = runs.RunLogger(out_dir, manager, checkpoint_every, sample_batch, last_step=steps)
        callbacks = [StopOnNonFiniteLoss(out_dir), StopAtStep(steps), logger]
        if progress and chief:
            callbacks.append(ProgressBar(steps, done))
        # whole logging intervals from `done`; StopAtStep ends the last one at exactly `steps`
        epochs = math.ceil((steps - done) / log_every)
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):  # Keras 3's fit fails under it
            _fit_multi_worker(model, strategy, dataset, log_every, epochs, callbacks)
        else:
            try:
                with sigterm_interrupts():
                    model.fit(dataset, steps_per_epoch=log_every, epochs=epochs, callbacks=callbacks, verbose=0,
                              shuffle=False)
            except KeyboardInterrupt:  # Ctrl-C (SIGINT) or SIGTERM: keep the steps since the last checkpoint
                step = int(model.gen_optimizer.iterations.numpy())
                if chief:
                    logger.save_checkpoint(step)
                print(f"interrupted at step {step} of {steps}; saved a checkpoint there: run the same command again "
                      "to resume", file=sys.stderr, flush=True)
                raise
        if scratch is not None:
            scratch.cleanup()
        return model


@contextlib.contextmanager
def sigterm_interrupts():
    """While in the block, SIGTERM (kill, Docker, Colab) raises KeyboardInterrupt, as Ctrl-C does (chapter "The training loop").

    Signal handlers belong to the main thread: elsewhere SIGTERM keeps its handler.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_options(*, steps=None, log_every=1, checkpoint_every=1, **model_options) -> None:
    """Refuse options `train` cannot use, before anything is written: counts below 1, unknown or misspelt model options."""
    for name, value in (("steps", steps), ("log_every", log_every), ("checkpoint_every", checkpoint_every)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a whole number of steps, at least 1, not {value!r}")
    known = [name for name in inspect.signature(build_model).parameters if name not in ("preset", "precision", "steps")]
    unknown = sorted(set(model_options) - set(known))
    if unknown:
        raise ValueError(f"unknown model option(s) {', '.join(unknown)}; the model options are {', '.join(known)} "
                         "(and train's own: steps, log_every, checkpoint_every, direction, seed, strategy, precision)")
    if not 0 <= model_options.get("lr_decay", 0) < 1:
        raise ValueError(f"lr_decay is the share of the steps over which the learning rate decays: from 0 up to 1, "
                         f"not {model_options['lr_decay']!r}")
    if model_options.get("gan_update", GAN_UPDATES[0]) not in GAN_UPDATES:
        raise ValueError(f"unknown gan_update {model_options['gan_update']!r}; choose one of {', '.join(GAN_UPDATES)}")


def _fit_multi_worker(model, strategy, dataset, steps_per_epoch, epochs, callbacks) -> None:
    """`model.fit` for MultiWorkerMirroredStrategy, under which Keras 3's fit fails (keras-team/keras#20585).

    Every worker runs each step on its share of the batch; the logs are means over all replicas.
    """
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    @tf.function
    def train_step(iterator):
        logs = strategy.run(model.train_step, args=(next(iterator),))
        return {name: strategy.reduce("MEAN", value, axis=None) for name, value in logs.items()}

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
