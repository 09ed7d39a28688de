"""What every long job leaves behind: files written whole, and the record of what made them.

The one atomic writer and the one provenance record of p2p, used by run folders (`p2p.runs`),
the procedural facades, the ablation tables, the book runs and the benchmark. Kept free of
TensorFlow so that writing the facades does not wait for it. Explained in the chapter "The
training loop".
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path


def write_atomically(path, write, *, text: bool = False) -> Path:
    """Call write(file) on a temporary file beside `path`, then move it into place: `path` is never half-written.

    The file is binary unless `text` (then opened with newline="" for the csv module).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", newline="") if text else partial.open("wb") as file:
            write(file)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)  # a failed write (a full disk) leaves neither a partial file nor a torn `path`
    return path


def write_json(path, value) -> Path:
    """Write `value` as indented JSON to `path`, atomically."""
    return write_atomically(path, lambda file: file.write(json.dumps(value, indent=2) + "\n"), text=True)


def cache_dir() -> Path:
    """Where p2p keeps what it fetched or measured on this machine: $P2P_CACHE, else ~/.cache/p2p."""
    return Path(os.environ.get("P2P_CACHE", Path.home() / ".cache" / "p2p")).expanduser()


def commit_of_package() -> str:
    """The git commit p2p was run from, with "+changes" when the package's files differed from it; "unknown" outside git."""
    root = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=root).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
                               capture_output=True, text=True, check=True, cwd=root).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def provenance(**extra) -> dict:
    """Where and with what a result was made: commit, date, machine, Python and TensorFlow, plus `extra` fields."""
    tensorflow = sys.modules.get("tensorflow")
    return {
        "commit": commit_of_package(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.system()}",
        "platform": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__ if tensorflow else None,
        **extra,
    }
