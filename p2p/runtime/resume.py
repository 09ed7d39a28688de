"""Resuming past a damaged checkpoint or metrics.csv (README "What it promises")."""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import json
import re
import sys
from pathlib import Path

import tensorflow as tf
from tensorflow.core.protobuf.trackable_object_graph_pb2 import TrackableObjectGraph

from p2p.runtime.files import write_atomically
from p2p.runtime.guards import writing


def checkpoint_paths(directory) -> list[Path]:
    """The checkpoints in `directory`, oldest first, found from their own files.

    Not from TensorFlow's state file (`checkpoint`), which a sync tool or a copy of the
    ckpt-* files alone may lose: each checkpoint's .index file names it, its number
    the step.
    """
    numbered = [(int(found[1]), index.with_suffix(""))
                for index in Path(directory).glob("*.index")
                if (found := re.fullmatch(r".+-(\d+)", index.stem))]
    return [path for _, path in sorted(numbered)]


def restore_latest(checkpoint: tf.train.Checkpoint, directory):
    """Restore the newest readable checkpoint in `directory`: its status, or None.

    Every variable of `checkpoint` must be in it: one of other networks (a config.json
    edited, checkpoints copied from another run) is refused in one line.
    """
    damaged = []
    for path in reversed(checkpoint_paths(directory)):  # newest first, past damaged
        try:
            with _quiet():
                status = checkpoint.restore(str(path))
        except (tf.errors.OpError, IndexError) as err:  # IndexError: a cut data file
            reason = _first_line(err)
            print(f"warning: {path} cannot be read ({reason}); it is skipped for the "
                  "checkpoint before it", file=sys.stderr, flush=True)
            damaged.append(f"{path.name} ({reason})")
            continue
        except ValueError as err:  # a variable of another shape
            raise _other_networks(path, _first_line(err)) from None
        status.expect_partial()  # a generator alone leaves D and the optimizers unread
        try:
            status.assert_existing_objects_matched()
        except AssertionError as err:  # variables the checkpoint does not have
            raise _other_networks(path, _unmatched(err)) from None
        unread = _unread(checkpoint, path)
        if unread:  # values that no variable took (another norm, say)
            raise _other_networks(path, f"{len(unread)} of its values fit none of the "
                                        f"networks' variables, such as {unread[0]}")
        return status
    if damaged:
        raise ValueError(f"{directory}: no checkpoint in it can be read: "
                         f"{'; '.join(damaged)}. Train into a new run folder, or "
                         "delete this one to start it again.")
    return None


def checkpoint_manager(checkpoint: tf.train.Checkpoint, directory,
                       max_to_keep: int = 2) -> tf.train.CheckpointManager:
    """A CheckpointManager that knows every checkpoint in `directory`.

    A state file that is lost, garbled or behind the files is written again from them
    first, so that the manager keeps the newest, deletes the oldest and orphans none.
    """
    directory = Path(directory)
    found = checkpoint_paths(directory)
    names = [path.name for path in found]
    state = directory / "checkpoint"
    listed = (re.findall(r'^all_model_checkpoint_paths: "(?:.*/)?([^/"]+)"$',
                         state.read_text(errors="replace"), re.MULTILINE)
              if state.is_file() else [])
    if found and sorted(listed) != sorted(names):
        print(f"warning: {state} did not list the checkpoints; it lists "
              f"{', '.join(names)} again, found from their files",
              file=sys.stderr, flush=True)
        # when each was written: the manager deletes none it thinks preserved
        times = [Path(f"{path}.index").stat().st_mtime for path in found]
        with writing(state):
            tf.compat.v1.train.update_checkpoint_state(
                str(directory), names[-1], names, all_model_checkpoint_timestamps=times,
                last_preserved_timestamp=min(times) - 1)
    return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep)


def _first_line(err: Exception) -> str:
    """An error's first line, without TensorFlow's {{function_node ...}}."""
    return re.sub(r"\{\{.*?\}\}\s*", "", str(err).strip().splitlines()[0])


def _unmatched(err: AssertionError) -> str:
    """How many variables assert_existing_objects_matched found missing, and one."""
    count = re.search(r"Found (\d+) Python objects", str(err))
    name = re.search(r"path=([^,\s]+)", str(err))
    return (f"{count[1] if count else 'some'} of the networks' variables are not in "
            f"it{f', such as {name[1]}' if name else ''}")


def _unread(checkpoint: tf.train.Checkpoint, path: Path) -> list[str]:
    """The values in the checkpoint at `path`, under an object that `checkpoint` has,
    that none of its variables took: both are walked by their objects' names."""
    graph = TrackableObjectGraph.FromString(
        tf.train.load_checkpoint(str(path)).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    reached, taken, todo = set(), set(), [(0, checkpoint)]
    while todo:
        node, trackable = todo.pop()
        if (node, trackable is None) in reached:
            continue
        reached.add((node, trackable is None))
        children = {}  # no object of `checkpoint` here or below: their values unread
        if trackable is not None:
            taken.add(node)
            children = tf.train.TrackableView.children(trackable)
        todo += [(child.node_id, children.get(child.local_name))
                 for child in graph.nodes[node].children  # not D, for a generator
                 if trackable is not checkpoint or child.local_name in children]
    return sorted(attribute.full_name or attribute.checkpoint_key
                  for node, missing in reached if missing and node not in taken
                  for attribute in graph.nodes[node].attributes[:1])


def _other_networks(path: Path, reason: str) -> ValueError:
    """The one-line refusal of a checkpoint of other networks than the config's."""
    return ValueError(f"{path}: this checkpoint holds other networks than the run's "
                      f"config.json describes ({reason}). Put back the config.json it "
                      "was trained with, or train into a new run folder.")


@contextlib.contextmanager
def _quiet():
    """TensorFlow's warnings of a restore left partial silenced: the refusal says it."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    except BaseException:
        gc.collect()  # a failed restore warns when its objects are freed
        raise
    finally:
        logger.setLevel(level)


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
        if not isinstance(values.get("data", ""), (str, dict)):  # a path or fingerprint
            raise ValueError("data must name the files the run trained on, "
                             f"not {values['data']!r}")
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
    values = {**ADDED_SETTINGS, **values}  # runs from before a setting had its value
    variant = {k: values.pop(k) for k in list(values) if k in _VARIANT_SETTINGS}
    variant = {k: v for k, v in variant.items() if v != _VARIANT_SETTINGS[k]}
    if variant:  # moved to "variant", where p2p.lab.variants reads them
        values["variant"] = {**values.get("variant", {}), **variant}
    return values


#: Settings added to Config since runs were first written, and the value runs had.
ADDED_SETTINGS = {"dropout": 0.5}

#: Settings of the lab's variants (p2p.lab.variants) that p2p once wrote beside the
#: paper's, at the paper's values: read into "variant" when they differ.
_VARIANT_SETTINGS = {"gan_weight": 1.0, "conditional": True, "gan_update": "sequential",
                     "reconstruction": "l1", "disc_lr_scale": 1.0}
