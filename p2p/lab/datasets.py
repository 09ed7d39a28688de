"""The datasets released with the paper, downloaded and checked, and a chapter's choice of dataset.

Explained in the chapter "Data" (and the appendix on scaling up).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.request
import zlib
from pathlib import Path

from tqdm.auto import tqdm

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
    """Download and unpack a dataset released with the paper; return its folder (chapter "Scaling up").

    Idempotent: a dataset already unpacked is returned without touching the network. An archive
    already in the cache folder (copied there by hand) is used instead of downloading, and kept.
    With `sha256`, the archive must have that checksum (a mismatch is refused and the file
    removed); either way the checksum of the archive unpacked is printed and written to
    <cache>/<name>.sha256. Every member is checked before anything is unpacked: it must lie in
    the folder <name>/, be a file or a folder (no links, no devices). A server that stops
    answering for `timeout` seconds is an error, as is a truncated or non-gzip archive.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; the released ones are {', '.join(DATASETS)}")
    cache = Path(cache_dir).expanduser() if cache_dir else records.cache_dir()
    target, done = cache / name, cache / f"{name}.complete"
    if done.exists() and target.is_dir():
        return target
    archive = cache / f"{name}.tar.gz"
    by_hand = archive.exists()
    if not by_hand:
        _fetch(f"{os.environ.get('P2P_DATASETS_URL', DATASETS_URL).rstrip('/')}/{name}.tar.gz", archive, timeout)
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


def _fetch(url: str, path: Path, timeout: float) -> None:
    """Download `url` to `path` through a .partial file, with a progress bar; ConnectionError saying what to do."""
    partial = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as file:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name) as bar:
                while chunk := response.read(1 << 20):
                    file.write(chunk)
                    bar.update(len(chunk))
        partial.replace(path)
    except OSError as err:  # URLError, HTTPError, timeouts and refused connections are all OSErrors
        partial.unlink(missing_ok=True)
        reason = f"no answer for {timeout:g} s" if isinstance(getattr(err, "reason", err), TimeoutError) else err
        raise ConnectionError(
            f"Could not download {url} ({reason}). Without a network, use the procedural facades "
            f"(`python -m p2p facades DIR`), or copy {path.name} into {path.parent} by hand."
        ) from err


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
    bypassed before Python 3.11.13 / 3.12.11 / 3.13.4 (CVE-2025-4517).
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if Path(m.name).parts]  # ("." itself has none)
            tops = sorted({Path(m.name).parts[0] for m in members})
            if tops != [name]:
                raise DataError(f"{archive}: expected everything in a folder {name}/, found {', '.join(tops) or 'nothing'}. "
                                "Is it the right archive?")
            root = (cache / name).resolve()
            for member in members:
                where = (cache / member.name).resolve()
                if not (member.isfile() or member.isdir()) or not where.is_relative_to(root):
                    raise DataError(f"{archive}: refused to unpack {member.name!r}: only files and folders inside "
                                    f"{name}/ are unpacked (links, devices and paths outside the cache are not).")
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # and tarfile's own checks, where it has them
            tar.extractall(cache, members=members, **safe)
    except (tarfile.ReadError, EOFError, zlib.error) as err:
        raise DataError(f"{archive}: truncated, or not a .tar.gz archive ({err}). Delete it and download again.") from err
