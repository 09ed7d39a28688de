"""`python -m p2p translate`: outputs checked before any is written, folders, any image size, an --out that cannot be written.

The command runs in-process through `p2p.__main__.main` (a child process costs seconds of TensorFlow's import), on a compact
run folder holding an untrained tiny generator: what is tested is the command, not training.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from p2p import inference, runs
from p2p.__main__ import main
from p2p.config import get_preset
from p2p.lab import translating
from p2p.lab.bookruns import save_weights_to
from p2p.models import Generator
from p2p.runtime import files


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A compact run folder (config.json, generator.npz) of an untrained generator at the tiny preset (32x32, ngf 8)."""
    folder = tmp_path_factory.mktemp("run")
    config = get_preset("tiny")
    files.write_json(folder / "config.json", config.to_dict())
    save_weights_to(Generator(config.image_size, config.ngf), folder / "generator.npz")
    return folder


def _image(path, height, width, seed=0):
    """A random RGB image of height x width written to path (created with its folder); its pixels returned."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def _translate(capsys, run, *args):
    """Run `python -m p2p translate --run RUN ARGS...` in-process: (exit code, stdout, stderr)."""
    code = main(["translate", "--run", str(run), *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _refused(code, err, *named):
    """The command refused on one line, `error: ...`, naming each of `named`."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for name in named:
        assert str(name) in lines[0], lines[0]
    return lines[0]


def _size(path):
    with Image.open(path) as image:
        return image.height, image.width


# 1. A user's files are never written over without --overwrite; an input image never --------------------------------


def test_an_input_image_is_never_replaced_even_with_overwrite(run, tmp_path, capsys):
    holiday = tmp_path / "pics" / "holiday.png"
    _image(holiday, 40, 56)
    before = holiday.read_bytes()
    for extra in ([], ["--overwrite"]):
        code, _, err = _translate(capsys, run, holiday, "--out", holiday.parent, *extra)
        line = _refused(code, err, holiday)
        assert "input image" in line and "another --out" in line
        assert holiday.read_bytes() == before
    assert os.listdir(holiday.parent) == ["holiday.png"]


def test_earlier_outputs_are_replaced_only_with_overwrite(run, tmp_path, capsys):
    _image(tmp_path / "in" / "a.png", 40, 56)
    out = tmp_path / "out"
    code, stdout, err = _translate(capsys, run, tmp_path / "in" / "a.png", "--out", out)
    assert code == 0 and stdout.split() == [str(out / "a.png")], err
    (out / "a.png").write_bytes(b"an earlier output")
    code, _, err = _translate(capsys, run, tmp_path / "in" / "a.png", "--out", out)
    assert "--overwrite" in _refused(code, err, out / "a.png")
    assert (out / "a.png").read_bytes() == b"an earlier output"
    code, _, err = _translate(capsys, run, tmp_path / "in" / "a.png", "--out", out, "--overwrite")
    assert code == 0, err
    assert _size(out / "a.png") == (40, 56)


def test_nothing_is_written_when_a_later_output_is_refused(run, tmp_path, capsys):
    for name in ("a", "b"):
        _image(tmp_path / "in" / f"{name}.png", 32, 32)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.png").write_bytes(b"the user's")
    code, _, err = _translate(capsys, run, tmp_path / "in" / "a.png", tmp_path / "in" / "b.png", "--out", tmp_path / "out")
    _refused(code, err, tmp_path / "out" / "b.png", "--overwrite")
    assert os.listdir(tmp_path / "out") == ["b.png"] and (tmp_path / "out" / "b.png").read_bytes() == b"the user's"


# 2. A missing file, a folder ------------------------------------------------------------------------------------------


def test_a_missing_file_is_named_as_missing(run, tmp_path, capsys):
    _image(tmp_path / "a.png", 32, 32)
    code, _, err = _translate(capsys, run, tmp_path / "a.png", tmp_path / "holliday.png", "--out", tmp_path / "out")
    line = _refused(code, err, tmp_path / "holliday.png", "no such file")
    assert "Delete or replace" not in line
    assert not (tmp_path / "out").exists()  # the good image before it was not translated either


def test_a_folder_is_translated_image_by_image_in_name_order(run, tmp_path, capsys):
    folder = tmp_path / "test"
    _image(folder / "c.png", 32, 32)
    _image(folder / "a.jpg", 32, 64, seed=1)
    (folder / "notes.txt").write_text("not an image")
    _image(folder / "more" / "d.png", 32, 32)  # a subfolder is not entered
    code, stdout, err = _translate(capsys, run, folder, "--out", tmp_path / "out")
    assert code == 0, err
    assert stdout.split() == [str(tmp_path / "out" / "a.png"), str(tmp_path / "out" / "c.png")]
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "c.png"]
    assert _size(tmp_path / "out" / "a.png") == (32, 32)  # a 64x32 file is an A|B pair: its input half


def test_a_folder_without_images_is_refused(run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    code, _, err = _translate(capsys, run, tmp_path / "empty", "--out", tmp_path / "out")
    _refused(code, err, tmp_path / "empty", "no images")
    assert not (tmp_path / "out").exists()


# 3. Each image at its own size ----------------------------------------------------------------------------------------


def test_each_image_is_translated_at_its_own_size(run, tmp_path, capsys):
    _image(tmp_path / "in" / "wide.png", 40, 100)
    _image(tmp_path / "in" / "fits.png", 64, 96)  # sides multiples of the generator's 32
    _image(tmp_path / "in" / "pair.png", 48, 96)  # an A|B pair: its 48x48 input half
    code, _, err = _translate(capsys, run, *(tmp_path / "in" / n for n in ("wide.png", "fits.png", "pair.png")),
                              "--out", tmp_path / "out")
    assert code == 0, err
    sizes = {name: _size(tmp_path / "out" / name) for name in ("wide.png", "fits.png", "pair.png")}
    assert sizes == {"wide.png": (40, 100), "fits.png": (64, 96), "pair.png": (48, 48)}
    lines = err.strip().splitlines()  # one line per padded image
    assert len(lines) == 2, err
    assert str(tmp_path / "in" / "wide.png") in lines[0] and "padded from 40x100 to 64x128" in lines[0]
    assert str(tmp_path / "in" / "pair.png") in lines[1] and "padded from 48x48 to 64x64" in lines[1]


def test_padding_and_cropping_put_every_pixel_back_in_place_through_the_one_test_time_path(run, tmp_path, capsys,
                                                                                        monkeypatch):
    calls = []

    def identity(generator, inputs, **kwargs):  # p2p.inference.translate, replaced by one that gives its input back
        calls.append((tuple(generator.input_shape), tuple(inputs.shape)))
        return inputs

    monkeypatch.setattr(inference, "translate", identity)
    pixels = _image(tmp_path / "in" / "wide.png", 40, 100)
    code, _, err = _translate(capsys, run, tmp_path / "in" / "wide.png", "--out", tmp_path / "out")
    assert code == 0, err
    assert calls == [((None, 64, 128, 3), (1, 64, 128, 3))]  # one image at a time, on the generator rebuilt at 64x128
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "wide.png")), pixels)


def test_the_generator_is_rebuilt_once_per_size(run, tmp_path, capsys, monkeypatch):
    sizes = []
    rebuilt = translating.rebuilt
    monkeypatch.setattr(translating, "rebuilt", lambda generator, height, width: sizes.append((height, width))
                        or rebuilt(generator, height, width))
    for name, height, width in (("a", 40, 100), ("b", 50, 110), ("c", 32, 32), ("d", 64, 100)):
        _image(tmp_path / "in" / f"{name}.png", height, width)
    code, _, err = _translate(capsys, run, tmp_path / "in", "--out", tmp_path / "out")
    assert code == 0, err
    assert sizes == [(64, 128)]  # a, b and d share one; c is the generator's own size


def test_size_resizes_the_shorter_side(run, tmp_path, capsys):
    _image(tmp_path / "wide.png", 40, 100)
    code, _, err = _translate(capsys, run, tmp_path / "wide.png", "--out", tmp_path / "out", "--size", "32")
    assert code == 0, err
    assert _size(tmp_path / "out" / "wide.png") == (32, 80)
    assert "resized from 40x100 to 32x80 (--size)" in err and "padded from 32x80 to 32x96" in err
    code, _, err = _translate(capsys, run, tmp_path / "wide.png", "--out", tmp_path / "out2", "--size", "0")
    _refused(code, err, "--size 0")
    assert not (tmp_path / "out2").exists()


def test_an_image_too_large_for_memory_is_refused_naming_the_size_that_fits(run, tmp_path, capsys, monkeypatch):
    per_pixel = translating.activation_bytes(runs.load_generator(run)[0])
    monkeypatch.setattr(translating, "MEMORY_LIMIT", per_pixel * 4500)  # 64x64 fits; the next size up, 64x96, does not
    _image(tmp_path / "in" / "a.png", 32, 32)
    _image(tmp_path / "in" / "big.png", 100, 130)
    code, _, err = _translate(capsys, run, tmp_path / "in", "--out", tmp_path / "out")
    line = _refused(code, err, tmp_path / "in" / "big.png", "padded to 128x160", "--size N")
    assert "up to 49 fits" in line  # 49x64 pads to 64x64; 50x65 to 64x96
    assert not (tmp_path / "out").exists()
    code, _, err = _translate(capsys, run, tmp_path / "in" / "big.png", "--out", tmp_path / "out", "--size", "49")
    assert code == 0, err
    assert _size(tmp_path / "out" / "big.png") == (49, 64)


@pytest.mark.slow  # builds the paper's generator and decodes a 5000x5000 photo twice: about 5 s
def test_a_5000_pixel_photo_is_refused_for_the_papers_generator_and_fits_the_book_runs(tmp_path):
    Image.new("RGB", (5000, 5000), "grey").save(tmp_path / "photo.png")
    with pytest.raises(ValueError, match=r"photo.png: 5000x5000 \(padded to 5120x5120\) would take up to .* GiB.*--size N"):
        translating.plan(Generator(256, 64), [tmp_path / "photo.png"], [tmp_path / "out.png"])
    book = get_preset("book")
    [job] = translating.plan(Generator(book.image_size, book.ngf), [tmp_path / "photo.png"], [tmp_path / "out.png"])
    assert job.padded == (5120, 5120)


# 4. An --out that cannot be written -----------------------------------------------------------------------------------


def test_an_out_that_is_a_file_is_refused(run, tmp_path, capsys):
    _image(tmp_path / "a.png", 32, 32)
    (tmp_path / "notes").write_text("the user's")
    for out in (tmp_path / "notes", tmp_path / "notes" / "sub"):
        code, _, err = _translate(capsys, run, tmp_path / "a.png", "--out", out)
        assert "give --out a folder" in _refused(code, err, out, "a file")
    assert (tmp_path / "notes").read_text() == "the user's"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_a_read_only_out_is_refused(run, tmp_path, capsys):
    _image(tmp_path / "a.png", 32, 32)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for out in (locked, locked / "sub"):
            code, _, err = _translate(capsys, run, tmp_path / "a.png", "--out", out)
            assert "another --out" in _refused(code, err, out, "cannot be written")
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.slow  # a child process: TensorFlow's import
def test_the_command_refuses_to_replace_its_input(run, tmp_path):
    holiday = tmp_path / "holiday.png"
    _image(holiday, 40, 56)
    before = holiday.read_bytes()
    done = subprocess.run([sys.executable, "-m", "p2p", "translate", "--run", run, holiday, "--out", tmp_path],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {holiday}: is an input image"), done.stderr[-2000:]
    assert holiday.read_bytes() == before
