"""The training entry point: a Config's model, trained by `fit` into a run folder that survives a kill.

`train` builds the model (`build_model`), places it on the devices (`p2p.runtime.devices`), and writes
and resumes the run folder (`p2p.runs`), guarded by `p2p.runtime`. Explained in the chapter "The training loop".
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from p2p import data, runs
from p2p.config import Config, resolve
from p2p.models import Discriminator, Generator
from p2p.optimizers import paper_optimizer
from p2p.pix2pix import Pix2Pix
from p2p.runtime import devices, guards, resume, stopping
from p2p.runtime.progress import ProgressBar


def build_networks(config: Config, disc_channels: int = 6) -> tuple[keras.Model, keras.Model]:
    """The generator and discriminator of `config`, computing in its precision (chapter "The training loop")."""
    outer_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(devices.resolve_precision(config.precision))  # layers take it when built
    try:
        generator = Generator(config.image_size, config.ngf, config.skips, upsample=config.upsample, norm=config.norm)
        discriminator = Discriminator(config.image_size, config.ndf, config.n_layers, in_channels=disc_channels)
    finally:
        keras.mixed_precision.set_global_policy(outer_policy)
    return generator, discriminator


def refuse_variants(config: Config) -> None:
    """Refuse a Config with the settings of the lab's variants, which `Pix2Pix` does not train (chapter "The training loop")."""
    variants = config.variant_settings()
    if variants:
        raise ValueError(f"{', '.join(f'{k}={v!r}' for k, v in variants.items())}: a variant of the paper that "
                         "p2p.Pix2Pix does not train; build it with p2p.lab.variants.build_model (train(..., build=...))")


def build_model(config: Config, *, jit_compile: bool | str = "auto") -> Pix2Pix:
    """A compiled Pix2Pix for `config`, both optimizers the paper's Adam, XLA per `jit_compile` (chapter "The training loop")."""
    refuse_variants(config)
    generator, discriminator = build_networks(config)
    model = Pix2Pix(generator, discriminator, l1_weight=config.l1_weight)
    decay = config.lr_decay if config.steps else 0.0  # a schedule needs the run's length
    model.compile(gen_optimizer=paper_optimizer(config.steps, decay), disc_optimizer=paper_optimizer(config.steps, decay),
                  jit_compile=devices.resolve_jit_compile(jit_compile))
    return model


class StopAtStep(keras.callbacks.Callback):
    """End `fit` after exactly `steps` steps, inside its last logging interval if need be (chapter "The training loop")."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_begin(self, logs=None):
        self.step = int(self.model.gen_optimizer.iterations.numpy())  # read once: counting needs no sync per step

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step >= self.steps:
            self.model.stop_training = True


def train(
    data_dir,
    run_dir,
    config: Config | str = "cpu",
    *,
    log_every: int = 50,
    checkpoint_every: int = 200,
    progress: bool = True,
    strategy: tf.distribute.Strategy | str = "default",
    jit_compile: bool | str = "auto",
    build=build_model,
    until: int | None = None,
    **settings,
) -> Pix2Pix:
    """Train (or resume) a run in `run_dir` on the A|B images of `data_dir` (chapter "The training loop").

    `config` is a Config or a preset's name, its fields replaced by `settings` (`steps=`, `seed=`, ...; `steps`
    defaults to its epochs over the training set); `build` makes the model (the lab's variants bring their own);
    `until` stops at that step, the schedule still spanning `steps`. Returns the trained model.

    Exactly `steps` steps are trained, and more steps continue a finished run; a run folder resumes only with the
    same settings (`Config.differences`), whatever `log_every` and `checkpoint_every` (a checkpoint at the first
    logged step past each multiple). Options are checked and the networks built before anything is written into
    `run_dir` (new, empty or a run folder), which is locked against other processes. Ctrl-C or SIGTERM saves a
    checkpoint at the step reached; a NaN or infinite loss (`stopping.NonFiniteLoss`) or a full disk
    (`guards.DiskFull`) stops the run, keeping the last good checkpoint. Resuming skips a damaged latest
    checkpoint and repairs a metrics.csv cut short.

    `strategy` is a tf.distribute.Strategy or a name for `devices.make_strategy`. With "multi-worker" every worker
    makes this same call, `run_dir` on a filesystem they share: all restore from the chief's checkpoints, only
    the chief writes.
    """
    config = resolve(config, **settings)
    if build is build_model:
        refuse_variants(config)
    guards.check_intervals(log_every, checkpoint_every)
    run_dir = Path(run_dir)
    guards.check_run_folder(run_dir)
    if strategy is None or isinstance(strategy, str):  # first: a multi-worker strategy precedes any TF op
        strategy = devices.make_strategy(strategy or "default")
    chief = devices.is_chief(strategy)
    train_dir = data.split_folder(data_dir, "train")
    train_files = data.list_pairs(train_dir)
    config = dataclasses.replace(config, steps=config.total_steps(len(train_files)),
                                 precision=devices.resolve_precision(config.precision))
    steps = min(until or config.steps, config.steps)  # where this call stops
    log_every = min(log_every, steps)
    data_identity = {"path": str(Path(data_dir).resolve()), "fingerprint": data.fingerprint(train_files)}
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():  # before anything is written: a size the networks cannot take is refused here
        model = build(config, jit_compile=jit_compile)
    with guards.lock(run_dir) if chief else contextlib.nullcontext():
        runs.start_config(run_dir, config, data_identity, write=chief)
        scratch = None if chief else tempfile.TemporaryDirectory(prefix="p2p-worker-")  # non-chiefs write here
        out_dir = run_dir if chief else Path(scratch.name)

        manager = tf.train.CheckpointManager(runs.checkpoint_of(model), out_dir / "checkpoints", max_to_keep=2)
        restored = resume.restore_latest(manager.checkpoint, run_dir / "checkpoints")  # the chief's, for every worker
        if restored:
            restored.assert_existing_objects_matched()
        done = int(model.gen_optimizer.iterations.numpy())
        if done > steps:
            raise ValueError(
                f"{run_dir} has already trained {done} steps, more than the {steps} asked for: give at least "
                f"{done} steps to continue it, a new run folder to train {steps}, or load it with runs.load_generator()."
            )
        resume.truncate_metrics(out_dir / "metrics.csv", done)
        if done >= steps:
            return model
        if done and chief:
            print(f"resuming {run_dir} at step {done} of {steps}", flush=True)

        keras.utils.set_random_seed(config.seed + done)  # a resumed run does not replay the same dropout masks
        dataset = data.paired_dataset(
            train_dir, image_size=config.image_size, direction=config.direction,
            batch_size=config.batch_size * strategy.num_replicas_in_sync, seed=config.seed + done,
        ).repeat()
        has_val = any((Path(data_dir) / sub / "val").is_dir() for sub in (".", "A", "B"))  # A|B files, or A/ and B/
        sample_dir = data.split_folder(data_dir, "val" if has_val else "train")
        sample_batch = data.example_batch(sample_dir, image_size=config.image_size, direction=config.direction)
        logger = runs.RunLogger(out_dir, manager, checkpoint_every, sample_batch, last_step=steps)
        callbacks = [stopping.StopOnNonFiniteLoss(out_dir), StopAtStep(steps), logger]  # first: a NaN model is never checkpointed
        if progress and chief:
            callbacks.append(ProgressBar(steps, done))
        # whole logging intervals from `done`; StopAtStep ends the last one at exactly `steps`
        epochs = math.ceil((steps - done) / log_every)
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):  # Keras 3's fit fails under it
            devices.fit_multi_worker(model, strategy, dataset, log_every, epochs, callbacks)
        else:  # Ctrl-C or SIGTERM saves a checkpoint at the step reached
            with stopping.checkpoint_on_interrupt(model, logger.save_checkpoint if chief else None, steps):
                model.fit(dataset, steps_per_epoch=log_every, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)
        if scratch is not None:
            scratch.cleanup()
        return model

