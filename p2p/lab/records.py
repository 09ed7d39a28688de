"""The record of what made a result (provenance) and where p2p keeps what it fetched or measured.

Used by the procedural facades, the ablation tables, the book runs and the benchmark. Kept free of
TensorFlow so that writing the facades does not wait for it.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path


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
