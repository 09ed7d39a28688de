"""Run folder guards: not a run's, in use, a full disk (README "What it promises")."""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import socket
from pathlib import Path

import tensorflow as tf


class RunInUse(RuntimeError):
    """Another process is training into this run folder (README "What it promises")."""


class DiskFull(OSError):
    """A write to a run folder failed for want of space (README "What it promises")."""


class RunFolderGone(OSError):
    """The run folder was deleted, replaced or emptied while training."""


@contextlib.contextmanager
def writing(path):
    """A full disk or quota while writing `path` raised as DiskFull, with the fix."""
    try:
        yield
    # the latter from TensorFlow's writers (checkpoints, TensorBoard)
    except (OSError, tf.errors.ResourceExhaustedError) as err:
        if isinstance(err, OSError) and err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise  # other errors, a DiskFull, go on
        raise DiskFull(
            f"{path}: the disk is full; free space, then run the same command again "
            "(the run resumes from its last checkpoint)") from err


def check_intervals(log_every, checkpoint_every) -> None:
    """Refuse intervals not of whole steps, or checkpoints more often than logs."""
    for name, value in (("log_every", log_every),
                        ("checkpoint_every", checkpoint_every)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a whole number of steps, at least 1, "
                             f"not {value!r}")
    if checkpoint_every < log_every:
        raise ValueError(f"checkpoint_every ({checkpoint_every}) is less than "
                         f"log_every ({log_every}): checkpoints are written at logged "
                         f"steps; give checkpoint_every {log_every} or more, or log "
                         "more often")


def check_batch(batch_size: int, pairs: list, data_dir, replicas: int = 1) -> None:
    """Refuse a batch larger than the training set: no step could be taken."""
    if batch_size * replicas > len(pairs):
        on = f" on each of {replicas} replicas" if replicas > 1 else ""
        raise ValueError(f"batch_size {batch_size}{on} is more than the {len(pairs)} "
                         f"training pairs in {data_dir}: give --set "
                         f"batch_size={len(pairs) // replicas} or less, or more pairs")


def folder_identity(folder) -> tuple:
    """What tells a run folder from one deleted, replaced or emptied: its device and
    inode, and whether its config.json is there."""
    try:
        stat = os.stat(folder)
    except FileNotFoundError:
        return ()
    return stat.st_dev, stat.st_ino, (Path(folder) / "config.json").exists()


def check_folder_kept(folder, identity: tuple, step: int) -> None:
    """Refuse to write on into a run folder that is no longer the one opened."""
    if folder_identity(folder) != identity:
        raise RunFolderGone(
            f"{folder}: the run folder was deleted, replaced or emptied while "
            f"training, at step {step}: nothing more is written; run the same command "
            "again to start the run over")


#: What `train` writes into a run folder (with .partial files while writing one); a
#: compact run holds generator.npz.
RUN_FILES = ("lock", "config.json", "checkpoints", "logs", "metrics.csv", "samples",
             "generator.npz")


def check_run_folder(run_dir) -> None:
    """Refuse a run folder that is a file, or a folder of the user's, not a run's."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir}: a file, not a folder: give a folder for the run "
                         "(a new one starts it).")
    if run_dir.is_dir() and not (run_dir / "config.json").exists():
        others = sorted(p.name for p in run_dir.iterdir()
                        if p.name.removesuffix(".partial") not in RUN_FILES)
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise ValueError(f"{run_dir}: not a run folder (no config.json) and not "
                             f"empty ({shown}): give a new or empty folder to start a "
                             "run, or a run folder to resume it.")
    if (run_dir / "generator.npz").exists():  # a book run's export: no checkpoints
        raise ValueError(f"{run_dir}: a compact run (generator.npz, as the book runs "
                         "are shipped): it cannot be trained further; give a new run "
                         "folder.")


@contextlib.contextmanager
def lock(run_dir):
    """Lock run_dir while training: a second process is refused, told which holds it."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): nothing is locked
        yield
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # flock on the folder itself: released when the process ends, even killed, and no
    # deleted file releases it; run_dir/lock only says who holds it.
    folder = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = (run_dir / "lock").read_text().strip() or "another process"
            except OSError:
                holder = "another process"
            raise RunInUse(f"{run_dir} is in use: {holder} is training into it. Wait "
                           "for it to finish or stop it, or give another run "
                           "folder.") from None
        since = datetime.datetime.now().isoformat(timespec="seconds")
        with writing(run_dir / "lock"):
            (run_dir / "lock").write_text(
                f"process {os.getpid()} on {socket.gethostname()} (since {since})\n")
        yield
    finally:
        os.close(folder)  # and with it the lock
