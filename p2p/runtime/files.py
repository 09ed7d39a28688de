"""Files written whole: a kill or a full disk never leaves one half-written.

For the README "What it promises". Free of TensorFlow, so that writing the procedural
facades does not wait for it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path


def write_atomically(path, write, *, text: bool = False) -> Path:
    """Write via write(file) beside `path`, then move into place: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        # newline="": as the csv module needs
        with partial.open("w", newline="") if text else partial.open("wb") as file:
            write(file)
        partial.replace(path)  # atomic: a rename within one folder
    finally:
        # a failed write (a full disk) leaves neither a partial file nor a torn `path`,
        # and where even this fails (a file in place of a folder), its own error shows
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    return path


def write_json(path, value) -> Path:
    """Write `value` as indented JSON to `path`, atomically."""
    return write_atomically(
        path, lambda file: file.write(json.dumps(value, indent=2) + "\n"), text=True)
