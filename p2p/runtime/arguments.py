"""The command line's argument types and one-line errors (README "What it promises").

Every bad argument is refused before anything runs, and every error is one line naming
the file or option and the fix, `error: ...`, with exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path


def refuse(err: Exception) -> int:
    """Print `error: ...` as one line, return 2; an OS error names its file and fix."""
    message = str(err)
    if isinstance(err, OSError) and err.strerror and err.filename:  # raised by the OS
        fix = {errno.EACCES: "give a path you can write to",
               errno.EPERM: "give a path you can write to",
               errno.EROFS: "give a path on a writable disk",
               errno.ENOTDIR: "a file is in the way: give another path",
               errno.EEXIST: "a file is in the way: give another path",
               }.get(err.errno, "check the path")
        message = f"{err.filename}: {err.strerror.lower()}: {fix}"
    print(f"error: {message}", file=sys.stderr)
    return 2


def path(value: str) -> Path:
    """A path argument; "" (an unset shell variable) is refused, not taken for '.'."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty path: give a file or folder")
    return Path(value)


def whole(low: int, high: int | None = None):
    """An argument type: a whole number from `low` (to `high`), checked before a run."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a whole number") from None
        if number < low or high is not None and number > high:
            raise argparse.ArgumentTypeError(
                f"{number} is out of range: give {low} to {high}" if high is not None
                else f"{number} is out of range: give {low} or more")
        return number
    return parse


def positive(value: str, high: float = 1e6) -> float:
    """An argument type: a finite number above 0, at most `high` (seconds: 11 days).

    inf, nan and 1e308 are refused here: clocks and sockets overflow on them.
    """
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 < number <= high:  # nan too
        raise argparse.ArgumentTypeError(
            f"{value} is out of range: give a number above 0 and at most {high:,.0f}")
    return number


SEED = whole(0, 2**31 - 1)
#: TensorFlow aborts the process (not an exception) on thread pools it cannot make; 0
#: is its default.
THREADS = whole(0, 1024)
