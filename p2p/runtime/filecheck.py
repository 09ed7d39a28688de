"""Data files that cannot be read, refused before they are opened, named with the fix (README "What it promises")."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path

from PIL import Image


class DataError(ValueError):
    """A dataset file or folder that cannot be used, with the file named and the fix said (chapter "Data")."""


def image_files(path, suffixes) -> list[Path]:
    """A folder's files of `suffixes`, sorted, each checked; others skipped with a note (README "What it promises")."""
    path = Path(path)
    if not path.is_dir():
        if path.exists():
            raise DataError(f"{path}: not a folder. Give the folder that holds the pairs (A|B files, or folders A and B).")
        raise DataError(
            f"{path}: no such folder. Generate the procedural facades with "
            f"`python -m p2p facades DIR` or fetch a released dataset with p2p.lab.datasets.download(name)."
        )
    files, skipped = [], []
    for entry in path.iterdir():
        if entry.name.startswith("."):  # .DS_Store, macOS's ._1.jpg, editors' swap files: not data
            continue
        if entry.suffix.lower() in suffixes:
            files.append(entry)
        elif not entry.is_dir():  # sub-folders are splits (train/, A/) or the user's own: not reported
            skipped.append(entry.name)
    files.sort()
    for file in files:  # all before any is opened: opening a FIFO waits for a writer, for ever
        check_file(file)
    skipped = sorted(skipped)
    if not files:
        raise DataError(_no_images(path, skipped, suffixes))
    if skipped:
        note = (f"{path}: skipped {len(skipped)} file{'s' if len(skipped) > 1 else ''} of other formats "
                f"({listed(skipped, 3)}); only {', '.join(suffixes)} files are read: convert any you meant to PNG.")
        if note not in _NOTED:
            _NOTED.add(note)
            print(note, file=sys.stderr, flush=True)
    return files


#: The notes on skipped files already printed: each once, though a run lists its folder more than once.
_NOTED: set[str] = set()


def listed(names, shown: int) -> str:
    """The first `shown` names, comma-separated, and how many more (README "What it promises")."""
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _no_images(path: Path, skipped: list[str], suffixes) -> str:
    """Why a folder gives no pairs: a lone A/ or B/, or no file of a suffix that is read."""
    for half, other in (("A", "B"), ("B", "A")):
        if (path / half).is_dir() and not (path / other).is_dir():
            entries = [p for p in (path / half).iterdir() if not p.name.startswith(".")]
            images = sum(p.suffix.lower() in suffixes for p in entries)
            folders = sorted(p.name for p in entries if p.is_dir())
            holds = f"{images} image{'s' if images != 1 else ''}" + (f" and the folders {listed(folders, 3)}" if folders else "")
            return (f"{path}: {half}/ holds {holds}, but there is no {other}/ beside it. Pairs are given as A|B files "
                    "side by side in one folder, or as folders A/ and B/ holding files of the same names.")
    message = f"{path}: no images ({', '.join(suffixes)}) in this folder"
    if skipped:
        return message + f"; skipped {len(skipped)} of other formats ({listed(skipped, 3)}): convert them to PNG to use them."
    return message + "."


@contextlib.contextmanager
def decoding(file):
    """Check `file`, then turn PIL's failures to decode it in the block into DataError (README "What it promises")."""
    check_file(file)
    try:
        yield
    except Image.DecompressionBombError as err:  # more pixels than PIL dares to decode
        raise DataError(f"{file}: too large to decode safely ({err}). A picture this size is far beyond what "
                        "pix2pix trains on: downscale it, or remove it if it is not a photo.") from err
    except (OSError, SyntaxError, ValueError) as err:  # PIL's ways of saying "not an image" (or "not as RGB")
        raise DataError(f"{file}: cannot be decoded as an image ({err}). Delete or replace it.") from err


def check_file(file) -> None:
    """DataError, before it is opened, unless `file` is a regular file or a link to one (README "What it promises")."""
    try:
        mode = os.stat(file).st_mode
    except FileNotFoundError:
        if os.path.islink(file):
            raise DataError(f"{file}: a broken link, to {os.readlink(file)}, which does not exist; remove it from the data "
                            "folder or restore what it points to.") from None
        raise DataError(f"{file}: no such file. Check the path: give an existing image file.") from None
    except OSError as err:  # a loop of links, a name too long
        raise DataError(f"{file}: cannot be read ({err.strerror}); remove it from the data folder, or give an image file "
                        "instead.") from err
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise DataError(f"{file}: is a folder, not an image file. Give the image files in it (e.g. {Path(file) / '*.jpg'}), "
                        "or rename it if it sits in a data folder.")
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))
    kind = next((name for test, name in kinds if test(mode)), "neither a file nor a folder")
    raise DataError(f"{file}: not a regular file ({kind}); remove it from the data folder, or give an image file instead.")
