"""Bad input to the command line and to `train`: one line naming the option or path and the fix, nothing written first.

In-process (`p2p.__main__.main`), so that each case takes a fraction of a second; tests/test_cli.py runs the
command line in child processes.
"""

import errno
import gc
import json
import os
import shutil
from pathlib import Path

import pytest

from p2p import runs, training
from p2p.__main__ import main
from p2p.config import Config
from p2p.runtime import guards


def _listing(folder: Path) -> dict:
    """Every file under `folder` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "d", "--out", "r", "--threads", "-1", "0"], "argument --threads: -1 is out of range: give 0 to 1024"),
    (["train", "--data", "d", "--out", "r", "--threads", "2", "1000000"], "argument --threads: 1000000 is out of range"),
    (["train", "--data", "d", "--out", "r", "--seed", "-1"], "argument --seed: -1 is out of range: give 0 to 2147483647"),
    (["train", "--data", "d", "--out", "r", "--steps", "0"], "argument --steps: 0 is out of range: give 1 or more"),
    (["train", "--data", "d", "--out", "r", "--log-every", "x"], "argument --log-every: 'x' is not a whole number"),
    (["train", "--data", "d", "--out", ""], "argument --out: an empty path: give a file or folder"),
    (["facades", "f", "--size", "0"], "argument --size: 0 is out of range: give 16 to 4096"),
    (["facades", "f", "--seed", "-3"], "argument --seed: -3 is out of range"),
    (["ablate", "--out", "a", "--segmenter-steps", "0"], "argument --segmenter-steps: 0 is out of range"),
    (["troubleshoot", "--out", "t", "--seeds", "0", "-1"], "argument --seeds: -1 is out of range"),
    (["bookruns", "l1", "--steps", "-4"], "argument --steps: -4 is out of range"),
    (["export", "l1-cgan", ""], "argument out: an empty path"),
])
def test_an_option_out_of_range_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_folder_that_is_not_a_run_is_never_trained_into(facades_root, tmp_path, monkeypatch, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    before = _listing(tmp_path)
    with pytest.raises(ValueError, match=r"mine: not a run folder \(no config.json\) and not empty \(notes.txt\): give a "
                                         "new or empty folder"):
        training.train(facades_root, mine, "tiny", steps=2, progress=False)
    monkeypatch.chdir(mine)  # `--out .`, or `--out ""` before the command line refused it
    assert main(["train", "--data", str(facades_root), "--preset", "tiny", "--out", ".", "--steps", "2"]) == 2
    assert "error: .: not a run folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="/: not a run folder"):
        guards.check_run_folder(Path("/"))  # `--out /`
    (tmp_path / "file").write_text("a file")
    assert main(["train", "--data", str(facades_root), "--preset", "tiny", "--out", str(tmp_path / "file")]) == 2
    assert "file: a file, not a folder: give a folder for the run" in capsys.readouterr().err
    assert _listing(tmp_path) == {**before, "file": b"a file"}


@pytest.mark.parametrize("settings, message", [
    ({"seed": -1}, r"seed must be from 0 to 2\*\*31 - 1, not -1"),
    ({"seed": 2**40}, r"seed must be from 0 to 2\*\*31 - 1"),
    ({"l1_weight": "abc"}, "l1_weight must be a finite number, not 'abc'"),
    ({"skips": 1}, "skips must be true or false, not 1"),
    ({"ngf": True}, "ngf must be a whole number, not True"),
    ({"image_size": 100}, "image_size must be a power of two"),
    ({"n_layers": 5}, "image_size 32 is too small for n_layers=5"),
])
def test_a_setting_the_networks_cannot_take_is_refused_before_anything_is_written(facades_root, tmp_path, settings,
                                                                                  message):
    with pytest.raises(ValueError, match=message):
        training.train(facades_root, tmp_path / "run", "tiny", steps=2, progress=False, **settings)
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_interval_shorter_than_the_logging_one_is_refused(facades_root, tmp_path):
    with pytest.raises(ValueError, match=r"checkpoint_every \(3\) is less than log_every \(7\): checkpoints are written at "
                                         "logged steps; give checkpoint_every 7 or more, or log more often"):
        training.train(facades_root, tmp_path / "run", "tiny", steps=20, log_every=7, checkpoint_every=3, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content, message", [
    ("{}", r"missing setting\(s\) batch_size, direction"),
    (json.dumps({**Config().to_dict(), "image_size": "big"}), "image_size must be a whole number, not 'big'"),
    (json.dumps({**Config().to_dict(), "colour": "red"}), r"unknown setting\(s\) colour; written by a newer p2p"),
    ("", "Expecting value"),
])
def test_a_damaged_or_foreign_config_json_is_named_in_one_line(tmp_path, capsys, content, message):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(content)
    with pytest.raises(ValueError, match=rf"run/config.json: not a p2p run's config \({message}"):
        runs.load_generator(tmp_path / "run")
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "config.json" in err
    assert err.count("config.json") == 1  # named once


def test_deleting_the_lock_file_does_not_let_a_second_process_in(tmp_path):
    run = tmp_path / "run"
    with guards.lock(run):
        (run / "lock").unlink()  # `rm run/lock` while a run trains
        with pytest.raises(guards.RunInUse, match="is in use"), guards.lock(run):  # another open file: flock refuses it
            pass
    with guards.lock(run):  # released when the holder is done
        pass


def test_export_into_a_file_or_an_unwritable_folder_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("a file")
    assert main(["export", "l1-cgan", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'file'}: a file, not a folder: give a folder for generator.json " \
                                      "and generator.bin\n"
    assert (tmp_path / "file").read_text() == "a file"
    locked = tmp_path / "read-only"
    real_open = Path.open

    def refuse_writes(path, mode="r", *args, **kwargs):  # a read-only disk (chmod does not stop root, who runs CI)
        if path.is_relative_to(locked) and set(mode) & set("wax+"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse_writes)
    assert main(["export", "l1-cgan", str(locked)]) == 2
    assert capsys.readouterr().err == f"error: {locked / 'generator.bin.partial'}: read-only file system: give a path on " \
                                      "a writable disk\n"


def test_facades_never_write_over_a_dataset(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "train").mkdir(parents=True)
    (mine / "train" / "1.jpg").write_bytes(b"my photo")
    assert main(["facades", str(mine), "--size", "16"]) == 2
    assert capsys.readouterr().err == f"error: {mine} already holds a dataset ({mine / 'train' / '1.jpg'}, ...) that p2p " \
                                      "did not write: give a new or empty folder for the procedural facades\n"
    assert _listing(mine) == {"train/1.jpg": b"my photo"}

    made = tmp_path / "made"
    assert main(["facades", str(made), "--size", "16"]) == 0 and capsys.readouterr().out == f"{made}\n"
    written = _listing(made)
    assert [sum(name.startswith(split + "/") for name in written) for split in ("train", "val", "test")] == [400, 100, 106]
    assert main(["facades", str(made), "--size", "16"]) == 0 and _listing(made) == written  # complete: left as it is
    assert main(["facades", str(made), "--size", "16", "--seed", "1"]) == 2
    assert "holds the procedural facades of seed 0 at 16 px: give another folder for seed 1 at 16 px" in capsys.readouterr().err
    (made / "test" / "106.jpg").unlink()  # interrupted: the stamp says incomplete
    stamp = json.loads((made / "facades.json").read_text())
    (made / "facades.json").write_text(json.dumps({**stamp, "complete": False}))
    assert main(["facades", str(made), "--size", "16"]) == 0 and _listing(made) == written


def test_training_into_an_unwritable_folder_is_one_line(facades_root, tmp_path, monkeypatch, capsys):
    locked = tmp_path / "read-only"
    real_mkdir = Path.mkdir

    def refuse_folders(path, *args, **kwargs):  # a read-only disk (chmod does not stop root, who runs CI)
        if path.is_relative_to(locked):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse_folders)
    assert main(["train", "--data", str(facades_root), "--preset", "tiny", "--out", str(locked / "run"),
                     "--steps", "2"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {locked / 'run'}: read-only file system: give a path on " \
                                                       "a writable disk"


@pytest.fixture(scope="module")
def tiny_run(facades_root, tmp_path_factory):
    """A tiny run trained 2 steps, checkpointed at step 2: copied by the tests that change it."""
    run = tmp_path_factory.mktemp("tiny") / "run"
    training.train(facades_root, run, "tiny", steps=2, log_every=2, checkpoint_every=2, progress=False)
    return run


@pytest.mark.slow  # trains tiny runs for several seconds: the full tier
@pytest.mark.parametrize("setting, value", [("upsample", "resize"), ("norm", "instance"), ("ngf", 16), ("skips", False)])
def test_checkpoints_of_another_architecture_are_refused_in_one_line_by_every_load(tiny_run, facades_root, tmp_path, capfd,
                                                                                   setting, value):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    config = run / "config.json"  # edited by hand, or the checkpoints copied from another run
    config.write_text(json.dumps({**json.loads(config.read_text()), setting: value}))
    before = _listing(run)
    message = (rf"{run / 'checkpoints' / 'ckpt-2'}: this checkpoint holds other networks than the run's config.json "
               r"describes \(.+\)\. Put back the config.json it was trained with, or train into a new run folder\.$")
    with pytest.raises(ValueError, match=message):
        runs.load_generator(run)  # `translate --run`, `export`, the book runs
    with pytest.raises(ValueError, match=message):
        training.train(facades_root, run, "tiny", steps=4, log_every=2, progress=False, **{setting: value})
    assert main(["export", str(run), str(tmp_path / "out")]) == 2
    gc.collect()  # TensorFlow warns of a checkpoint's unused values when its restore is freed
    err = capfd.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "WARNING" not in err, err[-3000:]
    assert not (tmp_path / "out").exists()
    assert {k: v for k, v in _listing(run).items() if k != "lock"} == {k: v for k, v in before.items() if k != "lock"}


def test_a_batch_larger_than_the_training_set_is_refused_before_anything_is_written(facades_root, tmp_path, capsys):
    few = tmp_path / "few"
    few.mkdir()
    for name in ("1.jpg", "2.jpg", "3.jpg"):
        shutil.copy(facades_root / "train" / name, few / name)
    with pytest.raises(ValueError, match=rf"^batch_size 4 is more than the 3 training pairs in {few}: give --set "
                                         r"batch_size=3 or less, or more pairs$"):
        training.train(few, tmp_path / "run", "tiny", steps=2, batch_size=4, progress=False)
    assert main(["train", "--data", str(few), "--preset", "tiny", "--out", str(tmp_path / "run"), "--set",
                 "batch_size=4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: batch_size 4 is more than the 3 training pairs") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("assignment, message", [
    ("epochs=Infinity", "epochs must be a finite number, not inf"),
    ("epochs=1e308", "epochs must be more than 0 and at most 10**6, not 1e+308"),
    ("l1_weight=Infinity", "l1_weight must be a finite number, not inf"),
    ("l1_weight=1e300", "l1_weight must be from 0 to 10**6, not 1e+300"),
    ("ngf=100000", "ngf must be from 1 to 128, not 100000"),
    ("ndf=100000", "ndf must be from 1 to 128, not 100000"),
    ("image_size=1048576", "image_size must be from 8 to 2048, not 1048576"),
    ("batch_size=1000000", "batch_size must be from 1 to 1024, not 1000000"),
    ("steps=4294967296", "steps must be a whole number of steps, from 1 to 2**31 - 1, not 4294967296"),
    ("n_layers=1000000000000", "n_layers must be from 0 to 9, not 1000000000000"),
])
def test_every_numeric_setting_is_finite_and_in_a_range_that_fits_memory(facades_root, tmp_path, capsys, assignment,
                                                                         message):
    code = main(["train", "--data", str(facades_root), "--preset", "tiny", "--out", str(tmp_path / "run"),
                 "--set", assignment])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: {message}\n", err[-2000:]
    assert not (tmp_path / "run").exists()


def test_a_compact_run_such_as_a_shipped_book_run_is_never_trained_into(facades_root, tmp_path):
    import shutil

    from p2p.lab import bookruns

    copy = tmp_path / "l1"
    shutil.copytree(bookruns.folder("l1"), copy)
    before = sorted(p.name for p in copy.iterdir())
    with pytest.raises(ValueError, match="a compact run .* cannot be trained further; give a new run folder"):
        training.train(facades_root, copy, "tiny", steps=2, progress=False)
    assert sorted(p.name for p in copy.iterdir()) == before
