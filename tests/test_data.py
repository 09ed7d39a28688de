"""Paired data: the pipeline, jitter, every kind of bad input, and downloads from a loopback server."""

import functools
import hashlib
import http.server
import io
import re
import socket
import tarfile
import threading
import time

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
    inputs, targets = next(iter(data.paired_dataset(tmp_path, image_size=16, jitter=False, shuffle=False, batch_size=2)))
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
    inputs, targets = next(iter(data.paired_dataset(tmp_path, image_size=16, jitter=False, shuffle=False,
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
    batch = next(iter(data.paired_dataset(folder, image_size=16, jitter=False, shuffle=False, batch_size=3,
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
    whole = tf.concat([data.resize(half, load) for half in data.load_pair(tmp_path / "1.png")], axis=-1).numpy()
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
    dataset = data.paired_dataset(tmp_path, image_size=8, jitter=False, shuffle=False)
    first = [x.numpy() for x, _ in dataset]  # a whole pass: the cache is complete only at its end
    _write(tmp_path / "1.png", np.full((8, 16, 3), 255, np.uint8))
    second = [x.numpy() for x, _ in dataset]
    # exact: 8x8 halves are not resized, and levels 0 and 255 are exactly -1 and +1 (see test_direction_picks_the_halves)
    assert first[0].max() == -1.0 and second[0].max() == (1.0 if reread else -1.0)


# downloads ---------------------------------------------------------------------------------


@pytest.fixture
def file_server(tmp_path):
    """An HTTP server on loopback serving tmp_path/served; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)  # quick shutdown
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def _png_pair():
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_download_unpacks_once_records_its_checksum_then_works_offline(file_server, tmp_path, monkeypatch, capsys):
    served, url = file_server
    _tar(served / "facades.tar.gz", {"facades/train/1.png": _png_pair()})
    digest = hashlib.sha256((served / "facades.tar.gz").read_bytes()).hexdigest()
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    root = datasets.download("facades", cache_dir=tmp_path / "cache", sha256=digest)
    assert data.list_pairs(root / "train") == [root / "train" / "1.png"]
    assert digest in capsys.readouterr().out and (tmp_path / "cache" / "facades.sha256").read_text().startswith(digest)
    assert not (tmp_path / "cache" / "facades.tar.gz").exists()  # downloaded here: unpacked, then removed
    monkeypatch.setenv("P2P_DATASETS_URL", "http://127.0.0.1:9")  # nothing listens there
    assert datasets.download("facades", cache_dir=tmp_path / "cache") == root


def test_a_wrong_checksum_is_refused_and_the_file_removed(file_server, tmp_path, monkeypatch):
    served, url = file_server
    _tar(served / "facades.tar.gz", {"facades/train/1.png": _png_pair()})
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    with pytest.raises(data.DataError, match="is not the expected 00ff; the file was removed"):
        datasets.download("facades", cache_dir=tmp_path / "cache", sha256="00ff")
    assert not (tmp_path / "cache" / "facades.tar.gz").exists() and not (tmp_path / "cache" / "facades").exists()


def test_an_archive_copied_by_hand_is_used_and_kept(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    _tar(cache / "maps.tar.gz", {"maps/train/1.png": _png_pair()})
    monkeypatch.setenv("P2P_DATASETS_URL", "http://127.0.0.1:9")  # offline
    root = datasets.download("maps", cache_dir=cache)
    assert (root / "train" / "1.png").exists() and (cache / "maps.tar.gz").exists()


@pytest.mark.parametrize("members, message", [
    ({"maps/ok.txt": b"fine", "../escaped.txt": b"evil"}, "expected everything in a folder maps/"),
    ({"maps/ok.txt": b"fine", "maps/../../escaped.txt": b"evil"}, "refused to unpack 'maps/../../escaped.txt'"),
    ({"other/train/1.png": b"x"}, "expected everything in a folder maps/, found other"),
])
def test_download_refuses_unsafe_or_unexpected_archives(file_server, tmp_path, monkeypatch, members, message):
    served, url = file_server
    _tar(served / "maps.tar.gz", members)
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    with pytest.raises(data.DataError, match=re.escape(message)):
        datasets.download("maps", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "cache" / "maps").exists()


def test_download_refuses_links(file_server, tmp_path, monkeypatch):
    served, url = file_server
    with tarfile.open(served / "maps.tar.gz", "w:gz") as tar:
        link = tarfile.TarInfo("maps/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    with pytest.raises(data.DataError, match="links, devices"):
        datasets.download("maps", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "maps" / "passwd").exists()


@pytest.mark.parametrize("damage", ["truncated", "not gzip"])
def test_a_broken_archive_is_named(file_server, tmp_path, monkeypatch, damage):
    served, url = file_server
    _tar(served / "night2day.tar.gz", {f"night2day/train/{i}.png": np.random.default_rng(i).bytes(20000) for i in range(5)})
    whole = (served / "night2day.tar.gz").read_bytes()
    (served / "night2day.tar.gz").write_bytes(whole[: len(whole) // 2] if damage == "truncated" else b"<html>not found</html>")
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    with pytest.raises(data.DataError, match=r"night2day.tar.gz: truncated, or not a .tar.gz archive"):
        datasets.download("night2day", cache_dir=tmp_path / "cache")


def test_a_server_that_never_answers_times_out(tmp_path, monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections (the kernel does) and never says a word
    try:
        monkeypatch.setenv("P2P_DATASETS_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        with pytest.raises(ConnectionError, match="no answer for 1 s"):
            datasets.download("edges2shoes", cache_dir=tmp_path / "cache", timeout=1)
        assert time.monotonic() - start < 30
    finally:
        silent.close()


def test_download_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("P2P_DATASETS_URL", "http://127.0.0.1:9")
    with pytest.raises(ConnectionError, match="python -m p2p facades"):
        datasets.download("cityscapes", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="released ones"):
        datasets.download("imagenet")


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
