"""The datasets released with the paper, downloaded and checked, and a chapter's choice of dataset.

Explained in the chapter "Data" (and the appendix on scaling up).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import shutil
import socket
import tarfile
import threading
import time
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple

from tqdm.auto import tqdm
from tqdm.utils import CallbackIOWrapper

from p2p import data
from p2p.data import DataError, split_folder
from p2p.lab import facades, records
from p2p.runtime import files

#: The datasets released with the paper, as tar.gz archives under DATASETS_URL.
DATASETS = ("facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day")

#: Each released dataset's default direction, its usual task: labels to photo, edges to photo, aerial photo to map, night to day.
DIRECTIONS = {"facades": "BtoA", "cityscapes": "BtoA", "maps": "AtoB", "edges2shoes": "AtoB", "edges2handbags": "AtoB",
              "night2day": "AtoB"}

#: Where the released datasets are served; P2P_DATASETS_URL overrides it (tests use loopback).
DATASETS_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"

MiB, GiB = 1 << 20, 1 << 30

#: Each released archive's size and number of images: the sizes as the server's index lists them (29M ... 8.0G, two
#: figures, units of 1024), the counts from the datasets' descriptions (train + val (+ test); the last three approximate).
RELEASED = {"facades": (29 * MiB, 606), "cityscapes": (99 * MiB, 3_475), "maps": (239 * MiB, 2_194),
            "edges2shoes": (2 * GiB, 50_000), "edges2handbags": (8 * GiB, 139_000), "night2day": (19 * GiB // 10, 20_000)}


class Limits(NamedTuple):
    """The most a dataset's download may be (bytes), and its archive may unpack to (bytes, then files and folders)."""

    download: int
    unpacked: int
    files: int


#: What `download` accepts, well above the releases so that a re-packed archive passes and a hostile one does not fill
#: the disk: twice the archive (the index rounds to two figures); three times it unpacked (JPEGs barely compress, a tar
#: adds 512 bytes or more a file); twice the images, and 100 for the folders (a few) and the odd extra file.
LIMITS = {name: Limits(2 * size, 3 * size, 2 * files + 100) for name, (size, files) in RELEASED.items()}

#: A download is given up when the server sends less than this (or the rest of the file, if less) in `timeout` seconds.
MIN_PROGRESS = 64 * 1024

#: The most `timeout` may be, in seconds (11 days): every clock the download sets must take it.
MAX_TIMEOUT = 1_000_000

#: The most an archive member's own header may hold, in bytes: a pax header or a GNU long name (a path, a few times
#: PATH_MAX), checked before tarfile reads it into memory.
MAX_HEADER = 64 * 1024


def evaluation_split(root):
    """The split to test on (chapter "Data"): test when the dataset has one, else val (the released maps,
    cityscapes and edges datasets have none), else the folder itself; as `split_folder` gives it."""
    for split in ("test", "val"):
        folder = split_folder(root, split)
        if folder != Path(root):
            return folder
    return Path(root)


def dataset(name: str, *, image_size: int = 256, seed: int = 0, root="data", direction: str | None = None):
    """A chapter's data and its direction (chapter "Data"): (folder, "AtoB" or "BtoA").

    `name` is "procedural" (the procedural facades at `image_size`, generated once into
    root/facades-<size>), a released dataset (DATASETS, downloaded once by `download`), or a
    folder of A|B files (or of A/ and B/). `direction` overrides the usual one (DIRECTIONS;
    BtoA, the facades', for the procedural facades and for folders).
    """
    if name == "procedural":
        folder = facades.make_facades(Path(root) / f"facades-{image_size}", seed=seed, size=image_size, progress=False)
    elif name in DATASETS:
        folder = download(name)
    else:
        folder = Path(name)
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder. A dataset is \"procedural\", a released one "
                            f"({', '.join(DATASETS)}) or a folder of A|B files.")
    direction = direction or DIRECTIONS.get(name, "BtoA")
    data.check_direction(direction)
    return folder, direction


def download(name: str, cache_dir=None, *, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download and unpack a dataset released with the paper; return its folder (appendix "Scaling up").

    Idempotent: a dataset already unpacked is returned without touching the network. An archive
    already in the cache folder (copied there by hand) is used instead of downloading, and kept
    whatever happens: p2p deletes only what it downloaded. A <cache>/<name> folder that p2p did
    not unpack is refused, never written into. `sha256` is checked for its shape before anything
    (`expected_sha256`); the archive must then have that checksum. Either way the checksum of the
    archive unpacked is printed and written to <cache>/<name>.sha256. Every member is checked
    before anything is unpacked: its header at most MAX_HEADER bytes (read only then), in the
    folder <name>/, a file or a folder (no links, devices or sparse files), and the archive must
    hold at most LIMITS[name].files of them, LIMITS[name].unpacked bytes in all. The server must
    answer (status line and headers) within `timeout` seconds, then send at least MIN_PROGRESS
    bytes (64 KiB, or the rest of the file) in every `timeout` seconds, and at most what it
    announced and LIMITS[name].download bytes; otherwise the download is given up. A truncated or
    non-gzip archive is an error too. Whatever stops it (a refusal, an error, Ctrl-C), nothing of
    the download and nothing half-unpacked is kept.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; the released ones are {', '.join(DATASETS)}")
    expected = None if sha256 is None else expected_sha256(sha256)
    if not 0 < timeout <= MAX_TIMEOUT:  # nan and inf too
        raise ValueError(f"timeout={timeout}: give a number of seconds above 0 and at most {MAX_TIMEOUT:,}")
    cache = Path(cache_dir).expanduser() if cache_dir else records.cache_dir()
    target, done = cache / name, cache / f"{name}.complete"
    if done.exists() and target.is_dir():
        return target
    _check_unpacked_here(target)
    archive, url = cache / f"{name}.tar.gz", f"{os.environ.get('P2P_DATASETS_URL', DATASETS_URL).rstrip('/')}/{name}.tar.gz"
    by_hand = archive.exists()
    if by_hand:
        source, again = archive, "Is it the right archive? Delete it and download again"
    else:
        source, again = url, f"Nothing of the download was kept: try again later, or copy {archive.name} into {cache} by hand"
    downloaded = None
    try:
        if not by_hand:
            archive = downloaded = _fetch(url, archive, timeout, LIMITS[name].download)  # p2p's own .partial
        digest = _sha256_of(archive)
        if expected and digest != expected:
            raise DataError(f"{source}: sha256 {digest} is not the expected {expected}; " + (
                "the file is kept (p2p did not download it): check the expected checksum, or delete the file and download "
                "again" if by_hand else "nothing of the download was kept: check the expected checksum, or try again"))
        _unpack(archive, cache, name, source=source, again=again)
    finally:
        if downloaded:
            downloaded.unlink(missing_ok=True)  # downloaded here: the unpacked folder is what is kept
    files.write_atomically(cache / f"{name}.sha256", lambda file: file.write(f"{digest}  {name}.tar.gz\n"), text=True)
    print(f"{name}: unpacked {name}.tar.gz (sha256 {digest}{', the one expected' if expected else ''}) into {target}")
    return target


def expected_sha256(text: str) -> str:
    """A sha256 as it is pasted: its 64 hex digits, alone or after "sha256:", in any case and with spaces around.

    Returns the digits in lower case; anything else (a digit too few, a typo, another hash) is a
    DataError, raised before anything is read or deleted.
    """
    shape = re.fullmatch(r"\s*(?:sha256:)?\s*([0-9a-f]{64})\s*", text, re.IGNORECASE | re.ASCII)
    if not shape:
        raise DataError(f"sha256 {text!r} is not a checksum: give the archive's 64 hex digits, alone or after \"sha256:\"; "
                        "nothing was read or deleted")
    return shape[1].lower()


def _check_unpacked_here(target: Path) -> None:
    """Refuse a <cache>/<name> that p2p did not unpack (a user's files): the release is never mixed into them."""
    if target.is_symlink() or target.exists() and not target.is_dir():
        raise DataError(f"{target}: a file or link is in the way of the folder the dataset unpacks to: move it away, or "
                        "give another cache folder (--cache, or P2P_CACHE)")
    inside = sorted(target.iterdir())[:1] if target.is_dir() else []
    if inside:
        raise DataError(f"{target}: already holds files that p2p did not unpack ({inside[0].name}, ...): move them away, "
                        "or give another cache folder (--cache, or P2P_CACHE)")


class _GiveUp(Exception):
    """A download given up by `_fetch` itself: the reason, and what to do about it."""


def _opener(sockets: list):
    """A urllib opener that keeps the socket of each connection it opens in `sockets`, so that a deadline can hang up."""
    def keeping(base):
        class Connection(base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                create = self._create_connection  # the plain socket, before any TLS handshake
                self._create_connection = lambda *args, **kwargs: sockets.append(create(*args, **kwargs)) or sockets[-1]
        return Connection

    plain, secure = keeping(http.client.HTTPConnection), keeping(http.client.HTTPSConnection)

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, request):
            return self.do_open(plain, request)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, request):
            return self.do_open(secure, request, context=self._context)

    return urllib.request.build_opener(HTTPHandler, HTTPSHandler)


def _answer(url: str, timeout: float):
    """The server's response to GET `url`, its status line and headers complete within `timeout` seconds.

    A socket's own timeout bounds each read, not a server that trickles its answer a byte at a
    time; so a timer hangs up on the connection at the deadline. _GiveUp then.
    """
    sockets, expired = [], threading.Event()

    def hang_up():
        expired.set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the read waiting on it

    deadline = threading.Timer(timeout, hang_up)
    deadline.daemon = True
    deadline.start()
    late = _GiveUp(f"no complete answer (status line and headers) in {timeout:g} s", "Try again later or with a longer "
                   "--timeout, or {by_hand}")
    try:
        response = _opener(sockets).open(url, timeout=timeout)  # `timeout`: for each read from the server
    except (OSError, http.client.HTTPException) as err:
        if expired.is_set() or isinstance(getattr(err, "reason", err), TimeoutError):
            raise late from None
        raise
    finally:
        deadline.cancel()
        deadline.join()  # hang_up, if it started, has finished: `expired` is final
    if expired.is_set():
        response.close()
        raise late
    return response


def _fetch(url: str, archive: Path, timeout: float, limit: int) -> Path:
    """Download `url` into archive.partial, with a progress bar, and return it; ConnectionError saying what to do.

    Given up when the server's status line and headers take over `timeout` seconds, when it then
    sends under MIN_PROGRESS bytes (or the rest) in `timeout` seconds, more than it announced or
    than `limit`, or less than it announced; the .partial is removed then, and on Ctrl-C. (After a
    success the caller removes it, once unpacked: it is never taken for an archive copied by hand.)
    """
    partial = archive.with_name(archive.name + ".partial")
    archive.parent.mkdir(parents=True, exist_ok=True)
    by_hand = f"copy {archive.name} into {archive.parent} by hand"
    try:
        with _answer(url, timeout) as response:
            announced = response.headers.get("Content-Length", "").strip()
            total = int(announced) if announced.isascii() and announced.isdigit() else None
            most = limit if total is None else min(total, limit)
            if total is not None and total > limit:
                raise _GiveUp(f"it announced {_size(total)}, more than the {_size(limit)} {archive.name} can be",
                              "Check the server (P2P_DATASETS_URL), or {by_hand}")
            with partial.open("wb") as file, tqdm(total=total, unit="B", unit_scale=True, desc=archive.name) as bar:
                received, window, since = 0, 0, time.monotonic()  # bytes in all; in this window of `timeout` s; since when
                need = min(MIN_PROGRESS, most)
                while chunk := response.read1(1 << 20):  # returns what came, however little: the checks see every byte
                    received, window = received + len(chunk), window + len(chunk)
                    if received > most:
                        raise _GiveUp(f"it sent more than the {_size(most)} " + (
                                      "it announced" if most == total else f"{archive.name} can be"),
                                      "Check the server (P2P_DATASETS_URL), or {by_hand}")
                    file.write(chunk)
                    bar.update(len(chunk))
                    if window >= need:
                        window, since, need = 0, time.monotonic(), min(MIN_PROGRESS, most - received)
                    elif time.monotonic() - since > timeout:
                        raise _GiveUp(f"it sent {_size(window)} in {timeout:g} s, under the {_size(need)} needed",
                                      "Try again later or with a longer --timeout, or {by_hand}")
            if total is not None and received < total:
                raise _GiveUp(f"it sent {_size(received)} of the {_size(total)} it announced", "Try again, or {by_hand}")
        return partial
    except BaseException as err:  # a failure, a refusal or Ctrl-C: nothing half-downloaded is left
        partial.unlink(missing_ok=True)
        if isinstance(err, _GiveUp):
            reason, fix = err.args
            raise ConnectionError(f"Could not download {url} ({reason}). {fix.format(by_hand=by_hand)}.") from None
        if isinstance(err, (OSError, http.client.HTTPException)):  # URLError, HTTPError, timeouts, refusals; a bad answer
            reason = f"no answer for {timeout:g} s" if isinstance(getattr(err, "reason", err), TimeoutError) else err
            raise ConnectionError(
                f"Could not download {url} ({reason}). Without a network, use the procedural facades "
                f"(`python -m p2p facades DIR`), or {by_hand}."
            ) from err
        raise


def _size(count: int) -> str:
    """A number of bytes for a message: 300 B, 64 KiB, 2.5 GiB."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} B"


def _sha256_of(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _shown(name: str, most: int = 80) -> str:
    """A member's name for a message: quoted, and cut short when long (a hostile one may be 64 KiB)."""
    return repr(name if len(name) <= most else f"{name[:most]}... ({len(name):,} characters)")


class _Refused(Exception):
    """A member refused by `_Bounded` as tarfile reads its header: why, as a sentence."""


class _Bounded(tarfile.TarInfo):
    """A member header whose extended headers are checked from their size field before tarfile reads them.

    tarfile reads a pax header or a GNU long name whole into memory, and a GNU sparse member's
    map block by block: a 1.5 GB one would take gigabytes. Over MAX_HEADER they are refused,
    and sparse members (which `download` refuses anyway) before their map is read.
    """

    EXTENDED = {tarfile.XHDTYPE: "pax", tarfile.XGLTYPE: "pax", tarfile.SOLARIS_XHDTYPE: "pax",
                tarfile.GNUTYPE_LONGNAME: "GNU long name", tarfile.GNUTYPE_LONGLINK: "GNU long link"}

    def _proc_member(self, tarfile_):
        if self.type in self.EXTENDED and self.size > MAX_HEADER:
            raise _Refused(f"a member's {self.EXTENDED[self.type]} header of {_size(self.size)}, more than the "
                           f"{_size(MAX_HEADER)} a header may be")
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _Refused(f"refused to unpack {_shown(self.name)}: {_PLAIN}")
        return super()._proc_member(tarfile_)

    def _proc_gnusparse_10(self, next_, pax_headers, tarfile_):  # a pax sparse member's map, read from its data
        raise _Refused(f"refused to unpack {_shown(next_.name)}: {_PLAIN}")


_PLAIN = "only plain files and folders are unpacked (links, devices, sparse files and paths outside the cache are not)"


def _unpack(archive: Path, cache: Path, name: str, *, source=None,
            again: str = "Is it the right archive? Delete it and download again") -> None:
    """Unpack a dataset archive into cache/name after checking every member; DataError naming `source` if unsafe or broken.

    The members are checked here rather than by tarfile's "data" filter alone, which could be
    bypassed before Python 3.11.13 / 3.12.11 / 3.13.4 (CVE-2025-4517) and does not limit sizes:
    the headers are read first (stopping at the first one over LIMITS[name] or MAX_HEADER), then
    the files, into cache/<name>.partial, moved into place whole once all are there (and
    cache/<name>.complete written): whatever stops it, nothing half-unpacked is left.
    `source` (the archive, or the URL it came from) starts the messages, `again` says what to do.
    """
    source = source or archive
    limits, (released, images) = LIMITS[name], RELEASED[name]
    unpacking, target, done = cache / f"{name}.partial", cache / name, cache / f"{name}.complete"
    unpack_by_hand = f"{again}; or, if you trust it, unpack it by hand: tar -xzf {cache / name}.tar.gz -C {cache} && touch {done}"
    shutil.rmtree(unpacking, ignore_errors=True)  # p2p's own, left by a kill
    try:
        with (archive.open("rb") as raw, tqdm(total=archive.stat().st_size, unit="B", unit_scale=True,
                                              desc=f"checking {name}.tar.gz") as bar,
              tarfile.open(fileobj=CallbackIOWrapper(bar.update, raw, "read"), mode="r:gz", tarinfo=_Bounded) as tar):
            members, unpacked = [], 0
            for member in tar:  # one header at a time: a hostile archive is refused before it is all read
                if member.issparse() or not (member.isfile() or member.isdir()):
                    raise _Refused(f"refused to unpack {_shown(member.name)}: {_PLAIN}")
                unpacked += member.size
                if unpacked > limits.unpacked:
                    raise DataError(f"{source}: unpacks to more than {_size(limits.unpacked)}, the most a {name} "
                                    f"archive may (the release: about {_size(released)}); nothing was unpacked. {unpack_by_hand}")
                if Path(member.name).parts:  # ("." itself has none)
                    members.append(member)
                if len(members) > limits.files:
                    raise DataError(f"{source}: holds more than {limits.files:,} files and folders, the most a {name} "
                                    f"archive may (the release: about {images:,} images); nothing was unpacked. {unpack_by_hand}")
            tops = sorted({Path(m.name).parts[0] for m in members})
            if tops != [name]:
                found = ", ".join(map(_shown, tops[:3])) + (", ..." if len(tops) > 3 else "") or "nothing"
                raise DataError(f"{source}: expected everything in a folder {name}/, found {found}. {again}.")
            root = (unpacking / name).resolve()
            for member in members:
                if not (unpacking / member.name).resolve().is_relative_to(root):
                    raise _Refused(f"refused to unpack {_shown(member.name)}: {_PLAIN}")
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # and tarfile's own checks, where it has them
            bar.reset()  # the archive is read a second time, to unpack it
            bar.set_description(f"unpacking {name}.tar.gz")
            tar.extractall(unpacking, members=members, **safe)
        done.touch()  # first: killed before the move, the marker without its folder is downloaded again
        try:
            if target.is_dir():
                target.rmdir()  # empty, as `download` checked: the release takes its place
            (unpacking / name).replace(target)
        except BaseException:
            done.unlink(missing_ok=True)
            raise
    except _Refused as err:
        raise DataError(f"{source}: {err}; nothing was unpacked. {again}.") from None
    except (tarfile.ReadError, EOFError, zlib.error) as err:
        raise DataError(f"{source}: truncated, or not a .tar.gz archive ({err}). {again}.") from err
    finally:
        shutil.rmtree(unpacking, ignore_errors=True)
