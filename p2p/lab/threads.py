"""TensorFlow's thread pools: sized by hand, or as the benchmark measured fastest on this machine.

Explained in the appendix "Scaling up".
"""

from __future__ import annotations

import json
import os
import platform
import sys

from p2p.lab import records
from p2p.runtime.devices import set_thread_pools
from p2p.runtime.files import write_json


def machine() -> str:
    """This machine as the benchmark's measurements are filed under: its core count and processor."""
    return f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"


def measured_thread_pools(preset: str) -> tuple[int, int] | None:
    """The (inter-op, intra-op) sizes the benchmark measured fastest for `preset` here, if it did (appendix "Scaling up").

    `python -m p2p bench` files them. (0, 0) means TensorFlow's default measured fastest; None,
    that nothing was measured on this machine.
    """
    try:
        measured = json.loads((records.cache_dir() / "thread_pools.json").read_text())
    except (OSError, ValueError):
        return None
    setting = measured.get(machine(), {}).get(preset)
    return tuple(setting) if setting else None


def record_thread_pools(preset: str, setting: tuple[int, int]) -> None:
    """File `setting` as the fastest thread-pool sizes for `preset` on this machine (the benchmark calls it)."""
    path = records.cache_dir() / "thread_pools.json"
    try:
        measured = json.loads(path.read_text())
    except (OSError, ValueError):
        measured = {}
    measured.setdefault(machine(), {})[preset] = list(setting)
    write_json(path, measured)


def use_measured_thread_pools(preset: str, *, verbose: bool = False) -> tuple[int, int] | None:
    """Size the thread pools as measured fastest for `preset` here, if measured; call before TensorFlow's first operation.

    The default of the command line, which says so (`verbose`); the chapters leave TensorFlow's
    default. Returns the setting applied, or None: TensorFlow's default stays.
    """
    setting = measured_thread_pools(preset)
    if not setting or setting == (0, 0):
        return None
    set_thread_pools(*setting)
    if verbose:
        print(f"thread pools: inter-op {setting[0]}, intra-op {setting[1]}, measured fastest for the {preset} preset "
              "on this machine by python -m p2p bench (--threads 0 0 for TensorFlow's default)", file=sys.stderr)
    return setting
