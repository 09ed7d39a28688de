"""Files written whole: a kill or a full disk never leaves one half-written (chapter "The training loop").

Free of TensorFlow, so that writing the procedural facades does not wait for it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path


def write_atomically(path, write, *, text: bool = False) -> Path:
    """Call write(file) on a file beside `path`, then move it into place: never half-written (chapter "The training loop")."""
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
    """Write `value` as indented JSON to `path`, atomically (chapter "The training loop")."""
    return write_atomically(path, lambda file: file.write(json.dumps(value, indent=2) + "\n"), text=True)
