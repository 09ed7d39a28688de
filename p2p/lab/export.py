"""The generator for the browser: what the Play page's facade editor runs with TensorFlow.js.

    python -m p2p export RUN OUT      # RUN: a run folder, or a book run's name (p2p.lab.bookruns)

writes two files into OUT:

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

#: Weights that the forward pass at test time does not read (pix2pix normalises by each image's statistics).
UNUSED_WEIGHTS = ("moving_mean", "moving_variance")


def export_generator(generator: keras.Model, out, source: str = "") -> Path:
    """Write a generator as OUT/generator.json and OUT/generator.bin for the in-browser editor (chapter "Play")."""
    out = Path(out)
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
        "format": "p2p-generator-1",
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


def export_run(run, out) -> Path:
    """Export the generator of a run folder, or of the book run of that name, for the editor (chapter "Play")."""
    from p2p import runs
    from p2p.lab import bookruns

    if Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"{out}: a file, not a folder: give a folder for generator.json and generator.bin")
    if Path(run, "config.json").exists():
        generator, _ = runs.load_generator(run)
        return export_generator(generator, out, source=f"run {Path(run).name}")
    if str(run) in bookruns.BOOK_RUNS:
        generator, _ = bookruns.load(str(run), verbose=False)
        return export_generator(generator, out, source=bookruns.describe(str(run)))
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
