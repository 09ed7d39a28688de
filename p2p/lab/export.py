"""The generator for the browser: what the Play page's facade editor runs with TensorFlow.js.

    python -m p2p export RUN OUT [--overwrite]     # RUN: a run folder, or a book run's name (p2p.lab.bookruns)

writes two files into OUT, replacing an earlier export there (files it did not write only with --overwrite):

    generator.json   the layers in call order, the last one giving the output (type, the layers
                     they take, their options, where their weights are), the source run, and what
                     the editor draws with: the CMP classes and colours and the `Facade` defaults
    generator.bin    the weights, float16 little-endian, one after the other

The editor (book/_static/editor/) runs these layers with tf.js ops the way
`p2p.inference.translate` runs the generator: one image, BatchNorm normalising it by its own
statistics, dropout on unless switched off. BatchNorm's moving statistics, which pix2pix never
uses, are left out. The book runs' weights are float16 already, so their export is exact.
Explained in the chapter "Play".
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

import keras
import numpy as np

from p2p.lab import facades
from p2p.runtime.files import write_atomically

#: The options the browser needs of each layer type the generator uses; any other layer is refused.
OPTIONS = {
    "InputLayer": (),
    "Conv2D": ("strides", "padding"),
    "Conv2DTranspose": ("strides", "padding"),
    "BatchNormalization": ("epsilon",),
    "LeakyReLU": ("negative_slope",),
    "ReLU": (),
    "Dropout": ("rate",),
    "Concatenate": ("axis",),
    "Activation": ("activation",),
}

#: What generator.json's "format" says: the mark of an export, which a later export replaces.
FORMAT = "p2p-generator-1"

#: The files an export writes into its folder.
FILES = ("generator.json", "generator.bin")

#: Weights that the forward pass at test time does not read (pix2pix normalises by each image's statistics).
UNUSED_WEIGHTS = ("moving_mean", "moving_variance")


def export_generator(generator: keras.Model, out, source: str = "", *, overwrite: bool = False) -> Path:
    """Write a generator as OUT/generator.json and OUT/generator.bin for the in-browser editor (chapter "Play").

    An earlier export in OUT is replaced; files export did not write only with `overwrite` (`check_out`).
    """
    out = Path(out)
    check_out(out, overwrite=overwrite)
    config = generator.get_config()
    layers, chunks, offset = [], [], 0
    for layer_config, layer in zip(config["layers"], generator.layers):
        kind = layer_config["class_name"]
        if kind not in OPTIONS:
            raise ValueError(f"{generator.name}: layer {layer.name} is a {kind}, which the browser editor cannot run; "
                             f"export a p2p.models.Generator (its layers: {', '.join(OPTIONS)})")
        entry = {"name": layer.name, "type": kind, "inputs": _sources(layer_config["inbound_nodes"])}
        entry.update({option: layer_config["config"][option] for option in OPTIONS[kind]})
        entry["weights"] = {}
        for weight in layer.weights:
            if weight.name in UNUSED_WEIGHTS:
                continue
            values = np.asarray(weight, "<f2")
            entry["weights"][weight.name] = {"offset": offset, "shape": list(values.shape)}
            chunks.append(values.tobytes())
            offset += values.size
        layers.append(entry)
    manifest = {
        "format": FORMAT,
        "source": source,
        "image_size": generator.input_shape[1],
        "dtype": "float16",
        "weights": "generator.bin",
        "layers": layers,
        "classes": list(facades.CLASSES),
        "colors": facades.COLORS.tolist(),
        "facade": dataclasses.asdict(facades.Facade()),
    }
    write_atomically(out / "generator.bin", lambda file: file.writelines(chunks))
    return write_atomically(out / "generator.json", lambda file: file.write(json.dumps(manifest, indent=1).encode()))


def check_out(out, *, overwrite: bool = False) -> None:
    """Refuse an OUT that is a file, in the shipped book runs, or holding files export did not write: a ValueError.

    A generator.json or generator.bin there is replaced only if the generator.json is an export's
    (its "format" is FORMAT), or with `overwrite`. Each refusal names the path and the fix.
    """
    from p2p.lab import bookruns

    out = Path(out)
    bookruns.check_not_shipped(out, "folder")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: a file, not a folder: give a folder for generator.json and generator.bin")
    existing = [out / name for name in FILES if os.path.lexists(out / name)]
    if existing and not overwrite and not _exported(out / "generator.json"):
        raise ValueError(f"{existing[0]}: exists, and export did not write it (its generator.json is not a p2p export's); "
                         "give another folder, or --overwrite to replace it")


def _exported(manifest: Path) -> bool:
    """Whether `manifest` is the generator.json of an export: a regular file (a FIFO is never opened) of FORMAT."""
    try:
        if not stat.S_ISREG(os.stat(manifest).st_mode) or os.stat(manifest).st_size > 64 * 1024**2:
            return False
        written = json.loads(manifest.read_bytes())
    except (OSError, ValueError):  # missing, unreadable, not JSON
        return False
    return isinstance(written, dict) and written.get("format") == FORMAT


def export_run(run, out, *, overwrite: bool = False) -> Path:
    """Export the generator of a run folder, or of the book run of that name, for the editor (chapter "Play")."""
    from p2p import runs
    from p2p.lab import bookruns

    check_out(out, overwrite=overwrite)  # before the generator loads
    if Path(run, "config.json").exists():
        generator, _ = runs.load_generator(run)
        return export_generator(generator, out, source=f"run {Path(run).name}", overwrite=overwrite)
    if str(run) in bookruns.BOOK_RUNS:
        generator, _ = bookruns.load(str(run), verbose=False)
        return export_generator(generator, out, source=bookruns.describe(str(run)), overwrite=overwrite)
    raise FileNotFoundError(f"{run}: neither a run folder (no config.json in it) nor a book run; pass a folder that "
                            f"`python -m p2p train` wrote, or one of {', '.join(bookruns.BOOK_RUNS)}")


def _sources(value) -> list[str]:
    """The names of the layers whose outputs a layer takes, in order, from its serialized inbound nodes."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value["config"]["keras_history"][0]]
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [name for item in value for name in _sources(item)]
    return []
