"""Downloads of the released datasets from servers on loopback: checked archives, and hostile or broken servers and
archives refused with one line and nothing left behind (appendix "Scaling up")."""

import functools
import gzip
import hashlib
import http.server
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from p2p import data
from p2p.__main__ import main
from p2p.lab import datasets

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
    assert data.list_pairs(root / "train") == [(root / "train" / "1.png",)]
    assert digest in capsys.readouterr().out and (tmp_path / "cache" / "facades.sha256").read_text().startswith(digest)
    assert not (tmp_path / "cache" / "facades.tar.gz").exists()  # downloaded here: unpacked, then removed
    monkeypatch.setenv("P2P_DATASETS_URL", "http://127.0.0.1:9")  # nothing listens there
    assert datasets.download("facades", cache_dir=tmp_path / "cache") == root


def test_a_wrong_checksum_is_refused_and_the_file_removed(file_server, tmp_path, monkeypatch):
    served, url = file_server
    _tar(served / "facades.tar.gz", {"facades/train/1.png": _png_pair()})
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    other = "00ff" * 16
    with pytest.raises(data.DataError, match=re.escape(f"{url}/facades.tar.gz: sha256 ") + "[0-9a-f]{64}" + re.escape(
            f" is not the expected {other}; nothing of the download was kept: check the expected checksum, or try again")):
        datasets.download("facades", cache_dir=tmp_path / "cache", sha256=other)
    assert list((tmp_path / "cache").iterdir()) == []


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
    ({"other/train/1.png": b"x"}, "expected everything in a folder maps/, found 'other'"),
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
        with pytest.raises(ConnectionError, match=r"no complete answer \(status line and headers\) in 1 s"):
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


# hostile or broken servers and archives ---------------------------------------------------------


@pytest.fixture
def serve():
    """Starts loopback HTTP servers whose GET calls respond(handler); yields the function that starts one, giving its URL."""
    servers = []

    def start(respond):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                try:
                    respond(self)
                except OSError:  # the client gave up on us: what these servers are for
                    pass

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _trickle(seconds, every=0.2, length=1 << 20):
    """A server that announces `length` bytes, then sends one every `every` seconds for `seconds`, then hangs up."""
    def respond(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(length))
        handler.end_headers()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            handler.wfile.write(b"x")
            time.sleep(every)
    return respond


def _stream(megabytes, length=None, chunked=False):
    """A server that sends `megabytes` MiB of zeros at once, announcing `length` bytes (or nothing), chunked or not."""
    def respond(handler):
        handler.send_response(200)
        if length is not None:
            handler.send_header("Content-Length", str(length))
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        block = bytes(64 * 1024)
        for _ in range(megabytes * 16):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")
    return respond


def test_a_trickling_server_is_given_up_and_nothing_kept(serve, tmp_path, monkeypatch):
    monkeypatch.setenv("P2P_DATASETS_URL", serve(_trickle(seconds=6)))  # a byte every 0.2 s: never 1 s of silence
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=r"facades.tar.gz \(it sent \d+ B in 1 s, under the 64 KiB needed\)\. "
                                              r"Try again later or with a longer --timeout") as raised:
        datasets.download("facades", cache_dir=tmp_path / "cache", timeout=1)
    assert time.monotonic() - start < 4  # given up after one to two `timeout`s, not when the server stops
    assert "\n" not in str(raised.value) and list((tmp_path / "cache").iterdir()) == []  # no .partial


@pytest.mark.parametrize("server, message", [
    (_stream(8), "it sent more than the 1 MiB facades.tar.gz can be"),  # without end, as far as we know
    (_stream(1, length=10 << 30), "it announced 10 GiB, more than the 1 MiB facades.tar.gz can be"),
    (_stream(2, length=1000, chunked=True), "it sent more than the 1000 B it announced"),
    (_stream(0, length=100_000), "it sent 0 B of the 97.7 KiB it announced"),  # cut short
], ids=["endless", "announced too much", "more than announced", "cut short"])
def test_a_server_sending_too_much_or_too_little_is_refused(serve, tmp_path, monkeypatch, server, message):
    monkeypatch.setitem(datasets.LIMITS, "facades", datasets.LIMITS["facades"]._replace(download=1 << 20))
    monkeypatch.setenv("P2P_DATASETS_URL", serve(server))
    with pytest.raises(ConnectionError, match=re.escape(message)) as raised:
        datasets.download("facades", cache_dir=tmp_path / "cache")
    assert "\n" not in str(raised.value) and "or copy facades.tar.gz into" in str(raised.value)
    assert list((tmp_path / "cache").iterdir()) == []  # no .partial, no archive


def _sparse_tar_gz(name, apparent):
    """A .tar.gz of one GNU sparse member: 512 bytes stored, `apparent` bytes once unpacked (the rest a hole)."""
    info = tarfile.TarInfo(name)
    info.type, info.size = tarfile.GNUTYPE_SPARSE, 512
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header[386:410] = b"%011o\0%011o\0" % (0, 512)  # the first (offset, size) of data; the other three are zeros
    header[483:495] = b"%011o\0" % apparent  # the size once unpacked
    header[148:156] = b" " * 8  # the checksum is of the header with its own field as spaces
    header[148:155] = b"%06o\0" % sum(header)
    return gzip.compress(bytes(header) + b"x" * 512 + bytes(1024))


def test_a_hand_made_sparse_member_is_what_it_claims():
    archive = _sparse_tar_gz("maps/1.jpg", 2 << 30)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        (member,) = tar.getmembers()
    assert member.issparse() and member.isfile() and member.size == 2 << 30 and len(archive) < 4096


@pytest.mark.parametrize("kind, message", [
    ("2,000 files", "holds more than 1,312 files and folders, the most a facades archive may (the release: about 606 images)"),
    ("4 MiB of zeros", "unpacks to more than 1 MiB, the most a facades archive may (the release: about 29 MiB)"),
    ("2 GiB sparse", "refused to unpack 'facades/train/1.jpg': only plain files and folders are unpacked (links, devices, "
                     "sparse files"),
])
def test_an_archive_that_would_expand_too_far_is_refused(file_server, tmp_path, monkeypatch, kind, message):
    served, url = file_server
    archive = served / "facades.tar.gz"
    if kind == "2,000 files":  # the limit: twice the release's 606, and 100
        _tar(archive, {f"facades/train/{i}.jpg": b"" for i in range(2000)})
    elif kind == "4 MiB of zeros":  # 4 KiB of gzip
        monkeypatch.setitem(datasets.LIMITS, "facades", datasets.LIMITS["facades"]._replace(unpacked=1 << 20))
        _tar(archive, {"facades/train/1.jpg": bytes(4 << 20)})
    else:
        archive.write_bytes(_sparse_tar_gz("facades/train/1.jpg", 2 << 30))
    assert archive.stat().st_size < 64 * 1024
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    with pytest.raises(data.DataError, match=re.escape(message)) as raised:
        datasets.download("facades", cache_dir=tmp_path / "cache")
    assert "\n" not in str(raised.value) and "Nothing of the download was kept: try again later" in str(raised.value)
    assert list((tmp_path / "cache").iterdir()) == []  # nothing unpacked, and the refused archive not kept


def test_ctrl_c_keeps_no_partial_download_and_says_what_to_do(file_server, tmp_path, monkeypatch, capsys):
    served, url = file_server
    _tar(served / "facades.tar.gz", {"facades/train/1.png": _png_pair()})
    monkeypatch.setenv("P2P_DATASETS_URL", url)

    class Interrupted(datasets.tqdm):
        def update(self, n=1):
            raise KeyboardInterrupt  # as Ctrl-C would, with the first bytes written

    monkeypatch.setattr(datasets, "tqdm", Interrupted)
    assert main(["download", "facades", "--cache", str(tmp_path / "cache")]) == 130
    err = capsys.readouterr().err
    assert "interrupted: facades is not ready (nothing half-downloaded is kept); run the same command again\n" in err
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.slow  # a child process that imports TensorFlow
def test_ctrl_c_in_the_command_line_exits_130_with_one_line(serve, tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "P2P_DATASETS_URL": serve(_trickle(seconds=120, every=0.05))}
    # as in a terminal: a shell that started the tests in the background (CI, nohup) passes SIGINT on ignored
    child = subprocess.Popen([sys.executable, "-m", "p2p", "download", "facades", "--cache", str(cache)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    partial, start = cache / "facades.tar.gz.partial", time.monotonic()
    try:
        while not partial.exists():  # the download has begun
            assert child.poll() is None and time.monotonic() - start < 120, child.communicate()
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130 and "Traceback" not in err
    assert err.splitlines()[-1] == ("interrupted: facades is not ready (nothing half-downloaded is kept); "
                                    "run the same command again")
    assert not partial.exists() and not (cache / "facades.tar.gz").exists()


# checksums, the cache's own folders, and what is kept ----------------------------------------------


def _listing(folder):
    """Every file under `folder` with its bytes (folders as None)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


@pytest.fixture
def by_hand(tmp_path, monkeypatch):
    """A cache holding facades.tar.gz copied there by hand, offline; yields (cache, the archive's sha256)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    _tar(cache / "facades.tar.gz", {"facades/train/1.png": _png_pair()})
    monkeypatch.setenv("P2P_DATASETS_URL", "http://127.0.0.1:9")  # nothing listens there
    return cache, hashlib.sha256((cache / "facades.tar.gz").read_bytes()).hexdigest()


@pytest.mark.parametrize("form", ["{}", " {}", "{}\n", "sha256:{}", " SHA256:{} "], ids=repr)
def test_a_checksum_is_read_in_its_usual_shapes_and_says_which_was_checked(by_hand, capsys, form):
    cache, digest = by_hand
    given = form.format(digest.upper() if "SHA" in form else digest)
    assert main(["download", "facades", "--cache", str(cache), "--sha256", given]) == 0
    assert f"(sha256 {digest}, the one expected)" in capsys.readouterr().out
    assert (cache / "facades" / "train" / "1.png").exists() and (cache / "facades.tar.gz").exists()  # used, and kept


@pytest.mark.parametrize("shape", ["{:.63}", "{}0", "g{}", "sha256 {}", "md5:{}", "0x{}", "", " "])
def test_a_checksum_of_the_wrong_shape_is_refused_before_anything(by_hand, capsys, shape):
    cache, digest = by_hand
    given = shape.format(digest)
    before = _listing(cache)
    assert main(["download", "facades", "--cache", str(cache), "--sha256", given]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: sha256 {given!r} is not a checksum: give the archive's 64 hex digits, alone or after "
                   "\"sha256:\"; nothing was read or deleted\n")
    assert _listing(cache) == before  # the archive copied by hand is still there, and nothing was unpacked


def test_a_wrong_checksum_never_deletes_an_archive_copied_by_hand(by_hand):
    cache, digest = by_hand
    other = hashlib.sha256(b"another archive").hexdigest()
    before = _listing(cache)
    with pytest.raises(data.DataError, match=re.escape(
            f"facades.tar.gz: sha256 {digest} is not the expected {other}; the file is kept (p2p did not download it): "
            "check the expected checksum, or delete the file and download again")) as raised:
        datasets.download("facades", cache_dir=cache, sha256=other)
    assert "\n" not in str(raised.value) and _listing(cache) == before


def test_a_cache_folder_holding_other_files_is_refused_and_left_alone(file_server, tmp_path, monkeypatch):
    served, url = file_server
    _tar(served / "facades.tar.gz", {"facades/train/1.png": _png_pair(), "facades/train/2.png": _png_pair()})
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    cache = tmp_path / "cache"
    (cache / "facades" / "train").mkdir(parents=True)
    (cache / "facades" / "train" / "1.png").write_bytes(b"my own photo")
    (cache / "facades" / "notes.txt").write_text("mine")
    before = _listing(cache)
    with pytest.raises(data.DataError, match=re.escape(
            f"{cache / 'facades'}: already holds files that p2p did not unpack (notes.txt, ...): move them away, or give "
            "another cache folder (--cache, or P2P_CACHE)")) as raised:
        datasets.download("facades", cache_dir=cache)
    assert "\n" not in str(raised.value) and _listing(cache) == before  # nothing downloaded, replaced or mixed in
    (cache / "facades" / "train" / "1.png").unlink()
    (cache / "facades" / "notes.txt").unlink()
    (cache / "facades" / "train").rmdir()  # an empty folder is no one's: the release goes there
    assert datasets.download("facades", cache_dir=cache) == cache / "facades"
    assert sorted(p.name for p in (cache / "facades" / "train").iterdir()) == ["1.png", "2.png"]


def test_a_refused_download_is_not_kept_nor_taken_for_one_copied_by_hand(file_server, tmp_path, monkeypatch):
    served, url = file_server
    with tarfile.open(served / "maps.tar.gz", "w:gz") as tar:  # refused once downloaded: it holds a link
        link = tarfile.TarInfo("maps/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    cache = tmp_path / "cache"
    with pytest.raises(data.DataError, match="links, devices"):
        datasets.download("maps", cache_dir=cache)
    assert _listing(cache) == {}  # the refused archive is gone
    _tar(served / "maps.tar.gz", {"maps/train/1.png": _png_pair()})  # the server fixed
    root = datasets.download("maps", cache_dir=cache)  # downloaded again, not the refused one read as copied by hand
    assert (root / "train" / "1.png").exists() and not (cache / "maps.tar.gz").exists()


def test_ctrl_c_while_unpacking_keeps_nothing_half_unpacked(file_server, tmp_path, monkeypatch, capsys):
    served, url = file_server
    _tar(served / "facades.tar.gz", {f"facades/train/{i}.png": _png_pair() for i in range(3)})
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    cache = tmp_path / "cache"
    extract = tarfile.TarFile._extract_member
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 3:  # two members unpacked
            raise KeyboardInterrupt
        return extract(self, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "_extract_member", interrupted)
    assert main(["download", "facades", "--cache", str(cache)]) == 130
    assert capsys.readouterr().err.endswith("interrupted: facades is not ready (nothing half-downloaded is kept); "
                                            "run the same command again\n")
    assert _listing(cache) == {}
    monkeypatch.setattr(tarfile.TarFile, "_extract_member", extract)
    assert main(["download", "facades", "--cache", str(cache)]) == 0  # and the same command then does it
    assert len(list((cache / "facades" / "train").iterdir())) == 3


# the deadline, and archive headers bounded ---------------------------------------------------------


def _slow_head(status_slowly):
    """A server that trickles its status line (or, after it, headers) one byte every 0.1 s, forever."""
    def respond(handler):
        handler.wfile.write(b"" if status_slowly else b"HTTP/1.0 200 OK\r\n")
        text = b"HTTP/1.0 200 OK\r\n" * 1000 if status_slowly else b"X-Slow: " + b"y" * 60 + b"\r\n"
        while True:
            for byte in text:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.1)
    return respond


@pytest.mark.parametrize("status_slowly", [True, False], ids=["status line", "headers"])
def test_a_server_trickling_its_answer_is_given_up_within_the_timeout(serve, tmp_path, monkeypatch, status_slowly):
    handler = _slow_head(status_slowly)
    monkeypatch.setenv("P2P_DATASETS_URL", serve(handler))
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=r"facades.tar.gz \(no complete answer \(status line and headers\) in 1 s\)\. "
                                              r"Try again later or with a longer --timeout") as raised:
        datasets.download("facades", cache_dir=tmp_path / "cache", timeout=1)
    assert time.monotonic() - start < 4 and "\n" not in str(raised.value)
    assert list((tmp_path / "cache").iterdir()) == []


def _tar_bytes(members, format_):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=format_) as tar:
        for info, payload in members:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


def _member(name, payload=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


@pytest.mark.parametrize("kind, format_", [("pax", tarfile.PAX_FORMAT), ("GNU long name", tarfile.GNU_FORMAT)])
def test_a_member_header_is_bounded_before_it_is_read(file_server, tmp_path, monkeypatch, kind, format_):
    served, url = file_server
    monkeypatch.setattr(datasets, "MAX_HEADER", 1024)
    long = "facades/train/" + "n" * 3000 + ".png"
    (served / "facades.tar.gz").write_bytes(gzip.compress(_tar_bytes([_member(long)], format_)))
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    with pytest.raises(data.DataError, match=re.escape(f"a member's {kind} header of ") + r"2\.9\d KiB, more than the 1 KiB a "
                                             r"header may be; nothing was unpacked") as raised:
        datasets.download("facades", cache_dir=tmp_path / "cache")
    assert "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn" not in str(raised.value)
    assert _listing(tmp_path / "cache") == {}


def test_a_huge_pax_header_is_refused_without_reading_it(tmp_path):
    """A 64 MiB pax header (64 KiB of gzip): refused from its size field, never held in memory."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, 64 << 20
    body = header.tobuf(tarfile.USTAR_FORMAT) + bytes(64 << 20) + _tar_bytes([_member("facades/1.png")], tarfile.USTAR_FORMAT)
    (tmp_path / "facades.tar.gz").write_bytes(gzip.compress(body, 1))
    tracemalloc.start()
    try:
        with pytest.raises(data.DataError, match="a member's pax header of 64 MiB, more than the 64 KiB"):
            datasets._unpack(tmp_path / "facades.tar.gz", tmp_path / "cache", "facades")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_a_long_name_is_shortened_in_messages(file_server, tmp_path, monkeypatch):
    served, url = file_server
    link = tarfile.TarInfo("maps/" + "n" * 20000)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    (served / "maps.tar.gz").write_bytes(gzip.compress(_tar_bytes([(link, None)], tarfile.GNU_FORMAT)))
    monkeypatch.setenv("P2P_DATASETS_URL", url)
    with pytest.raises(data.DataError, match=r"refused to unpack 'maps/nnnn.*\.\.\. \(20,005 characters\)'") as raised:
        datasets.download("maps", cache_dir=tmp_path / "cache")
    assert len(str(raised.value)) < 600


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e10", "Infinity"])
def test_a_timeout_must_be_a_finite_number_of_seconds(tmp_path, monkeypatch, capsys, value):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["download", "facades", "--cache", "c", f"--timeout={value}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"error: argument --timeout: {value} is out of range: give a number above 0 and at " \
                                      "most 1,000,000" in err
    with pytest.raises(ValueError, match=re.escape(f"timeout={float(value)}: give a number of seconds above 0 and at most "
                                                   "1,000,000")):
        datasets.download("facades", cache_dir=tmp_path / "c", timeout=float(value))
    assert list(tmp_path.iterdir()) == []
