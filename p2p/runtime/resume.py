"""Resuming past a damaged checkpoint or metrics.csv (README "What it promises")."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import tensorflow as tf

from p2p.runtime.files import write_atomically
from p2p.runtime.guards import writing


def restore_latest(checkpoint: tf.train.Checkpoint, directory):
    """Restore the newest readable checkpoint in `directory`: its status, or None."""
    state = tf.train.get_checkpoint_state(str(directory))
    damaged = []
    # newest first, past damaged ones
    for path in reversed(state.all_model_checkpoint_paths if state else []):
        try:
            return checkpoint.restore(path)
        except (tf.errors.OpError, IndexError) as err:  # IndexError: a cut data file
            # the first line, without TF's {{function_node ...}}
            reason = re.sub(r"\{\{.*?\}\}\s*", "", str(err).strip().splitlines()[0])
            print(f"warning: {path} cannot be read ({reason}); it is skipped for the "
                  "checkpoint before it", file=sys.stderr, flush=True)
            damaged.append(f"{Path(path).name} ({reason})")
    if damaged:
        raise ValueError(f"{directory}: no checkpoint in it can be read: "
                         f"{'; '.join(damaged)}. Train into a new run folder, or "
                         "delete this one to start it again.")
    return None


def restore_all(checkpoint: tf.train.Checkpoint, directory) -> None:
    """Restore the newest readable checkpoint, every object of it matched."""
    status = restore_latest(checkpoint, directory)
    if status is not None:
        status.assert_existing_objects_matched()


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop rows after `last_step` (trained again on resume) and a line cut short."""
    if not path.exists():
        return
    with path.open(newline="") as file:
        text = file.read()
    # only whole lines: a line cut short has no end
    reader = csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1]))
    rows = [r for r in reader if int(r["step"]) <= last_step]
    if reader.fieldnames is None:  # no whole header: append_metrics starts it again
        path.unlink()
        return
    kept = io.StringIO()
    writer = csv.DictWriter(kept, fieldnames=reader.fieldnames)
    writer.writeheader()
    writer.writerows(rows)
    if kept.getvalue() != text:
        with writing(path):  # a kill during the rewrite leaves the old file whole
            write_atomically(path, lambda file: file.write(kept.getvalue()), text=True)


def config_values(path: Path, defaults: dict) -> dict:
    """A run's config.json as a dict, in today's layout from any p2p's (README "What it
    promises"); `defaults` fill what the layout before `Config` left unset."""
    if not path.exists():
        raise FileNotFoundError(f"{path.parent}: not a run folder (no config.json); "
                                "train one with `python -m p2p train`.")
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        raise ValueError(f"{path}: not a p2p run's config ({err}). "
                         "Restore it, or train into a new run folder.") from err
    if isinstance(values.get("preset"), dict):  # before Config: a preset, then options
        preset, model = values["preset"], values.get("model", {})
        values = {**defaults,
                  **{k: v for k, v in preset.items()
                     if k not in ("name", "description", "jit_compile")},
                  "preset": preset.get("name", "custom"), **model,
                  **{k: values[k]
                     for k in ("direction", "seed", "steps", "precision", "data")
                     if k in values}}
    variant = {k: values.pop(k) for k in list(values) if k in _VARIANT_SETTINGS}
    variant = {k: v for k, v in variant.items() if v != _VARIANT_SETTINGS[k]}
    if variant:  # moved to "variant", where p2p.lab.variants reads them
        values["variant"] = {**values.get("variant", {}), **variant}
    return values


#: Settings of the lab's variants (p2p.lab.variants) that p2p once wrote beside the
#: paper's, at the paper's values: read into "variant" when they differ.
_VARIANT_SETTINGS = {"gan_weight": 1.0, "conditional": True, "gan_update": "sequential",
                     "reconstruction": "l1", "disc_lr_scale": 1.0}
