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
    assert float(tf.reduce_min(x)) == 1.0 and float(tf.reduce_max(y)) == -1.0
    x, y = data.example_batch(tmp_path, 1, image_size=8, direction="AtoB")
    assert float(tf.reduce_max(x)) == -1.0 and float(tf.reduce_min(y)) == 1.0


def test_jitter_is_identical_on_both_halves(tmp_path):
    rng = np.random.default_rng(0)
    half = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    _write(tmp_path / "1.png", np.concatenate([half, half], axis=1))
    dataset = data.paired_dataset(tmp_path, image_size=64, seed=3)
    for inputs, targets in dataset.repeat(20):
        np.testing.assert_array_equal(inputs.numpy(), targets.numpy())
    outputs = [x.numpy() for x, _ in dataset.repeat(20)]
    assert any(np.abs(a - b).max() > 0.1 for a, b in zip(outputs, outputs[1:])), "jitter never changes anything"


def test_jitter_crops_and_mirrors():
    image = tf.reshape(tf.linspace(-1.0, 1.0, 64 * 64 * 3), (64, 64, 3))
    flips = crops = 0
    for s in range(30):
        x, _ = data.jitter(image, image, 64, tf.constant([s, 0], tf.int64))
        resized = data.resize(image, int(round(64 * data.JITTER_SCALE)))
        corners = {tuple(np.round(v, 4)) for v in (resized[0, 0].numpy(), resized[0, -1].numpy())}
        flips += float(x[0, 0, 0]) > float(x[0, -1, 0])  # the ramp runs left to right unless mirrored
        crops += tuple(np.round(x[0, 0].numpy(), 4)) not in corners
    assert 5 < flips < 25 and crops > 20


def test_same_seed_same_batches(facades_root):
    first = [x.numpy() for x, _ in data.paired_dataset(facades_root / "val", image_size=32, seed=7).take(5)]
    second = [x.numpy() for x, _ in data.paired_dataset(facades_root / "val", image_size=32, seed=7).take(5)]
    np.testing.assert_array_equal(first, second)


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


# downloads ---------------------------------------------------------------------------------


@pytest.fixture
def file_server(tmp_path):
    """An HTTP server on loopback serving tmp_path/served; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
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
    root = data.download("facades", cache_dir=tmp_path / "cache", sha256=digest)
    assert data.list_pairs(root / "train") == [root / "train" / "1.png"]
    assert digest in capsys.readouterr().out and (tmp_path / "cache" / "facades.sha256").read_text().startswith(digest)
    assert not (tmp_path / "cache" / "facades.tar.gz").exists()  # downloaded here: unpacked, then removed
    monkeypatch.setenv("P2P_DATASETS_URL", "http://127.0.0.1:9")  # nothing listens there
    assert data.download("facades", cache_dir=tmp_path / "cache") == root


def test_a_wrong_checksum_is_refused_and_the_file_removed(file_server, tmp_path, monkeypatch):
    served, url = file_server
    _tar(served / "facades.tar.gz", {"facades/train/1.png": _png_pair()})
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    with pytest.raises(data.DataError, match="is not the expected 00ff; the file was removed"):
        data.download("facades", cache_dir=tmp_path / "cache", sha256="00ff")
    assert not (tmp_path / "cache" / "facades.tar.gz").exists() and not (tmp_path / "cache" / "facades").exists()


def test_an_archive_copied_by_hand_is_used_and_kept(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    _tar(cache / "maps.tar.gz", {"maps/train/1.png": _png_pair()})
    monkeypatch.setenv("P2P_DATASETS_URL", "http://127.0.0.1:9")  # offline
    root = data.download("maps", cache_dir=cache)
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
        data.download("maps", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "cache" / "maps").exists()


def test_download_refuses_links(file_server, tmp_path, monkeypatch):
    served, url = file_server
    with tarfile.open(served / "maps.tar.gz", "w:gz") as tar:
        link = tarfile.TarInfo("maps/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    with pytest.raises(data.DataError, match="links, devices"):
        data.download("maps", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "maps" / "passwd").exists()


@pytest.mark.parametrize("damage", ["truncated", "not gzip"])
def test_a_broken_archive_is_named(file_server, tmp_path, monkeypatch, damage):
    served, url = file_server
    _tar(served / "night2day.tar.gz", {f"night2day/train/{i}.png": np.random.default_rng(i).bytes(20000) for i in range(5)})
    whole = (served / "night2day.tar.gz").read_bytes()
    (served / "night2day.tar.gz").write_bytes(whole[: len(whole) // 2] if damage == "truncated" else b"<html>not found</html>")
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    with pytest.raises(data.DataError, match=r"night2day.tar.gz: truncated, or not a .tar.gz archive"):
        data.download("night2day", cache_dir=tmp_path / "cache")


def test_a_server_that_never_answers_times_out(tmp_path, monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections (the kernel does) and never says a word
    try:
        monkeypatch.setenv("P2P_DATASETS_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        with pytest.raises(ConnectionError, match="no answer for 1 s"):
            data.download("edges2shoes", cache_dir=tmp_path / "cache", timeout=1)
        assert time.monotonic() - start < 30
    finally:
        silent.close()


def test_download_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("P2P_DATASETS_URL", "http://127.0.0.1:9")
    with pytest.raises(ConnectionError, match="python -m p2p facades"):
        data.download("cityscapes", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="released ones"):
        data.download("imagenet")


def test_a_folder_of_mixed_sizes_makes_batches_and_trains(tmp_path):
    # Real folders mix sizes (512x194, 512x231 among 512x256): each pair is resized on its own.
    rng = np.random.default_rng(0)
    for i, (width, height) in enumerate([(512, 256), (512, 194), (512, 231), (256, 256)]):
        _write(tmp_path / f"{i}.jpg", rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    inputs, targets = data.example_batch(tmp_path, 4, image_size=32)
    assert inputs.shape == targets.shape == (4, 32, 32, 3)
    batch = next(iter(data.paired_dataset(tmp_path, image_size=32, batch_size=4, seed=0)))
    assert batch[0].shape == (4, 32, 32, 3)
    from p2p import training

    model = training.train(tmp_path, tmp_path / "run", "tiny", steps=2, log_every=2, progress=False)
    assert int(model.gen_optimizer.iterations.numpy()) == 2


def test_a_decompression_bomb_is_named_not_a_traceback(tmp_path, monkeypatch):
    _write(tmp_path / "huge.png", np.zeros((32, 64, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 2048 pixels is then over twice the limit: a "bomb"
    with pytest.raises(data.DataError, match=r"huge.png: too large to decode safely"):
        data.list_pairs(tmp_path)
