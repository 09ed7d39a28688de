"""Run folders: what a training run writes, so that it survives a kill and can be read back (chapter "The training loop").

A run folder holds config.json, checkpoints/, metrics.csv (a row per `log_every` steps), logs/ (TensorBoard) and
samples/; a compact one (a book run, `p2p.lab.bookruns`) holds config.json and generator.npz instead of checkpoints.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import io
import json
import os
import re
import socket
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from p2p import config as configs
from p2p import data
from p2p.config import Config
from p2p.files import write_atomically, write_json
from p2p.inference import translate
from p2p.models import Generator
from p2p.pix2pix import METRICS


class RunInUse(RuntimeError):
    """Another process is training into this run folder (chapter "The training loop")."""


class DiskFull(OSError):
    """A write to a run folder failed for want of space (chapter "The training loop")."""


@contextlib.contextmanager
def writing(path):
    """Turn a full disk (or quota) while writing `path` into DiskFull naming it and the fix (chapter "The training loop")."""
    try:
        yield
    except (OSError, tf.errors.ResourceExhaustedError) as err:  # TensorFlow's writers (checkpoints, TensorBoard) raise the latter
        if isinstance(err, OSError) and err.errno not in (errno.ENOSPC, errno.EDQUOT):  # other errors, a DiskFull, go on
            raise
        raise DiskFull(f"{path}: the disk is full; free space, then run the same command again "
                       "(the run resumes from its last checkpoint)") from err


#: What `train` writes into a run folder (with .partial files while writing one); a compact run holds generator.npz.
RUN_FILES = ("lock", "config.json", "checkpoints", "logs", "metrics.csv", "samples", "generator.npz")


def check_run_folder(run_dir) -> None:
    """Refuse a run folder that is a file, or a folder of the user's, not a run's (chapter "The training loop")."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir}: a file, not a folder: give a folder for the run (a new one starts it).")
    if run_dir.is_dir() and not (run_dir / "config.json").exists():
        others = sorted(p.name for p in run_dir.iterdir() if p.name.removesuffix(".partial") not in RUN_FILES)
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise ValueError(f"{run_dir}: not a run folder (no config.json) and not empty ({shown}): give a new or "
                             "empty folder to start a run, or a run folder to resume it.")


@contextlib.contextmanager
def lock(run_dir):
    """Lock run_dir while training: another process training into it is refused, naming this one (chapter "The training loop")."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): nothing is locked
        yield
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # flock on the folder itself: released when the process ends, even killed, and no deleted file releases it;
    # run_dir/lock only says who holds it.
    folder = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = (run_dir / "lock").read_text().strip() or "another process"
            except OSError:
                holder = "another process"
            raise RunInUse(f"{run_dir} is in use: {holder} is training into it. Wait for it to finish or stop it, "
                           "or give another run folder.") from None
        since = datetime.datetime.now().isoformat(timespec="seconds")
        with writing(run_dir / "lock"):
            (run_dir / "lock").write_text(f"process {os.getpid()} on {socket.gethostname()} (since {since})\n")
        yield
    finally:
        os.close(folder)  # and with it the lock


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


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop the rows after `last_step`, trained again on resume, and a line cut short by a kill (chapter "The training loop")."""
    if not path.exists():
        return
    with path.open(newline="") as file:
        text = file.read()
    reader = csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1]))  # only whole lines: a cut one has no end
    rows = [r for r in reader if int(r["step"]) <= last_step]
    if reader.fieldnames is None:  # not even a whole header: append_metrics starts the file again
        path.unlink()
        return
    kept = io.StringIO()
    writer = csv.DictWriter(kept, fieldnames=reader.fieldnames)
    writer.writeheader()
    writer.writerows(rows)
    if kept.getvalue() != text:
        with writing(path):  # a kill during the rewrite leaves the old file whole
            write_atomically(path, lambda file: file.write(kept.getvalue()), text=True)


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


def restore_latest(checkpoint: tf.train.Checkpoint, directory):
    """Restore the newest readable checkpoint in `directory`: its status, or None if none (chapter "The training loop")."""
    state = tf.train.get_checkpoint_state(str(directory))
    damaged = []
    for path in reversed(state.all_model_checkpoint_paths if state else []):  # newest first, past damaged ones
        try:
            return checkpoint.restore(path)
        except (tf.errors.OpError, IndexError) as err:  # a data file cut short raises IndexError
            reason = re.sub(r"\{\{.*?\}\}\s*", "", str(err).strip().splitlines()[0])  # without TF's {{function_node ...}}
            print(f"warning: {path} cannot be read ({reason}); it is skipped for the checkpoint before it",
                  file=sys.stderr, flush=True)
            damaged.append(f"{Path(path).name} ({reason})")
    if damaged:
        raise ValueError(f"{directory}: no checkpoint in it can be read: {'; '.join(damaged)}. Train into a new run "
                         "folder, or delete this one to start it again.")
    return None


def set_weights_from(model: keras.Model, path) -> None:
    """Load weights written by `save_weights_to` into a model of the same architecture (chapter "The training loop")."""
    with np.load(path) as saved:
        weights = [saved[key].astype(np.float32) for key in sorted(saved.files)]
    expected = [tuple(w.shape) for w in model.get_weights()]
    if [w.shape for w in weights] != expected:
        raise ValueError(f"{path}: these weights do not fit {model.name} ({len(weights)} arrays for {len(expected)}): "
                         f"the folder's config.json and its weights disagree")
    model.set_weights(weights)
