"""`python -m p2p translate`: outputs checked before any is written, folders, any image size, an --out that cannot be written.

The command runs in-process through `p2p.__main__.main` (a child process costs seconds of TensorFlow's import), on a compact
run folder holding an untrained tiny generator: what is tested is the command, not training.
"""

import os
import subprocess
import sys
import threading
import time

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
    earlier = (out / "a.png").read_bytes()
    _image(tmp_path / "in" / "a.png", 32, 32)
    code, _, err = _translate(capsys, run, tmp_path / "in" / "a.png", "--out", out)
    assert "--overwrite to replace earlier outputs" in _refused(code, err, out / "a.png")
    assert (out / "a.png").read_bytes() == earlier
    code, _, err = _translate(capsys, run, tmp_path / "in" / "a.png", "--out", out, "--overwrite")
    assert code == 0, err
    assert _size(out / "a.png") == (32, 32)


def test_nothing_is_written_when_a_later_output_is_refused(run, tmp_path, capsys):
    for name in ("a", "b"):
        _image(tmp_path / "in" / f"{name}.png", 32, 32)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.png").write_bytes(b"the user's")
    code, _, err = _translate(capsys, run, tmp_path / "in" / "a.png", tmp_path / "in" / "b.png", "--out", tmp_path / "out")
    _refused(code, err, tmp_path / "out" / "b.png", "translate did not write it")
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
    assert _size(tmp_path / "out" / "a.png") == (32, 64)  # whole: A|B pairs only with --pairs


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
    _image(tmp_path / "in" / "double.png", 48, 96)  # whole, though twice as wide as high (A|B pairs: --pairs)
    code, _, err = _translate(capsys, run, *(tmp_path / "in" / n for n in ("wide.png", "fits.png", "double.png")),
                              "--out", tmp_path / "out")
    assert code == 0, err
    sizes = {name: _size(tmp_path / "out" / name) for name in ("wide.png", "fits.png", "double.png")}
    assert sizes == {"wide.png": (40, 100), "fits.png": (64, 96), "double.png": (48, 96)}
    lines = err.strip().splitlines()  # one line per image
    assert len(lines) == 3, err
    assert lines[0].startswith(f"{tmp_path / 'in' / 'wide.png'}: the whole image") and "padded from 40x100 to 64x128" in lines[0]
    assert lines[1] == f"{tmp_path / 'in' / 'fits.png'}: the whole image, 64x96"
    assert lines[2].startswith(f"{tmp_path / 'in' / 'double.png'}: the whole image") and "padded from 48x96 to 64x96" in lines[2]


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


# 5. Only what translate wrote is ever replaced; two translates into one --out (issue 28) -----------------------------


def test_a_file_translate_did_not_write_is_never_replaced_even_with_overwrite(run, tmp_path, capsys):
    # Before: the user's own photos/IMG_1.png was taken for an earlier output of IMG_1.jpg and, with --overwrite, replaced.
    photos = tmp_path / "photos"
    _image(photos / "IMG_1.jpg", 40, 56)
    _image(photos / "IMG_1.png", 20, 20, seed=1)
    before = (photos / "IMG_1.png").read_bytes()
    for extra in ([], ["--overwrite"]):
        code, stdout, err = _translate(capsys, run, photos / "IMG_1.jpg", "--out", photos, *extra)
        line = _refused(code, err, photos / "IMG_1.png", "translate did not write it", "another --out")
        assert stdout == "" and "--overwrite to replace" not in line
    assert (photos / "IMG_1.png").read_bytes() == before and sorted(os.listdir(photos)) == ["IMG_1.jpg", "IMG_1.png"]


def test_what_translate_writes_is_marked_as_its_own(run, tmp_path, capsys):
    _image(tmp_path / "a.png", 32, 32)
    code, _, err = _translate(capsys, run, tmp_path / "a.png", "--out", tmp_path / "out")
    assert code == 0, err
    assert translating.written_by_translate(tmp_path / "out" / "a.png")
    assert not translating.written_by_translate(tmp_path / "a.png")
    os.mkfifo(tmp_path / "fifo.png")  # never opened: a FIFO would wait for a writer
    assert not translating.written_by_translate(tmp_path / "fifo.png")


def test_a_translate_into_an_out_another_is_writing_waits_then_checks_again(run, tmp_path, capsys):
    # Before: the outputs were checked seconds before the writes, with nothing held: two translates into one --out both
    # exited 0, and the second replaced the first's output.
    _image(tmp_path / "mine" / "1.png", 32, 32)
    out = tmp_path / "out"
    result = {}

    def second():
        try:
            result["value"] = translating.translate_files(run, [tmp_path / "mine"], out)
        except ValueError as err:
            result["value"] = err

    waiting = f"{out}: another translate is writing into it; waiting for it to finish"
    with translating.writing_into(out):  # another translate holds --out, and writes 1.png meanwhile
        thread = threading.Thread(target=second)
        thread.start()
        err, deadline = "", time.monotonic() + 120
        while waiting not in err and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
            err += capsys.readouterr().err
        assert waiting in err and thread.is_alive() and "value" not in result, err  # it waits
        _image(tmp_path / "theirs" / "1.png", 32, 32, seed=2)
        assert translating.translate_files(run, [tmp_path / "theirs" / "1.png"], tmp_path / "elsewhere")
        (tmp_path / "elsewhere" / "1.png").replace(out / "1.png")
        theirs = (out / "1.png").read_bytes()
    thread.join(timeout=120)
    assert isinstance(result["value"], ValueError) and f"{out / '1.png'}: exists" in str(result["value"])
    assert (out / "1.png").read_bytes() == theirs and os.listdir(out) == ["1.png"]


@pytest.mark.slow  # two child processes: TensorFlow's import
def test_two_translates_into_one_out_at_once_lose_no_output(run, tmp_path):
    # Before: both exited 0, and out/1.png was one of the two photos' translation, the other lost without a word.
    for folder, seed in (("a", 1), ("b", 2)):
        _image(tmp_path / folder / "1.png", 32, 32, seed=seed)
    command = [sys.executable, "-m", "p2p", "translate", "--run", run, "--out", tmp_path / "out"]
    children = [subprocess.Popen(command + [tmp_path / folder / "1.png"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for folder in ("a", "b")]
    done = [(child.wait(timeout=300), *child.communicate()) for child in children]
    assert sorted(code for code, _, _ in done) == [0, 2], done
    refused = next(err for code, _, err in done if code == 2)
    assert refused.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'out' / '1.png'}: exists"), refused
    assert translating.written_by_translate(tmp_path / "out" / "1.png") and os.listdir(tmp_path / "out") == ["1.png"]


# 6. Which reading each input gets: whole, or an A|B pair's input half only with --pairs (issue 28) -------------------


def test_an_image_is_translated_whole_unless_pairs_is_given_and_each_reading_is_said(run, tmp_path, capsys):
    # Before: a 64x32 photo was taken for an A|B pair (its right half translated, without a line) and a 66x32 A|B file,
    # which train reads as a pair, was translated whole.
    _image(tmp_path / "in" / "wide.png", 32, 64)
    _image(tmp_path / "in" / "ab.png", 32, 66)
    code, _, err = _translate(capsys, run, tmp_path / "in" / "wide.png", tmp_path / "in" / "ab.png", "--out", tmp_path / "out")
    assert code == 0, err
    assert (_size(tmp_path / "out" / "wide.png"), _size(tmp_path / "out" / "ab.png")) == ((32, 64), (32, 66))
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{tmp_path / 'in' / 'wide.png'}: the whole image, 32x64"), err
    assert "--pairs" in lines[0] and lines[1].startswith(f"{tmp_path / 'in' / 'ab.png'}: the whole image, 32x66"), err
    code, _, err = _translate(capsys, run, tmp_path / "in", "--out", tmp_path / "pairs", "--pairs")
    assert code == 0, err
    assert (_size(tmp_path / "pairs" / "wide.png"), _size(tmp_path / "pairs" / "ab.png")) == ((32, 32), (32, 33))
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"{tmp_path / 'in' / 'ab.png'}: an A|B pair, its input half B (the run's direction BtoA), "
                               "32x33"), err
    assert lines[1].startswith(f"{tmp_path / 'in' / 'wide.png'}: an A|B pair, its input half B"), err


def test_pairs_reads_as_training_reads(run, tmp_path, capsys):
    _image(tmp_path / "odd" / "1.png", 32, 65)
    code, _, err = _translate(capsys, run, tmp_path / "odd", "--out", tmp_path / "out", "--pairs")
    _refused(code, err, tmp_path / "odd" / "1.png", "width 65 is odd")
    assert not (tmp_path / "out").exists()
    a = _image(tmp_path / "sides" / "A" / "1.png", 32, 32, seed=1)
    b = _image(tmp_path / "sides" / "B" / "1.png", 40, 40, seed=2)  # BtoA: B is the input
    assert a.shape != b.shape
    code, stdout, err = _translate(capsys, run, tmp_path / "sides", "--out", tmp_path / "out", "--pairs")
    assert code == 0 and stdout.split() == [str(tmp_path / "out" / "1.png")], err
    assert _size(tmp_path / "out" / "1.png") == (40, 40)
    assert err.startswith(f"{tmp_path / 'sides' / 'B' / '1.png'}: B of the pair"), err


# 7. Files of other formats (issue 28) --------------------------------------------------------------------------------


def test_other_formats_are_skipped_in_a_folder_with_a_line_and_refused_when_named(run, tmp_path, capsys):
    # Before: a .gif or .webp named on the command line was translated, though train never reads one.
    _image(tmp_path / "in" / "1.png", 32, 32)
    for name in ("2.gif", "3.webp", "4.tif"):
        Image.new("RGB", (32, 32)).save(tmp_path / "in" / name)
    (tmp_path / "in" / "._1.png").write_bytes(b"\0\5\26\7 Mac OS X")  # macOS's record of 1.png, not an image
    code, stdout, err = _translate(capsys, run, tmp_path / "in", "--out", tmp_path / "out")
    assert code == 0 and stdout.split() == [str(tmp_path / "out" / "1.png")], err
    assert f"{tmp_path / 'in'}: skipped 3 files of other formats (2.gif, 3.webp, 4.tif)" in err
    for name, said in (("2.gif", "a .gif file"), ("._1.png", "macOS")):
        code, _, err = _translate(capsys, run, tmp_path / "in" / "1.png", tmp_path / "in" / name, "--out", tmp_path / "o2")
        _refused(code, err, tmp_path / "in" / name, said)
        assert not (tmp_path / "o2").exists()


def test_the_shipped_book_runs_are_refused_as_an_out(run, tmp_path, capsys, monkeypatch):
    # Before: `translate --out p2p/lab/trained/l1` wrote its PNGs among the shipped run's files.
    from p2p.lab import bookruns

    shipped = tmp_path / "package" / "trained"  # in place of p2p/lab/trained, which the test leaves alone
    (shipped / "l1").mkdir(parents=True)
    monkeypatch.setattr(bookruns, "SHIPPED", shipped)
    _image(tmp_path / "a.png", 32, 32)
    for out in (shipped, shipped / "l1", shipped / "l1" / "new"):
        code, _, err = _translate(capsys, run, tmp_path / "a.png", "--out", out)
        _refused(code, err, out, "shipped book runs", "another --out")
    assert os.listdir(shipped) == ["l1"] and os.listdir(shipped / "l1") == []
