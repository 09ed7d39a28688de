"""Files written whole: a kill or a full disk never leaves one half-written (README "What it promises").

Free of TensorFlow, so that writing the procedural facades does not wait for it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path


def write_atomically(path, write, *, text: bool = False) -> Path:
    """Write with write(file) beside `path`, then move into place: never half-written (README "What it promises")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", newline="") if text else partial.open("wb") as file:  # newline="": as the csv module needs
            write(file)
        partial.replace(path)  # atomic: a rename within one folder
    finally:
        with contextlib.suppress(OSError):  # a failed write (a full disk) leaves neither a partial file nor a torn `path`,
            partial.unlink(missing_ok=True)  # and where even this fails (a file in place of a folder), its own error shows
    return path


def write_json(path, value) -> Path:
    """Write `value` as indented JSON to `path`, atomically (README "What it promises")."""
    return write_atomically(path, lambda file: file.write(json.dumps(value, indent=2) + "\n"), text=True)
