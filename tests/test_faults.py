"""Faults during training lose no work: a full disk at any write, a damaged latest checkpoint, SIGTERM."""

import errno
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import tensorflow as tf

from p2p import runs, training
from p2p.__main__ import main
from p2p.models import Generator
from p2p.runtime import guards, resume, stopping

TINY = {"steps": 4, "log_every": 2, "checkpoint_every": 2, "progress": False}
# Every file a tiny run of 4 steps (logged and checkpointed every 2) writes, with the writes to it that fail below:
# the lock, config.json, the TensorBoard event file (created, then flushed at every row), metrics.csv (the header,
# the first row, a later one), the sample images, and the checkpoints (in CheckpointManager.save).
WRITES = [
    ("lock", 1), ("config.json", 1), ("logs", 1), ("metrics.csv", 1), ("metrics.csv", 2), ("logs", 2),
    ("samples/step_0000002.png", 1), ("checkpoints/ckpt-2", 1), ("metrics.csv", 3), ("logs", 3),
    ("samples/step_0000004.png", 1), ("checkpoints/ckpt-4", 1),
]


class FullDisk:
    """The disk of a run folder, full at the n-th write to one of its files (`fail`), or never (`fail` None).

    It intercepts what p2p writes with: Path.open (Python's files), tf.summary.create_file_writer
    (TensorBoard) and tf.train.CheckpointManager.save. A Python write is cut half-way, then raises
    OSError ENOSPC; TensorFlow's writers raise what they raise on a full disk, ResourceExhaustedError.
    Every write is recorded in `writes` as (file, n).
    """

    def __init__(self, run: Path, monkeypatch, fail: tuple[str, int] | None = None):
        self.run, self.fail, self.writes = run, fail, []
        disk, real_open, real_writer, real_save = self, Path.open, tf.summary.create_file_writer, tf.train.CheckpointManager.save

        def open_(path, mode="r", *args, **kwargs):
            file = real_open(path, mode, *args, **kwargs)
            return _File(file, disk, path) if set(mode) & set("wax+") and disk.holds(path) else file

        def create_file_writer(logdir, *args, **kwargs):
            if not disk.holds(logdir):
                return real_writer(logdir, *args, **kwargs)
            if disk.fails(logdir):
                raise _tensorflow_disk_full(logdir)
            return _Writer(real_writer(logdir, *args, **kwargs), disk, logdir)

        def save(manager, checkpoint_number=None, **kwargs):
            prefix = Path(manager.directory) / f"ckpt-{checkpoint_number}"
            if disk.holds(prefix) and disk.fails(prefix):
                (temp := prefix.with_name(f"{prefix.name}_temp")).mkdir(parents=True)  # what SaveV2 leaves behind
                raise _tensorflow_disk_full(temp / "part-00000-of-00001.data-00000-of-00001.tempstate")
            return real_save(manager, checkpoint_number=checkpoint_number, **kwargs)

        monkeypatch.setattr(Path, "open", open_)
        monkeypatch.setattr(tf.summary, "create_file_writer", create_file_writer)
        monkeypatch.setattr(tf.train.CheckpointManager, "save", save)

    def holds(self, path) -> bool:
        """Whether `path` is in the run folder."""
        return Path(path).is_relative_to(self.run)

    def fails(self, path) -> bool:
        """Record a write to `path`; whether it is the one to fail."""
        name = str(Path(path).relative_to(self.run)).removesuffix(".partial")  # write_atomically's file is the target's
        self.writes.append((name, 1 + sum(written == name for written, _ in self.writes)))
        return self.writes[-1] == self.fail


def _tensorflow_disk_full(path):
    """What TensorFlow's writers raise on a full disk."""
    return tf.errors.ResourceExhaustedError(None, None, f"{path}; No space left on device")


class _File:
    """A Python file of the run folder, on the FullDisk."""

    def __init__(self, file, disk: FullDisk, path):
        self.file, self.disk, self.path = file, disk, path

    def write(self, data):
        if self.disk.fails(self.path):
            self.file.write(data[: len(data) // 2])  # the disk fills up half-way through
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.file.close()


class _Writer:
    """A TensorBoard writer of the run folder, on the FullDisk: its flushes write."""

    def __init__(self, writer, disk: FullDisk, logdir):
        self.writer, self.disk, self.logdir = writer, disk, logdir

    def flush(self):
        if self.disk.fails(self.logdir):
            raise _tensorflow_disk_full(self.logdir)
        return self.writer.flush()

    def __getattr__(self, name):
        return getattr(self.writer, name)


def _assert_complete(run: Path, steps: list[int]):
    """The run has its checkpoint at the last step, and metrics.csv one header and one whole row per logged step."""
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith(f"ckpt-{steps[-1]}")
    lines = (run / "metrics.csv").read_bytes().split(b"\r\n")
    assert lines[-1] == b"" and sum(line.startswith(b"step,") for line in lines) == 1  # no cut row, one header
    assert runs.read_metrics(run / "metrics.csv")["step"].tolist() == steps


def test_the_writes_that_fail_below_are_those_of_a_tiny_run(facades_root, tmp_path, monkeypatch):
    disk = FullDisk(tmp_path / "run", monkeypatch)
    training.train(facades_root, tmp_path / "run", "tiny", **TINY)
    assert {name for name, _ in disk.writes} == {name for name, _ in WRITES}  # every file it writes fails once below
    assert [write for write in disk.writes if write in WRITES] == WRITES  # in this order
    _assert_complete(tmp_path / "run", [2, 4])


#: The writes a full disk is tried at: every file's first (the run folder's own, and its first interval's), its second
#: interval's metrics row and logs (appended, after a first), and the last checkpoint (resumed from the one before it).
#: The second interval's other writes take the same paths as the first's (test_the_writes_that_fail_below_... lists all).
FULL_DISK_AT = [write for write in WRITES if write[1] == 1 or write in (("metrics.csv", 2), ("logs", 2))]


@pytest.mark.slow  # two runs for each write
@pytest.mark.parametrize("fail", FULL_DISK_AT, ids=[f"{name}-{n}" for name, n in FULL_DISK_AT])
def test_a_full_disk_at_any_write_stops_the_run_naming_the_file_then_the_same_call_completes_it(
        facades_root, tmp_path, monkeypatch, fail):
    run = tmp_path / "run"
    disk = FullDisk(run, monkeypatch, fail)
    with pytest.raises(guards.DiskFull) as stopped:
        training.train(facades_root, run, "tiny", **TINY)
    assert str(stopped.value).startswith(f"{run / fail[0]}: the disk is full; free space, then run the same command again")
    disk.fail = None  # space freed
    model = training.train(facades_root, run, "tiny", **TINY)
    assert int(model.gen_optimizer.iterations.numpy()) == 4
    _assert_complete(run, [2, 4])


def test_a_full_disk_is_one_line_from_the_command_line(facades_root, tmp_path, monkeypatch, capsys):
    FullDisk(tmp_path / "run", monkeypatch, ("config.json", 1))
    code = main(["train", "--data", str(facades_root), "--preset", "tiny", "--out", str(tmp_path / "run"), "--steps", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err == (f"error: {tmp_path / 'run' / 'config.json'}: the disk is full; free space, then run the "
                                 "same command again (the run resumes from its last checkpoint)\n"), err


@pytest.mark.parametrize("text, kept", [
    ("step,gen_total\r\n2,1.5\r\n4,1.", "step,gen_total\r\n2,1.5\r\n"),  # cut short (Ctrl-C in it, then a checkpoint at 4)
    ("step,gen_total\r\n2,1.5\r\n4,1.25\r\n6,1.5\r", "step,gen_total\r\n2,1.5\r\n4,1.25\r\n"),  # cut before its \n
    ("step,gen_total\r\n2,1.5\r\n4,1.25\r\n6,1.5\r\n", "step,gen_total\r\n2,1.5\r\n4,1.25\r\n"),  # after the checkpoint
    ("step,gen_total\r\n2,1.", "step,gen_total\r\n"),  # the header alone is kept: rows follow it
    ("step,gen_to", None),  # a header cut short: the next row starts the file again
    ("", None),
], ids=["row-cut", "row-cut-before-newline", "rows-after-checkpoint", "header-alone", "header-cut", "empty"])
def test_resuming_repairs_a_metrics_file_cut_short(tmp_path, text, kept):
    path = tmp_path / "metrics.csv"
    path.write_bytes(text.encode())
    resume.truncate_metrics(path, 4)
    assert (path.read_bytes().decode() if path.exists() else None) == kept
    runs.append_metrics(path, {"step": 6, "gen_total": 1.0})
    assert path.read_text().count("step,") == 1 and runs.read_metrics(path)["step"].tolist()[-1] == 6


def _damage(checkpoint: str, part: str) -> None:
    """Cut the data file of a checkpoint in half, or empty its index file."""
    path = Path(f"{checkpoint}.data-00000-of-00001" if part == "data" else f"{checkpoint}.index")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2] if part == "data" else b"")


@pytest.mark.parametrize("part", ["data", "index"])
def test_a_damaged_latest_checkpoint_is_skipped_for_the_one_before_it_naming_it(tmp_path, capsys, part):
    variable = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), tmp_path, max_to_keep=2)
    for step in (2, 4):
        variable.assign(float(step))
        manager.save(checkpoint_number=step)
    _damage(manager.latest_checkpoint, part)
    resume.restore_latest(tf.train.Checkpoint(v=variable), tmp_path).assert_existing_objects_matched()
    assert float(variable.numpy()) == 2.0
    assert f"warning: {tmp_path / 'ckpt-4'} cannot be read" in capsys.readouterr().err
    _damage(str(tmp_path / "ckpt-2"), part)
    with pytest.raises(ValueError, match=rf"{tmp_path}: no checkpoint in it can be read: ckpt-4 \(.*\); ckpt-2 \(.*\)\."):
        resume.restore_latest(tf.train.Checkpoint(v=variable), tmp_path)
    assert resume.restore_latest(tf.train.Checkpoint(v=variable), tmp_path / "none") is None


@pytest.mark.slow  # two runs; restore_latest itself is checked above
def test_a_run_resumes_and_loads_from_the_checkpoint_before_a_damaged_one(facades_root, tmp_path, capsys):
    run = tmp_path / "run"
    training.train(facades_root, run, "tiny", **TINY)
    _damage(str(run / "checkpoints" / "ckpt-4"), "data")
    generator, _ = runs.load_generator(run)
    assert f"warning: {run / 'checkpoints' / 'ckpt-4'} cannot be read" in capsys.readouterr().err
    expected = Generator(32, 8)  # the tiny preset's
    tf.train.Checkpoint(generator=expected).restore(str(run / "checkpoints" / "ckpt-2")).expect_partial()
    assert all((a == b).all() for a, b in zip(generator.get_weights(), expected.get_weights(), strict=True))
    model = training.train(facades_root, run, "tiny", **TINY)
    assert f"resuming {run} at step 2 of 4" in capsys.readouterr().out
    assert int(model.gen_optimizer.iterations.numpy()) == 4
    _assert_complete(run, [2, 4])
    _damage(str(run / "checkpoints" / "ckpt-4"), "index")
    _damage(str(run / "checkpoints" / "ckpt-2"), "data")
    with pytest.raises(ValueError, match="no checkpoint in it can be read"):
        runs.load_generator(run)


def _save_checkpoints(directory: Path, steps) -> tf.Variable:
    """A variable checkpointed at each of `steps`, its value the step, as a run's CheckpointManager keeps them (two)."""
    variable = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), directory, max_to_keep=2)
    for step in steps:
        variable.assign(float(step))
        manager.save(checkpoint_number=step)
    return variable


def _lose_state(directory: Path, state: str) -> None:
    """Delete or garble a checkpoint folder's state file, as a sync tool or a copy of only the ckpt-* files does."""
    (directory / "checkpoint").unlink() if state == "missing" else (directory / "checkpoint").write_text("garbage {{{\n")


@pytest.mark.parametrize("state", ["missing", "garbage"])
def test_a_lost_checkpoint_state_file_is_rebuilt_from_the_checkpoint_files_themselves(tmp_path, capsys, state):
    variable = _save_checkpoints(tmp_path, (2, 4, 10))  # ckpt-10 is the newest, though "ckpt-10" < "ckpt-4" as text
    _lose_state(tmp_path, state)
    resume.restore_latest(tf.train.Checkpoint(v=variable), tmp_path).assert_existing_objects_matched()
    assert float(variable.numpy()) == 10.0
    manager = resume.checkpoint_manager(tf.train.Checkpoint(v=variable), tmp_path)  # as a resumed run makes it
    assert capsys.readouterr().err == f"warning: {tmp_path / 'checkpoint'} did not list the checkpoints; it lists " \
                                      "ckpt-4, ckpt-10 again, found from their files\n"
    assert manager.latest_checkpoint == str(tmp_path / "ckpt-10")
    manager.save(checkpoint_number=12)  # keeps two, as before: the oldest is deleted, not orphaned
    assert sorted(p.name for p in tmp_path.glob("*.index")) == ["ckpt-10.index", "ckpt-12.index"]
    resume.checkpoint_manager(tf.train.Checkpoint(v=variable), tmp_path)
    assert capsys.readouterr().err == ""  # a state file that lists them all is left as it is


@pytest.mark.slow  # three runs; the checkpoints found from their files are checked above
@pytest.mark.parametrize("state", ["missing", "garbage"])
def test_a_run_whose_checkpoint_state_file_is_lost_loads_and_resumes_from_its_newest_checkpoint(facades_root, tmp_path,
                                                                                                 capsys, state):
    run = tmp_path / "run"
    training.train(facades_root, run, "tiny", **TINY)
    metrics = (run / "metrics.csv").read_bytes()
    _lose_state(run / "checkpoints", state)
    generator, _ = runs.load_generator(run)  # `translate --run` and `export` load it so
    expected = Generator(32, 8)
    tf.train.Checkpoint(generator=expected).restore(str(run / "checkpoints" / "ckpt-4")).expect_partial()
    assert all((a == b).all() for a, b in zip(generator.get_weights(), expected.get_weights(), strict=True))
    again = training.train(facades_root, run, "tiny", **TINY)  # the same command: finished, nothing trained again
    assert int(again.gen_optimizer.iterations.numpy()) == 4 and (run / "metrics.csv").read_bytes() == metrics
    longer = training.train(facades_root, run, "tiny", **{**TINY, "steps": 6})
    assert f"resuming {run} at step 4 of 6" in capsys.readouterr().out
    assert int(longer.gen_optimizer.iterations.numpy()) == 6
    _assert_complete(run, [2, 4, 6])
    assert sorted(p.name for p in (run / "checkpoints").glob("*.index")) == ["ckpt-4.index", "ckpt-6.index"]


class _Model:
    """What checkpoint_on_interrupt reads of a model: its step."""

    def __init__(self, step: int):
        self.gen_optimizer = type("Optimizer", (), {"iterations": tf.Variable(step)})()


def test_a_second_ctrl_c_while_the_checkpoint_is_saved_neither_cuts_it_short_nor_loses_the_line(capsys):
    saved = []

    def save(step):  # the second Ctrl-C arrives while the sample and the checkpoint are written
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        saved.append(step)

    # Ctrl-C as in a terminal, whatever this process inherited (a background job starts with it ignored)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), stopping.checkpoint_on_interrupt(_Model(7), save, 10):
            raise KeyboardInterrupt  # the first Ctrl-C, during fit
        assert saved == [7]
        assert capsys.readouterr().err == "interrupted at step 7 of 10; saved a checkpoint there: run the same " \
                                          "command again to resume\n"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C interrupts again afterwards
    finally:
        signal.signal(signal.SIGINT, inherited)


def _at_step(monkeypatch, step: int, action) -> None:
    """Call action() at the end of training step `step` (counted from the run's first step), as a user might act then."""
    real = runs.StopAtStep.on_train_batch_end

    def on_train_batch_end(self, batch, logs=None):
        real(self, batch, logs)
        if self.step == step:
            action()

    monkeypatch.setattr(runs.StopAtStep, "on_train_batch_end", on_train_batch_end)


def _empty(run: Path) -> None:
    for path in list(run.iterdir()):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.mark.slow  # trains tiny runs for several seconds: the full tier
@pytest.mark.parametrize("how", ["deleted", "replaced", "emptied"])
def test_a_run_folder_deleted_while_training_stops_the_run_in_one_line_writing_nothing_more(facades_root, tmp_path,
                                                                                           monkeypatch, capsys, how):
    run = tmp_path / "run"
    act = {"deleted": lambda: shutil.rmtree(run), "replaced": lambda: (shutil.rmtree(run), run.mkdir()),
           "emptied": lambda: _empty(run)}[how]
    _at_step(monkeypatch, 3, act)  # after the checkpoint at step 2
    code = main(["train", "--data", str(facades_root), "--preset", "tiny", "--out", str(run), "--steps", "6",
                 "--log-every", "2", "--checkpoint-every", "2"])
    err = capsys.readouterr().err  # the progress bar's line may stand before it
    assert code == 2 and err.count("error: ") == 1 and "Traceback" not in err and (
        f"error: {run}: the run folder was deleted, replaced or emptied while training, at step 4: nothing more is "
        "written; run the same command again to start the run over\n") in err, err
    assert (sorted(p.name for p in run.iterdir()) if run.exists() else None) == {"deleted": None, "replaced": [],
                                                                                "emptied": []}[how]
