"""Resuming past damage: a checkpoint that cannot be read, a metrics.csv cut short (README "What it promises")."""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

import tensorflow as tf

from p2p.runtime.files import write_atomically
from p2p.runtime.guards import writing


def restore_latest(checkpoint: tf.train.Checkpoint, directory):
    """Restore the newest readable checkpoint in `directory`: its status; None if none (README "What it promises")."""
    state = tf.train.get_checkpoint_state(str(directory))
    damaged = []
    for path in reversed(state.all_model_checkpoint_paths if state else []):  # newest first, past damaged ones
        try:
            return checkpoint.restore(path)
        except (tf.errors.OpError, IndexError) as err:  # a data file cut short raises IndexError
            reason = re.sub(r"\{\{.*?\}\}\s*", "", str(err).strip().splitlines()[0])  # without TF's {{function_node ...}}
            print(f"warning: {path} cannot be read ({reason}); it is skipped for the checkpoint before it",
                  file=sys.stderr, flush=True)
            damaged.append(f"{Path(path).name} ({reason})")
    if damaged:
        raise ValueError(f"{directory}: no checkpoint in it can be read: {'; '.join(damaged)}. Train into a new run "
                         "folder, or delete this one to start it again.")
    return None


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop the rows after `last_step`, trained again on resume, and a line cut short (README "What it promises")."""
    if not path.exists():
        return
    with path.open(newline="") as file:
        text = file.read()
    reader = csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1]))  # only whole lines: a cut one has no end
    rows = [r for r in reader if int(r["step"]) <= last_step]
    if reader.fieldnames is None:  # not even a whole header: append_metrics starts the file again
        path.unlink()
        return
    kept = io.StringIO()
    writer = csv.DictWriter(kept, fieldnames=reader.fieldnames)
    writer.writeheader()
    writer.writerows(rows)
    if kept.getvalue() != text:
        with writing(path):  # a kill during the rewrite leaves the old file whole
            write_atomically(path, lambda file: file.write(kept.getvalue()), text=True)
