"""Paired data: the pipeline, jitter and every kind of bad input (downloads: test_downloads.py)."""

import contextlib
import io
import os
import signal
import socket

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from p2p import data
from p2p.lab import datasets


def _write(path, array, **kwargs):
    Image.fromarray(array).save(path, **kwargs)
    return path


def test_pipeline_shapes_range_and_direction(facades_root):
    dataset = data.paired_dataset(facades_root / "train", image_size=32, batch_size=4, seed=0)
    inputs, targets = next(iter(dataset))
    assert inputs.shape == targets.shape == (4, 32, 32, 3)
    assert -1.0 <= float(tf.reduce_min(inputs)) and float(tf.reduce_max(inputs)) <= 1.0


def test_direction_picks_the_halves(tmp_path):
    a, b = np.full((8, 8, 3), 0, np.uint8), np.full((8, 8, 3), 255, np.uint8)
    _write(tmp_path / "1.png", np.concatenate([a, b], axis=1))
    x, y = data.example_batch(tmp_path, 1, image_size=8)  # BtoA: input is B, the right half
    # exact: halves already 8x8 are not resized, and 255 / 127.5 - 1 and 0 / 127.5 - 1 are exactly +1 and -1 in float32
    assert float(tf.reduce_min(x)) == 1.0 and float(tf.reduce_max(y)) == -1.0
    x, y = data.example_batch(tmp_path, 1, image_size=8, direction="AtoB")
    assert float(tf.reduce_max(x)) == -1.0 and float(tf.reduce_min(y)) == 1.0


def test_jitter_is_identical_on_both_halves(tmp_path):
    rng = np.random.default_rng(0)
    half = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    _write(tmp_path / "1.png", np.concatenate([half, half], axis=1))
    dataset = data.paired_dataset(tmp_path, image_size=64, seed=3)
    for inputs, targets in dataset.repeat(20):
        # exact: each half went through the same resize of the same pixels to uint8, then a crop and a flip: copies
        np.testing.assert_array_equal(inputs.numpy(), targets.numpy())
    outputs = [x.numpy() for x, _ in dataset.repeat(20)]
    assert any(np.abs(a - b).max() > 0.1 for a, b in zip(outputs, outputs[1:])), "jitter never changes anything"


def test_jitter_crops_and_mirrors():
    image = tf.reshape(tf.linspace(-1.0, 1.0, 64 * 64 * 3), (64, 64, 3))
    flips = crops = 0
    for s in range(30):
        x, _ = data.jitter(image, image, 64, tf.constant([s, 0], tf.int64))
        resized = data.resize(image, int(round(64 * data.JITTER_SCALE)))
        corners = (resized[0, 0].numpy(), resized[0, -1].numpy())
        flips += float(x[0, 0, 0]) > float(x[0, -1, 0])  # the ramp runs left to right unless mirrored
        # A corner pixel, or a crop elsewhere: the ramp steps by 4e-4 from pixel to pixel, while resizing 6 channels
        # (jitter) and 3 (here) may round differently, by ~1e-7. 1e-5 tells them apart; rounding to 4 decimals did not
        # always (a value near a rounding boundary could round either way).
        crops += min(np.abs(x[0, 0].numpy() - corner).max() for corner in corners) > 1e-5
    assert 5 < flips < 25 and crops > 20


def test_same_seed_same_batches(facades_root):
    first = [x.numpy() for x, _ in data.paired_dataset(facades_root / "val", image_size=32, seed=7).take(5)]
    second = [x.numpy() for x, _ in data.paired_dataset(facades_root / "val", image_size=32, seed=7).take(5)]
    np.testing.assert_array_equal(first, second)  # exact: the same computation on the same files, through uint8


def test_grayscale_and_rgba_are_converted(tmp_path):
    _write(tmp_path / "gray.png", np.full((16, 32), 200, np.uint8))
    _write(tmp_path / "rgba.png", np.full((16, 32, 4), 100, np.uint8))
    inputs, targets = next(iter(data.paired_dataset(tmp_path, image_size=16, augment=False, shuffle=False, batch_size=2)))
    assert inputs.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(inputs[0], 200 / 127.5 - 1, atol=1e-5)
    np.testing.assert_allclose(inputs[1], 100 / 127.5 - 1, atol=1e-5)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("corrupt.jpg", b"this is not a jpeg at all", "cannot be decoded"),
        ("truncated.jpg", "truncated", "cannot be decoded"),
        ("odd.png", "odd", "width 31 is odd"),
    ],
)
def test_bad_files_are_named_before_training(tmp_path, name, content, message):
    good = np.zeros((16, 32, 3), np.uint8)
    _write(tmp_path / "good.png", good)
    if content == "truncated":
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 128, 3), dtype=np.uint8)).save(buffer, "JPEG")
        (tmp_path / name).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif content == "odd":
        _write(tmp_path / name, np.zeros((16, 31, 3), np.uint8))
    else:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(data.DataError, match=message) as error:
        data.paired_dataset(tmp_path)
    assert name in str(error.value)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(data.DataError, match="no images"):
        data.paired_dataset(tmp_path)
    with pytest.raises(data.DataError, match="no such folder.*python -m p2p facades"):
        data.paired_dataset(tmp_path / "missing")


def test_bad_direction():
    with pytest.raises(ValueError, match="AtoB"):
        data.split_pair(tf.zeros([2, 4, 3]), "LtoR")


# what is read, and what is not -------------------------------------------------------------


@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail the test if the body runs longer than `seconds`: a read waiting on a FIFO fails, not hangs."""
    def expire(signum, frame):  # pytest.fail's exception is no OSError: the code under test cannot catch it as one
        pytest.fail(f"still running after {seconds} s: blocked opening a special file?")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs, sockets in folders and SIGALRM are POSIX")
@pytest.mark.parametrize("kind", ["FIFO", "socket"])
def test_a_special_file_named_like_an_image_is_refused_before_anything_is_opened(tmp_path, kind):
    # Before: opening train/9.jpg, a FIFO, waited for a writer for ever (training hung); a socket "cannot be decoded".
    from p2p import training

    (tmp_path / "train").mkdir()
    _write(tmp_path / "train" / "1.png", np.zeros((8, 16, 3), np.uint8))
    special = tmp_path / "train" / "9.jpg"
    listening = socket.socket(socket.AF_UNIX) if kind == "socket" else None
    listening.bind(str(special)) if listening else os.mkfifo(special)
    refusal = rf"9.jpg: not a regular file \(a {kind}\); remove it from the data folder"
    try:
        with _deadline(20):
            for read in (data.list_pairs, data.paired_dataset):
                with pytest.raises(data.DataError, match=refusal):
                    read(tmp_path / "train")
            for read in (data.check_pair_file, data.load_image):
                with pytest.raises(data.DataError, match=refusal):
                    read(special)
            with pytest.raises(data.DataError, match=refusal) as error:
                training.train(tmp_path, tmp_path / "run", "tiny", steps=1, progress=False)
    finally:
        if listening:
            listening.close()
    assert "\n" not in str(error.value) and not (tmp_path / "run").exists()  # one line, and nothing written


_SHOWN = {"A": ((255, 0, 0), (0, 255, 0)), "B": ((0, 0, 255), (255, 255, 255))}  # each half's (top, bottom) colour


def _bands(image):
    """The mean colours, as levels 0-255, of the top and bottom halves of a [-1, 1] image."""
    levels = (np.asarray(image, np.float64) + 1) * 127.5
    middle = levels.shape[0] // 2
    return levels[:middle].mean(axis=(0, 1)), levels[middle:].mean(axis=(0, 1))


@pytest.mark.parametrize("orientation", [6, 8])  # stored turned a quarter, shown turned back clockwise (6) or not (8)
def test_an_exif_rotated_jpeg_is_read_as_shown_by_the_checks_training_and_translate(tmp_path, orientation):
    # Before: read as stored, 32 wide and 64 high, so the A|B split cut it across the wrong axis.
    shown = np.zeros((32, 64, 3), np.uint8)  # as a photo viewer shows it: A on the left, B on the right
    for column, half in ((slice(0, 32), "A"), (slice(32, 64), "B")):
        shown[:16, column], shown[16:, column] = _SHOWN[half]
    turn = Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    Image.fromarray(shown).transpose(turn).save(tmp_path / "1.jpg", quality=95, exif=exif)
    assert Image.open(tmp_path / "1.jpg").size == (32, 64)  # stored portrait

    def assert_halves(a, b):
        for image, half in ((a, "A"), (b, "B")):
            for band, colour in zip(_bands(image), _SHOWN[half]):
                np.testing.assert_allclose(band, colour, atol=12)  # JPEG's loss, mostly at the edges between colours

    assert data.check_pair_file(tmp_path / "1.jpg") == (64, 32)  # the checks
    assert data.list_pairs(tmp_path) == [(tmp_path / "1.jpg",)]
    image = data.load_image(tmp_path / "1.jpg")  # translate
    assert image.shape == (32, 64, 3)
    assert_halves(image[:, :32], image[:, 32:])
    assert_halves(*data.load_pair((tmp_path / "1.jpg",), "AtoB"))
    inputs, targets = next(iter(data.paired_dataset(tmp_path, image_size=32, augment=False, shuffle=False,
                                                    direction="AtoB")))  # training: 32x32 halves, not resized
    assert_halves(inputs[0], targets[0])


@pytest.mark.parametrize("present, absent", [("A", "B"), ("B", "A")])
def test_a_lone_a_or_b_folder_says_what_is_missing(tmp_path, present, absent):
    # Before: "no images (.jpg, .jpeg, .png, .bmp) in this folder."
    (tmp_path / present).mkdir()
    for name in ("1.jpg", "2.jpg"):
        _write(tmp_path / present / name, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(data.DataError, match=rf"{present}/ holds 2 images, but there is no {absent}/ beside it\. Pairs are "
                                             r"given as A\|B files side by side in one folder, or as folders A/ and B/") as error:
        data.paired_dataset(tmp_path)
    assert "\n" not in str(error.value)
    (tmp_path / present / "train").mkdir()
    with pytest.raises(data.DataError, match=rf"{present}/ holds 2 images and the folders train, but there is no {absent}/"):
        data.list_pairs(tmp_path)


def test_skipped_files_are_said_once_and_hidden_files_and_folders_are_passed_over(tmp_path, capsys):
    # Before: the gif, tif, webp and notes were skipped without a word, and the hidden ._1.png stopped the run.
    _write(tmp_path / "1.png", np.zeros((8, 16, 3), np.uint8))
    for name in ("2.gif", "3.tif", "4.webp"):
        _write(tmp_path / name, np.zeros((8, 16, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("where these came from")
    (tmp_path / ".DS_Store").write_bytes(b"\0" * 8)
    (tmp_path / "._1.png").write_bytes(b"\0\5\26\7 Mac OS X")  # macOS's record of 1.png's attributes, not an image
    (tmp_path / "train").mkdir()
    assert data.list_pairs(tmp_path) == [(tmp_path / "1.png",)]
    data.paired_dataset(tmp_path)  # a run lists its folder again: said once
    notes = [line for line in capsys.readouterr().err.splitlines() if str(tmp_path) in line]
    assert notes == [f"{tmp_path}: skipped 4 files of other formats (2.gif, 3.tif, 4.webp and 1 more); only .jpg, .jpeg, "
                     ".png, .bmp files are read: convert any you meant to PNG."]
    (tmp_path / "gifs").mkdir()
    _write(tmp_path / "gifs" / "1.gif", np.zeros((8, 16, 3), np.uint8))
    with pytest.raises(data.DataError, match=r"gifs: no images \(.jpg, .jpeg, .png, .bmp\) in this folder; skipped 1 of "
                                             r"other formats \(1.gif\): convert them to PNG"):
        data.list_pairs(tmp_path / "gifs")


@pytest.mark.parametrize("name, make, message", [
    ("missing.jpg", lambda path: None, "missing.jpg: no such file"),
    ("photos", lambda path: path.mkdir(), "photos: is a folder, not an image file"),
])
def test_an_image_to_translate_that_is_missing_or_a_folder_is_said_so(tmp_path, name, make, message):
    # Before: "cannot be decoded as an image ([Errno 2] No such file or directory: ...). Delete or replace it."
    make(tmp_path / name)
    with pytest.raises(data.DataError, match=message) as error:
        data.load_image(tmp_path / name)
    assert "Delete or replace" not in str(error.value) and "\n" not in str(error.value)


# one decoding path ------------------------------------------------------------------------


@pytest.mark.parametrize("name, levels, save", [
    ("tiff.png", (0, 128, 255), lambda path, grey: Image.fromarray(grey).save(path, format="TIFF")),
    ("one-bit.bmp", (0, 255), lambda path, grey: Image.fromarray(grey).convert("1").save(path)),
    ("grey16.png", (0, 128, 255), lambda path, grey: Image.fromarray(grey.astype(np.uint16) * 257).save(path)),
])
def test_training_and_translate_read_alike_what_tensorflow_could_not(tmp_path, name, levels, save):
    # tf.io.decode_image (training, before) refused the first two and read a 16-bit mid-grey as 128, where PIL's
    # convert("RGB") (translate, before) read 255: now both read through data.decode_rgb, and see 128.
    grey = np.random.default_rng(0).choice(np.array(levels, np.uint8), (16, 32))
    save(tmp_path / name, grey)
    expected = data.normalize(np.repeat(grey[..., None], 3, axis=-1))  # a 16-bit 128 * 257 reads as 128
    inputs, targets = next(iter(data.paired_dataset(tmp_path, image_size=16, augment=False, shuffle=False,
                                                    direction="AtoB")))
    # exact: 16x16 halves are not resized, the pipeline's round trip through uint8 gives back the same levels, and the
    # same levels give the same floats (/ 127.5 - 1 is correctly rounded wherever it runs)
    np.testing.assert_array_equal(tf.concat([inputs[0], targets[0]], axis=1), expected)
    np.testing.assert_array_equal(data.load_image(tmp_path / name), expected)  # what `translate` reads
    assert next(iter(data.paired_dataset(tmp_path, image_size=8, seed=0)))[0].shape == (1, 8, 8, 3)


def _palette_with_transparency(path):
    image = Image.new("P", (4, 4))
    image.putpalette([10, 20, 30, 200, 100, 50])
    image.save(path, transparency=0)


@pytest.mark.parametrize("name, save, rgb", [
    ("palette.png", _palette_with_transparency, (10, 20, 30)),
    ("grey-alpha.png", lambda path: Image.new("LA", (4, 4), (200, 50)).save(path), (200, 200, 200)),
    ("rgba.png", lambda path: Image.new("RGBA", (4, 4), (100, 150, 200, 0)).save(path), (100, 150, 200)),
    ("cmyk.tif", lambda path: Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(path), (255, 0, 0)),
    ("big-endian16.tif", lambda path: Image.fromarray(np.full((4, 4), 40000, ">u2")).save(path), (round(40000 / 257),) * 3),
    ("int32.tif", lambda path: Image.fromarray(np.full((4, 4), 40000, np.int32)).save(path), (round(40000 / 257),) * 3),
])
def test_every_mode_becomes_rgb_and_16_bits_are_scaled_not_clipped(tmp_path, name, save, rgb):
    save(tmp_path / name)
    decoded = data.decode_rgb(tmp_path / name)
    assert decoded.dtype == np.uint8 and decoded.shape == (4, 4, 3)
    np.testing.assert_array_equal(decoded, np.broadcast_to(np.array(rgb, np.uint8), (4, 4, 3)))


# separate A/ and B/ folders ------------------------------------------------------------------


def _ab_root(root, splits, names=("1.jpg", "2.jpg", "3.jpg")):
    """The official code's layout, root/A/<split>/name and root/B/<split>/name, with A and B of different sizes."""
    rng = np.random.default_rng(0)
    for split in splits:
        for half, shape in (("A", (24, 40, 3)), ("B", (32, 32, 3))):
            (root / half / split).mkdir(parents=True)
            for name in names:
                _write(root / half / split / name, rng.integers(0, 256, shape, dtype=np.uint8))
    return root


@pytest.mark.parametrize("splits", [("train", "test"), ("",)], ids=["root/A/train", "root/A"])
def test_separate_a_and_b_folders_pair_by_name(tmp_path, splits):
    root = _ab_root(tmp_path / "root", splits)
    folder = data.split_folder(root, "train")
    a_dir, b_dir = (root / half / splits[0] for half in "AB")
    assert data.list_pairs(folder) == [(a_dir / n, b_dir / n) for n in ("1.jpg", "2.jpg", "3.jpg")]
    inputs, targets = data.example_batch(folder, 3, image_size=16, direction="AtoB")
    np.testing.assert_allclose(inputs[1], data.resize(data.load_image(a_dir / "2.jpg"), 16), atol=1e-6)  # A is the input
    np.testing.assert_allclose(targets[1], data.resize(data.load_image(b_dir / "2.jpg"), 16), atol=1e-6)
    swapped, _ = data.example_batch(folder, 3, image_size=16, direction="BtoA")
    np.testing.assert_array_equal(swapped, targets)  # exact: the same resize of the same B files
    batch = next(iter(data.paired_dataset(folder, image_size=16, augment=False, shuffle=False, batch_size=3,
                                          direction="AtoB")))
    np.testing.assert_allclose(batch[0], inputs, atol=1 / 127.5)
    np.testing.assert_allclose(batch[1], targets, atol=1 / 127.5)
    before = data.fingerprint(data.list_pairs(folder))
    _write(b_dir / "3.jpg", np.zeros((32, 48, 3), np.uint8))  # only B's file changes
    assert data.fingerprint(data.list_pairs(folder)) != before


def test_a_name_missing_from_one_side_is_named(tmp_path):
    root = _ab_root(tmp_path, ("train",))
    for name in ("2.jpg", "3.jpg"):
        (root / "B" / "train" / name).unlink()
    with pytest.raises(data.DataError, match=r"B/train: lacks 2 of the files in .*A/train \(2.jpg, 3.jpg\)"):
        data.paired_dataset(data.split_folder(root, "train"))
    _write(root / "B" / "train" / "extra.jpg", np.zeros((8, 8, 3), np.uint8))
    (root / "A" / "train" / "2.jpg").unlink()
    (root / "A" / "train" / "3.jpg").unlink()
    with pytest.raises(data.DataError, match=r"A/train: lacks 1 of the files in .*B/train \(extra.jpg\)"):
        data.list_pairs(data.split_folder(root, "train"))
    for file in (root / "B" / "train").iterdir():
        file.unlink()
    (root / "B" / "train").rmdir()
    with pytest.raises(data.DataError, match=r"B/train: no such folder, though .*A/train exists"):
        data.list_pairs(data.split_folder(root, "train"))


@pytest.mark.slow  # trains or measures for several seconds: the full tier, not `make check`
def test_training_reads_separate_a_and_b_folders(tmp_path):
    from p2p import training

    root = _ab_root(tmp_path / "root", ("train", "val"))
    model = training.train(root, tmp_path / "run", "tiny", steps=2, log_every=2, progress=False)
    assert int(model.gen_optimizer.iterations.numpy()) == 2


# the cache ----------------------------------------------------------------------------------


def test_pairs_are_cached_at_the_jitter_size_within_uint8_rounding(tmp_path):
    rng = np.random.default_rng(1)
    _write(tmp_path / "1.png", rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))  # halves of 25x30, not square
    load = int(round(16 * data.JITTER_SCALE))
    whole = tf.concat([data.resize(half, load) for half in data.load_pair((tmp_path / "1.png",))], axis=-1).numpy()
    places = [whole[i:i + 16, j:j + 16] for i in range(load - 15) for j in range(load - 15)]  # every crop, mirrored or not
    places += [place[:, ::-1] for place in places]
    cached = data.paired_dataset(tmp_path, image_size=16, seed=4).repeat(8)
    streamed = data.paired_dataset(tmp_path, image_size=16, seed=4, cache=False).repeat(8)
    for (x, y), (x2, y2) in zip(cached, streamed):
        # exact: both read through the same function to uint8 and crop with the same seeds; only the cache differs
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
        pair = tf.concat([x[0], y[0]], axis=-1).numpy()
        # a crop of the full-size float pair, within the cache's uint8 rounding: half a level (0.5 / 127.5); one leaves room
        assert min(np.abs(pair - place).max() for place in places) <= 1 / 127.5


@pytest.mark.parametrize("budget, reread", [(6 * 8 * 8 - 1, True), (6 * 8 * 8, False)])
def test_pairs_over_the_cache_budget_are_decoded_on_every_pass(tmp_path, monkeypatch, budget, reread):
    monkeypatch.setattr(data, "CACHE_BUDGET", budget)  # one pair at 8x8 as uint8 needs 6 * 8 * 8 bytes
    _write(tmp_path / "1.png", np.zeros((8, 16, 3), np.uint8))
    dataset = data.paired_dataset(tmp_path, image_size=8, augment=False, shuffle=False)
    first = [x.numpy() for x, _ in dataset]  # a whole pass: the cache is complete only at its end
    _write(tmp_path / "1.png", np.full((8, 16, 3), 255, np.uint8))
    second = [x.numpy() for x, _ in dataset]
    # exact: 8x8 halves are not resized, and levels 0 and 255 are exactly -1 and +1 (see test_direction_picks_the_halves)
    assert first[0].max() == -1.0 and second[0].max() == (1.0 if reread else -1.0)


def test_a_folder_of_mixed_sizes_makes_batches(tmp_path):
    # Real folders mix sizes (512x194, 512x231 among 512x256): each pair is resized on its own.
    rng = np.random.default_rng(0)
    for i, (width, height) in enumerate([(512, 256), (512, 194), (512, 231), (256, 256)]):
        _write(tmp_path / f"{i}.jpg", rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    inputs, targets = data.example_batch(tmp_path, 4, image_size=32)
    assert inputs.shape == targets.shape == (4, 32, 32, 3)
    batch = next(iter(data.paired_dataset(tmp_path, image_size=32, batch_size=4, seed=0)))
    assert batch[0].shape == (4, 32, 32, 3)


@pytest.mark.slow  # trains or measures for several seconds: the full tier, not `make check`
def test_a_folder_of_mixed_sizes_trains(tmp_path):
    from p2p import training

    rng = np.random.default_rng(0)
    for i, (width, height) in enumerate([(512, 256), (512, 194), (512, 231), (256, 256)]):
        _write(tmp_path / f"{i}.jpg", rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    model = training.train(tmp_path, tmp_path / "run", "tiny", steps=2, log_every=2, progress=False)
    assert int(model.gen_optimizer.iterations.numpy()) == 2


def test_a_decompression_bomb_is_named_not_a_traceback(tmp_path, monkeypatch):
    _write(tmp_path / "huge.png", np.zeros((32, 64, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 2048 pixels is then over twice the limit: a "bomb"
    with pytest.raises(data.DataError, match=r"huge.png: too large to decode safely"):
        data.list_pairs(tmp_path)


def test_a_chapter_dataset_is_procedural_a_released_name_or_a_folder(tmp_path, facades_root):
    assert datasets.dataset(str(facades_root), image_size=64) == (facades_root, "BtoA")
    assert datasets.dataset(str(facades_root), image_size=64, direction="AtoB")[1] == "AtoB"
    procedural, direction = datasets.dataset("procedural", image_size=32, root=tmp_path)
    assert procedural == tmp_path / "facades-32" and (procedural / "test").is_dir() and direction == "BtoA"
    assert datasets.DIRECTIONS["edges2shoes"] == "AtoB"
    with pytest.raises(data.DataError, match="no such folder"):
        datasets.dataset(str(tmp_path / "missing"))
    assert datasets.evaluation_split(facades_root) == facades_root / "test"
    (tmp_path / "maps" / "val").mkdir(parents=True)  # the released maps: train and val only
    assert datasets.evaluation_split(tmp_path / "maps") == tmp_path / "maps" / "val"


def test_checking_a_folder_decodes_each_file_once_and_a_first_few_only_those(facades_root, monkeypatch):
    decoded = []
    decode = data._decode
    monkeypatch.setattr(data, "_decode", lambda file: decoded.append(file) or decode(file))
    pairs = data.list_pairs(facades_root / "val")
    assert len(decoded) == len(pairs) == len(set(decoded)) == 100
    decoded.clear()
    assert data.list_pairs(facades_root / "val", 3) == pairs[:3] and decoded == [pair[0] for pair in pairs[:3]]
    decoded.clear()
    data.paired_dataset(pairs, image_size=32)  # the pairs listed already: not decoded again to check them
    assert decoded == []
