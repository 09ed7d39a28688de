"""Run folders: what a training run writes, so that it survives a kill and can be read back (chapter "The training loop").

A run folder holds config.json, checkpoints/, metrics.csv (a row per `log_every` steps), logs/ (TensorBoard) and
samples/; a compact one (a book run, `p2p.lab.bookruns`) holds config.json and generator.npz instead of checkpoints.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

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
from p2p.runtime.files import write_atomically, write_json
from p2p.runtime.guards import writing
from p2p.runtime.resume import restore_latest


def start_config(run_dir: Path, config: Config, data_identity: dict, write: bool = True) -> None:
    """Write a new run's config.json (if `write`); refuse to resume with other settings or data (chapter "The training loop")."""
    path = Path(run_dir) / "config.json"
    if path.exists():
        saved = configs.read(run_dir)
        changed = saved.differences(config)
        saved_data = json.loads(path.read_text()).get("data")
        if _data_identity(saved_data) not in (data_identity["fingerprint"], data_identity["path"]):  # files moved: the same data
            changed.append("data (other files than the run was trained on)")
        if changed:  # more steps may be asked for: that continues a finished run
            raise ValueError(
                f"{path}: this run was started with other settings ({', '.join(changed)} differ). "
                f"Resume it with the same ones, or give a new run folder."
            )
    if write:
        with writing(path):
            write_json(path, {**config.to_dict(), "data": data_identity})  # whole at every moment: workers may read it


def _data_identity(data):
    """What identifies a run's data in its config: the fingerprint, or the path for runs from before fingerprints."""
    return data.get("fingerprint") if isinstance(data, dict) else str(Path(data).resolve()) if data else None


def checkpoint_of(model) -> tf.train.Checkpoint:
    """Everything a resumed run needs: both networks and both optimizers, with the step count (chapter "The training loop")."""
    return tf.train.Checkpoint(
        generator=model.generator,
        discriminator=model.discriminator,
        gen_optimizer=model.gen_optimizer,
        disc_optimizer=model.disc_optimizer,
    )


class RunLogger(keras.callbacks.Callback):
    """Logs each `log_every` steps (metrics.csv, TensorBoard); checkpoints and samples when due (chapter "The training loop")."""

    def __init__(self, run_dir: Path, manager, checkpoint_every, sample_batch, last_step):
        super().__init__()
        self.run_dir, self.manager = run_dir, manager
        self.checkpoint_every, self.last_step = checkpoint_every, last_step
        self.sample_batch = sample_batch
        with writing(run_dir / "logs"):
            self.writer = tf.summary.create_file_writer(str(run_dir / "logs"))

    def on_train_begin(self, logs=None):
        self.saved = int(self.model.gen_optimizer.iterations.numpy())  # the checkpoint the run starts from

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.gen_optimizer.iterations.numpy())  # a run stopped inside an interval: the step it reached
        row = {"step": step, **{name: float(logs[name]) for name in METRICS}}
        append_metrics(self.run_dir / "metrics.csv", row)
        with writing(self.run_dir / "logs"), self.writer.as_default(step=step):
            for name in METRICS:
                tf.summary.scalar(name, row[name])
            self.writer.flush()  # a full disk shows here, not when the writer is dropped
        if step // self.checkpoint_every > self.saved // self.checkpoint_every or step >= self.last_step:
            self.save_checkpoint(step)

    def save_checkpoint(self, step: int) -> None:
        """A checkpoint (and a sample image) at `step`, unless the run already has one there."""
        if step != self.saved:
            save_sample(self.model, self.sample_batch, self.run_dir / "samples" / f"step_{step:07d}.png")
            with writing(self.run_dir / "checkpoints" / f"ckpt-{step}"):
                self.manager.save(checkpoint_number=step)
            self.saved = step


def append_metrics(path: Path, row: dict) -> None:
    """Append one row to a metrics CSV, writing the header when the file is new (chapter "The training loop")."""
    new = not path.exists()
    with writing(path), path.open("a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_metrics(path) -> dict[str, np.ndarray]:
    """metrics.csv as columns of floats: {"step": ..., "gen_total": ..., ...} (chapter "The training loop")."""
    with Path(path).open() as file:
        rows = list(csv.DictReader(file))
    return {key: np.array([float(r[key]) for r in rows]) for key in (rows[0] if rows else ["step"])}


def save_sample(model, batch, path: Path) -> None:
    """Save input | output | target rows for a fixed batch, as generated at test time (chapter "The training loop")."""
    inputs, targets = batch
    outputs = translate(model.generator, inputs)
    rows = [np.concatenate(row, axis=1) for row in zip(inputs, outputs, targets)]
    image = Image.fromarray(data.to_uint8(np.concatenate(rows, axis=0)).numpy())
    with writing(path):
        write_atomically(path, lambda file: image.save(file, format="PNG"))


def load_generator(run_dir) -> tuple[keras.Model, Config]:
    """A run folder's generator, from its latest checkpoint or generator.npz, and its Config (chapter "The training loop")."""
    run_dir = Path(run_dir)
    config = configs.read(run_dir)
    generator = Generator(config.image_size, config.ngf, config.skips, upsample=config.upsample, norm=config.norm)
    if (run_dir / "generator.npz").exists():
        set_weights_from(generator, run_dir / "generator.npz")
        return generator, config
    status = restore_latest(tf.train.Checkpoint(generator=generator), run_dir / "checkpoints")
    if status is None:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no checkpoint yet; let the run reach its first one.")
    status.expect_partial()
    return generator, config


def set_weights_from(model: keras.Model, path) -> None:
    """Load weights written by `save_weights_to` into a model of the same architecture (chapter "The training loop")."""
    with np.load(path) as saved:
        weights = [saved[key].astype(np.float32) for key in sorted(saved.files)]
    expected = [tuple(w.shape) for w in model.get_weights()]
    if [w.shape for w in weights] != expected:
        raise ValueError(f"{path}: these weights do not fit {model.name} ({len(weights)} arrays for {len(expected)}): "
                         f"the folder's config.json and its weights disagree")
    model.set_weights(weights)
