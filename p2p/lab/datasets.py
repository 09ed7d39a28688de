"""The datasets released with the paper, downloaded and checked, and a chapter's choice of dataset.

Explained in the chapter "Data" (and the appendix on scaling up).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
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
    already in the cache folder (copied there by hand) is used instead of downloading, and kept.
    With `sha256`, the archive must have that checksum (a mismatch is refused and the file
    removed); either way the checksum of the archive unpacked is printed and written to
    <cache>/<name>.sha256. Every member is checked before anything is unpacked: it must lie in
    the folder <name>/, be a file or a folder (no links, devices or sparse files), and the archive
    must hold at most LIMITS[name].files of them, LIMITS[name].unpacked bytes in all. The server
    must send at least MIN_PROGRESS bytes (64 KiB, or the rest of the file) in every `timeout`
    seconds, and at most what it announced and LIMITS[name].download bytes; otherwise the
    download is given up (after at most about twice `timeout`) and nothing of it is kept, as on
    Ctrl-C. A truncated or non-gzip archive is an error too.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; the released ones are {', '.join(DATASETS)}")
    if not timeout > 0:
        raise ValueError(f"timeout={timeout}: give a number of seconds above 0")
    cache = Path(cache_dir).expanduser() if cache_dir else records.cache_dir()
    target, done = cache / name, cache / f"{name}.complete"
    if done.exists() and target.is_dir():
        return target
    archive = cache / f"{name}.tar.gz"
    by_hand = archive.exists()
    if not by_hand:
        _fetch(f"{os.environ.get('P2P_DATASETS_URL', DATASETS_URL).rstrip('/')}/{name}.tar.gz", archive, timeout,
               LIMITS[name].download)
    digest = _sha256_of(archive)
    if sha256 and digest != sha256.lower():
        archive.unlink()
        raise DataError(f"{archive}: sha256 {digest} is not the expected {sha256}; the file was removed. "
                        "Download it again, or check the expected checksum.")
    _unpack(archive, cache, name)
    (cache / f"{name}.sha256").write_text(f"{digest}  {archive.name}\n")
    print(f"{name}: unpacked {archive.name} (sha256 {digest}) into {target}")
    if not by_hand:
        archive.unlink()  # downloaded here: the unpacked folder is what is kept
    done.touch()
    return target


class _GiveUp(Exception):
    """A download given up by `_fetch` itself: the reason, and what to do about it."""


def _fetch(url: str, path: Path, timeout: float, limit: int) -> None:
    """Download `url` to `path` through a .partial file, with a progress bar; ConnectionError saying what to do.

    Given up when the server sends under MIN_PROGRESS bytes (or the rest) in `timeout` seconds, more than it
    announced or than `limit`, or less than it announced; the .partial is removed then, and on Ctrl-C.
    """
    partial = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    by_hand = f"copy {path.name} into {path.parent} by hand"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # `timeout`: for each read from the server
            announced = response.headers.get("Content-Length", "").strip()
            total = int(announced) if announced.isascii() and announced.isdigit() else None
            most = limit if total is None else min(total, limit)
            if total is not None and total > limit:
                raise _GiveUp(f"it announced {_size(total)}, more than the {_size(limit)} {path.name} can be",
                              f"Check the server (P2P_DATASETS_URL), or {by_hand}")
            with partial.open("wb") as file, tqdm(total=total, unit="B", unit_scale=True, desc=path.name) as bar:
                received, window, since = 0, 0, time.monotonic()  # bytes in all; in this window of `timeout` s; since when
                need = min(MIN_PROGRESS, most)
                while chunk := response.read1(1 << 20):  # returns what came, however little: the checks see every byte
                    received, window = received + len(chunk), window + len(chunk)
                    if received > most:
                        raise _GiveUp(f"it sent more than the {_size(most)} " + (
                                      "it announced" if most == total else f"{path.name} can be"),
                                      f"Check the server (P2P_DATASETS_URL), or {by_hand}")
                    file.write(chunk)
                    bar.update(len(chunk))
                    if window >= need:
                        window, since, need = 0, time.monotonic(), min(MIN_PROGRESS, most - received)
                    elif time.monotonic() - since > timeout:
                        raise _GiveUp(f"it sent {_size(window)} in {timeout:g} s, under the {_size(need)} needed",
                                      f"Try again later or with a longer --timeout, or {by_hand}")
            if total is not None and received < total:
                raise _GiveUp(f"it sent {_size(received)} of the {_size(total)} it announced",
                              f"Try again, or {by_hand}")
        partial.replace(path)
    except _GiveUp as err:
        reason, fix = err.args
        raise ConnectionError(f"Could not download {url} ({reason}). {fix}.") from None
    except (OSError, http.client.HTTPException) as err:  # URLError, HTTPError, timeouts, refusals; a malformed answer
        reason = f"no answer for {timeout:g} s" if isinstance(getattr(err, "reason", err), TimeoutError) else err
        raise ConnectionError(
            f"Could not download {url} ({reason}). Without a network, use the procedural facades "
            f"(`python -m p2p facades DIR`), or {by_hand}."
        ) from err
    finally:  # a failure, a refusal or Ctrl-C: nothing half-downloaded is left (after a success it is already renamed)
        partial.unlink(missing_ok=True)


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


def _unpack(archive: Path, cache: Path, name: str) -> None:
    """Unpack a dataset archive into cache/name after checking every member; DataError naming the archive if unsafe or broken.

    The members are checked here rather than by tarfile's "data" filter alone, which could be
    bypassed before Python 3.11.13 / 3.12.11 / 3.13.4 (CVE-2025-4517) and does not limit sizes:
    the headers are read first (stopping at the first one over LIMITS[name]), then the files.
    """
    limits, (released, images) = LIMITS[name], RELEASED[name]
    unpack_by_hand = (f"Is it the right archive? Delete it and download again; or, if you trust it, unpack it by hand: "
                      f"tar -xzf {archive} -C {cache} && touch {cache / name}.complete")
    try:
        with (archive.open("rb") as raw, tqdm(total=archive.stat().st_size, unit="B", unit_scale=True,
                                              desc=f"checking {archive.name}") as bar,
              tarfile.open(fileobj=CallbackIOWrapper(bar.update, raw, "read"), mode="r:gz") as tar):
            members, unpacked = [], 0
            for member in tar:  # one header at a time: a hostile archive is refused before it is all read
                if member.issparse() or member.type == tarfile.GNUTYPE_SPARSE or not (member.isfile() or member.isdir()):
                    raise DataError(f"{archive}: refused to unpack {member.name!r}: only plain files and folders are "
                                    "unpacked (links, devices, sparse files and paths outside the cache are not). "
                                    "Is it the right archive? Delete it and download again.")
                unpacked += member.size
                if unpacked > limits.unpacked:
                    raise DataError(f"{archive}: unpacks to more than {_size(limits.unpacked)}, the most a {name} "
                                    f"archive may (the release: about {_size(released)}); nothing was unpacked. "
                                    f"{unpack_by_hand}")
                if Path(member.name).parts:  # ("." itself has none)
                    members.append(member)
                if len(members) > limits.files:
                    raise DataError(f"{archive}: holds more than {limits.files:,} files and folders, the most a {name} "
                                    f"archive may (the release: about {images:,} images); nothing was unpacked. "
                                    f"{unpack_by_hand}")
            tops = sorted({Path(m.name).parts[0] for m in members})
            if tops != [name]:
                raise DataError(f"{archive}: expected everything in a folder {name}/, found {', '.join(tops) or 'nothing'}. "
                                "Is it the right archive?")
            root = (cache / name).resolve()
            for member in members:
                where = (cache / member.name).resolve()
                if not (member.isfile() or member.isdir()) or not where.is_relative_to(root):
                    raise DataError(f"{archive}: refused to unpack {member.name!r}: only files and folders inside "
                                    f"{name}/ are unpacked (links, devices and paths outside the cache are not). "
                                    "Is it the right archive? Delete it and download again.")
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # and tarfile's own checks, where it has them
            bar.reset()  # the archive is read a second time, to unpack it
            bar.set_description(f"unpacking {archive.name}")
            tar.extractall(cache, members=members, **safe)
    except (tarfile.ReadError, EOFError, zlib.error) as err:
        raise DataError(f"{archive}: truncated, or not a .tar.gz archive ({err}). Delete it and download again.") from err
