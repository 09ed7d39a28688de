"""Run folders: what a run writes, so that it survives a kill and can be read back.

Explained in the chapter "Running a run". A run folder holds config.json, checkpoints/,
metrics.csv (a row per `log_every` steps), logs/ (TensorBoard) and samples/; a compact
one (a book run, `p2p.lab.bookruns`) holds config.json and generator.npz instead of
checkpoints.
"""

from __future__ import annotations

import contextlib
import csv
import math
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from p2p import config as configs
from p2p import data
from p2p.config import Config
from p2p.inference import translate
from p2p.models import Generator
from p2p.pix2pix import METRICS
from p2p.runtime import devices, guards, resume, stopping
from p2p.runtime.files import write_atomically, write_json
from p2p.runtime.guards import writing
from p2p.runtime.progress import ProgressBar


class Run(NamedTuple):
    """A run folder in use: where this process writes, its checkpoints, its step."""

    folder: Path  # the run folder, or a multi-worker run's non-chief's scratch folder
    manager: tf.train.CheckpointManager
    step: int
    chief: bool


@contextlib.contextmanager
def open_run(run_dir, model, config: Config, data_identity: dict, steps: int,
             strategy=None):
    """Lock a run folder, check its config, restore `model` from its last checkpoint.

    Yields a `Run`. A second process is refused (`guards.lock`), and so is a run started
    with other settings or data (`check_config`) or one already past `steps`, before
    config.json is written; a damaged checkpoint is skipped, checkpoints of other
    networks refused and a metrics.csv cut short repaired (`p2p.runtime.resume`).
    """
    run_dir = Path(run_dir)
    with devices.run_folder_of(strategy, run_dir, guards.lock) as (folder, chief):
        check_config(run_dir, config, data_identity)
        checkpoint = checkpoint_of(model)
        resume.restore_latest(checkpoint, run_dir / "checkpoints")  # the chief's
        step = int(model.gen_optimizer.iterations.numpy())
        if step > steps:
            raise ValueError(
                f"{run_dir} has already trained {step} steps, more than the {steps} "
                f"asked for: give at least {step} steps to continue it, a new run "
                f"folder to train {steps}, or load it with runs.load_generator()."
            )
        if chief:
            with writing(run_dir / "config.json"):  # whole at every moment
                write_json(run_dir / "config.json",
                           {**config.to_dict(), "data": data_identity})
        manager = resume.checkpoint_manager(checkpoint, folder / "checkpoints")
        resume.truncate_metrics(folder / "metrics.csv", step)
        if 0 < step < steps and chief:
            print(f"resuming {run_dir} at step {step} of {steps}", flush=True)
        yield Run(folder, manager, step, chief)


def fit(model, run: Run, dataset, steps: int, samples, strategy=None, *,
        log_every: int = 50, checkpoint_every: int = 200,
        progress: bool = True) -> None:
    """`fit` from the run's step to `steps`, logging into the run folder.

    Callbacks log metrics.csv and TensorBoard every `log_every` steps, and save a
    checkpoint and `samples` translated at each checkpoint; Ctrl-C or SIGTERM logs the
    steps since the last row and saves one at the step reached.
    """
    log_every = min(log_every, steps)
    logger = RunLogger(run.folder, run.manager, checkpoint_every, samples,
                       last_step=steps)
    callbacks = [stopping.StopOnNonFiniteLoss(run.folder),  # NaN first
                 StopAtStep(steps), logger]
    if progress and run.chief:
        callbacks.append(ProgressBar(steps, run.step))
    epochs = math.ceil((steps - run.step) / log_every)  # the last ends at `steps`
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    save = logger.on_interrupt if run.chief and not multi_worker else None
    with stopping.checkpoint_on_interrupt(model, save, steps):
        devices.fit(model, strategy, dataset, log_every, epochs, callbacks)


class StopAtStep(keras.callbacks.Callback):
    """End `fit` after exactly `steps` steps, if need be inside a logging interval."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_begin(self, logs=None):
        # read once: counting needs no sync per step
        self.step = int(self.model.gen_optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step >= self.steps:
            self.model.stop_training = True


def check_config(run_dir: Path, config: Config, data_identity: dict) -> None:
    """Refuse to resume a run with other settings or data; one without a checkpoint
    starts over."""
    path = Path(run_dir) / "config.json"
    if path.exists():
        saved = configs.read_values(run_dir)
        changed = configs.read(run_dir, type(config)).differences(config)
        if not changed and saved.get("variant") != config.to_dict().get("variant"):
            changed.append(f"the lab's variant settings {saved.get('variant', {})}")
        # data moved elsewhere is the same data: its fingerprint matches
        if _data_identity(saved.get("data")) not in data_identity.values():
            changed.append("data (other files than the run was trained on)")
        # more steps may be asked for: that continues a finished run
        if changed and resume.checkpoint_paths(Path(run_dir) / "checkpoints"):
            raise ValueError(
                f"{path}: this run was started with other settings "
                f"({', '.join(changed)} differ). Resume it with the same ones, "
                "or give a new run folder."
            )


def _data_identity(data):
    """A run's data as its config names it: the fingerprint, or (old runs) the path."""
    return (data.get("fingerprint") if isinstance(data, dict)
            else str(Path(data).resolve()) if data else None)


def checkpoint_of(model) -> tf.train.Checkpoint:
    """All a resumed run needs: both networks and optimizers, with the step count."""
    return tf.train.Checkpoint(
        generator=model.generator,
        discriminator=model.discriminator,
        gen_optimizer=model.gen_optimizer,
        disc_optimizer=model.disc_optimizer,
    )


class RunLogger(keras.callbacks.Callback):
    """Logs metrics.csv and TensorBoard; saves checkpoints and samples when due."""

    def __init__(self, run_dir: Path, manager, checkpoint_every, sample_batch,
                 last_step):
        super().__init__()
        self.run_dir, self.manager = run_dir, manager
        self.checkpoint_every, self.last_step = checkpoint_every, last_step
        self.sample_batch = sample_batch
        self.folder = guards.folder_identity(run_dir)  # told from one put in its place
        with writing(run_dir / "logs"):
            self.writer = tf.summary.create_file_writer(str(run_dir / "logs"))

    def on_train_begin(self, logs=None):
        # the checkpoint the run starts from, and its last row
        self.saved = self.logged = int(self.model.gen_optimizer.iterations.numpy())

    def on_epoch_end(self, epoch, logs=None):
        # the step reached, also by a run stopped inside an interval
        step = int(self.model.gen_optimizer.iterations.numpy())
        guards.check_folder_kept(self.run_dir, self.folder, step)  # not deleted
        row = {"step": step, **{name: float(logs[name]) for name in METRICS}}
        append_metrics(self.run_dir / "metrics.csv", row)
        self.logged = step
        with writing(self.run_dir / "logs"), self.writer.as_default(step=step):
            for name in METRICS:
                tf.summary.scalar(name, row[name])
            self.writer.flush()  # a full disk shows here, not when the writer is freed
        if (step // self.checkpoint_every > self.saved // self.checkpoint_every
                or step >= self.last_step):
            self.save_checkpoint(step)

    def save_checkpoint(self, step: int) -> None:
        """A checkpoint and a sample at `step`, unless the run already has one there."""
        if step != self.saved:
            save_sample(self.model, self.sample_batch,
                        self.run_dir / "samples" / f"step_{step:07d}.png")
            with writing(self.run_dir / "checkpoints" / f"ckpt-{step}"):
                self.manager.save(checkpoint_number=step)
            self.saved = step

    def on_interrupt(self, step: int) -> None:
        """Ctrl-C: a row of the steps since the last one, and a checkpoint at `step`."""
        guards.check_folder_kept(self.run_dir, self.folder, step)
        if step > self.logged:  # the means of this interval's steps so far
            self.on_epoch_end(None, {m.name: m.result() for m in self.model.metrics})
        self.save_checkpoint(step)


def append_metrics(path: Path, row: dict) -> None:
    """Append one row to a metrics CSV, writing the header when the file is new."""
    new = not path.exists()
    with writing(path), path.open("a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_metrics(path) -> dict[str, np.ndarray]:
    """metrics.csv as columns of floats: {"step": ..., "gen_total": ..., ...}."""
    with Path(path).open() as file:
        rows = list(csv.DictReader(file))
    return {key: np.array([float(r[key]) for r in rows])
            for key in (rows[0] if rows else ["step"])}


def save_sample(model, batch, path: Path) -> None:
    """Save input | output | target rows of a fixed batch, as test time makes them."""
    inputs, targets = batch
    outputs = translate(model.generator, inputs)
    rows = [np.concatenate(row, axis=1) for row in zip(inputs, outputs, targets)]
    image = Image.fromarray(data.to_uint8(np.concatenate(rows, axis=0)).numpy())
    with writing(path):
        write_atomically(path, lambda file: image.save(file, format="PNG"))


def load_generator(run_dir) -> tuple[keras.Model, Config]:
    """A run folder's generator (latest checkpoint or generator.npz) and its Config."""
    run_dir = Path(run_dir)
    config = configs.read(run_dir)
    generator = Generator(config.image_size, config.ngf, config.skips,
                          dropout=config.dropout, upsampling=config.upsample,
                          norm=config.norm)
    if (run_dir / "generator.npz").exists():
        set_weights_from(generator, run_dir / "generator.npz")
        return generator, config
    if resume.restore_latest(tf.train.Checkpoint(generator=generator),
                             run_dir / "checkpoints") is None:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no checkpoint yet; "
                                "let the run reach its first one.")
    return generator, config


def set_weights_from(model: keras.Model, path) -> None:
    """Load `save_weights_to`'s weights into a model of the same architecture."""
    with np.load(path) as saved:
        weights = [saved[key].astype(np.float32) for key in sorted(saved.files)]
    expected = [tuple(w.shape) for w in model.get_weights()]
    if [w.shape for w in weights] != expected:
        raise ValueError(f"{path}: these weights do not fit {model.name} "
                         f"({len(weights)} arrays for {len(expected)}): "
                         f"the folder's config.json and its weights disagree")
    model.set_weights(weights)
